"""The whole path through a real Celery worker: the member's request enqueues the task on
the host's queue after commit, a separate worker process runs it against dockerd, and the
page's database row ends running."""

from __future__ import annotations

import random

import docker as docker_sdk
import pytest
from django.test import Client
from django.urls import reverse

from portal.models import Host, Operation, User
from tests.conftest import remove_member_leftovers
from tests.factories import UserFactory
from tests.worker import WorkerProcess, wait_for
from tests.workspaces.conftest import small_quota, use_worker_settings, worker_workspace_env
from workspaces.models import Workspace

pytestmark = [pytest.mark.docker, pytest.mark.worker]

PORT_BASE = random.randrange(20000, 32000, 100)


@pytest.fixture(scope="module")
def celery_worker_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every worker of this module gets the workspace settings the test process uses."""
    return worker_workspace_env(tmp_path_factory.mktemp("ws-worker"), PORT_BASE)


@pytest.fixture
def same_settings(settings, celery_worker_env: dict[str, str]):  # type: ignore[no-untyped-def]
    return use_worker_settings(settings, celery_worker_env)


@pytest.mark.django_db(transaction=True)
def test_a_start_clicked_on_the_dashboard_runs_on_the_hosts_worker(
    celery_worker_process: WorkerProcess,
    docker_client: docker_sdk.DockerClient,
    slim_image: str,
    same_settings,  # type: ignore[no-untyped-def]
) -> None:
    Host.objects.get_or_create(name="local", defaults={"queue": "host.local"})
    member: User = UserFactory(username=f"w{random.randrange(16**8):08x}")
    small_quota(member)
    client = Client()
    client.force_login(member)
    try:
        response = client.post(reverse("workspaces:create"))
        assert response.status_code == 302
        op = Operation.objects.get(owner=member)

        def finished() -> Operation | None:
            op.refresh_from_db()
            return op if op.is_final else None

        wait_for(finished, timeout=120, what="the create operation to finish")
        assert op.state == Operation.State.SUCCEEDED, f"{op.log}\n{op.error}\n{celery_worker_process.log()[-3000:]}"
        workspace = Workspace.objects.get(owner=member)
        assert workspace.state == Workspace.State.RUNNING
        container = docker_client.containers.get(workspace.container_name)
        assert container.labels["portal.host"] == "local"
        assert "Waiting for sshd and Jupyter to answer" in op.log
        card = client.get(reverse("workspaces:card", args=[workspace.pk])).content.decode()
        assert "pill-running" in card
        assert 'hx-trigger="every 1s"' not in card
    finally:
        remove_member_leftovers(docker_client, member.username)
