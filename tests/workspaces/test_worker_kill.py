"""A worker killed with SIGKILL in the middle of a create, and a create delivered twice, with
real Celery worker processes against the real dockerd.

After the kill nothing acks the message, and Redis would hand it out again only after the
broker's visibility timeout (an hour). The portal doesn't wait for that: the killed worker's
database session, and with it the workspace's advisory lock, died with the process, so a
"running" operation nobody holds is known dead (workspaces/locks.py). The reconciler, or the
member's next click, sends the same operation to a live worker, which takes it over and
finishes it. When the old message does come back, it finds its operation final and does nothing.
"""

from __future__ import annotations

import os
import random
import re
import signal
from collections.abc import Callable, Iterator

import docker as docker_sdk
import pytest
from django.test import Client
from django.urls import reverse

from hostops import docker
from hostops.types import ContainerState
from portal.models import Host, Operation, User
from project.celery import app as celery_app
from tests.conftest import remove_member_leftovers
from tests.worker import WorkerProcess, wait_for
from tests.workspaces.conftest import DOCKER_URL, use_worker_settings, worker_workspace_env
from workspaces import reconcile, services, tasks
from workspaces.locks import operation_abandoned
from workspaces.models import Workspace

pytestmark = [pytest.mark.docker, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PORT_BASE = random.randrange(20000, 32000, 100)
TASK_ID = re.compile(r"workspace_create_task\[([0-9a-f-]{36})\] received")
CREATE_DONE = re.compile(r"workspace_create_task\[[0-9a-f-]{36}\] succeeded")


@pytest.fixture(scope="module")
def celery_worker_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every worker of this module gets the workspace settings the test process uses."""
    return worker_workspace_env(tmp_path_factory.mktemp("ws-kill"), PORT_BASE)


@pytest.fixture
def same_settings(settings, celery_worker_env: dict[str, str]):  # type: ignore[no-untyped-def]
    return use_worker_settings(settings, celery_worker_env)


@pytest.fixture
def local_host(db: None) -> Host:
    """The host the workers serve (queue host.local); a transactional test flushed the
    migration's row, so it is made again, as Host.local() does."""
    return Host.local()


@pytest.fixture
def containers_of(
    member: User, docker_client: docker_sdk.DockerClient, slim_image: str, local_host: Host, same_settings: object
) -> Iterator[Callable[[], list[ContainerState]]]:
    """Every container (any state) of the member on the engine, as the reconciler lists them;
    they and the SSH host key volume are removed after the test."""

    def listing() -> list[ContainerState]:
        return docker.list_by_label(f"portal.owner={member.username}", docker_url=DOCKER_URL)

    yield listing
    remove_member_leftovers(docker_client, member.username)


def kill_mid_create(worker: WorkerProcess, op: Operation, containers: Callable[[], list[ContainerState]]) -> None:
    """SIGKILL the worker (its main process runs the task: solo pool) once the create has
    made the container, before the workspace is ready."""

    def creating() -> bool:
        op.refresh_from_db(fields=["state", "log"])
        return op.state == Operation.State.RUNNING and bool(containers())

    wait_for(creating, timeout=60, interval=0.05, what="the worker to create the container")
    os.kill(worker.process.pid, signal.SIGKILL)
    assert worker.process.wait(timeout=10) == -signal.SIGKILL
    op.refresh_from_db()
    assert op.state == Operation.State.RUNNING, f"the create finished before the kill:\n{op.log}"
    assert Workspace.objects.get(pk=op.target_id).state == Workspace.State.CREATING


def create_and_kill_its_worker(
    factory: Callable[[], WorkerProcess], member: User, containers: Callable[[], list[ContainerState]]
) -> tuple[Operation, Workspace, WorkerProcess, WorkerProcess]:
    """A create whose worker is SIGKILLed mid-way; returns (op, workspace, victim, rescuer)
    once a new worker runs and the dead worker's lock is gone."""
    victim = factory()
    op = services.workspace_create(owner=member, actor=member)
    workspace = Workspace.objects.with_related().get(pk=op.target_id)
    kill_mid_create(victim, op, containers)
    rescuer = factory()
    wait_for(lambda: operation_abandoned(op, workspace.pk), timeout=10, what="the killed worker's lock to go")
    return op, workspace, victim, rescuer


def settled(workspace: Workspace) -> bool:
    """No operation of the workspace is still queued, running or retrying."""
    pending = Operation.objects.filter(target_type="workspace", target_id=str(workspace.pk))
    return not pending.exclude(state__in=Operation.FINAL_STATES).exists()


def assert_one_running_container(workspace: Workspace, containers: Callable[[], list[ContainerState]]) -> None:
    workspace.refresh_from_db()
    found = containers()
    assert [c.name for c in found] == [workspace.container_name]
    assert found[0].labels["portal.workspace"] == str(workspace.pk)
    assert found[0].running
    assert found[0].health == "healthy"
    assert workspace.state == Workspace.State.RUNNING, workspace.state_reason
    assert workspace.container_id == found[0].id
    assert not Operation.objects.filter(state=Operation.State.RUNNING).exists()


def redeliver_unacked() -> int:
    """What Redis does once the visibility timeout has passed: every message a worker took
    and never acked goes back to its queue. Returns how many were waiting."""
    with celery_app.connection_for_write(transport_options={"visibility_timeout": 0}) as conn:
        channel = conn.default_channel
        waiting = channel.client.hlen(channel.unacked_key)
        channel.qos.restore_visible(num=100, interval=1)
    return int(waiting)


def the_old_message_comes_back_and_does_nothing(
    victim: WorkerProcess, rescuer: WorkerProcess, op: Operation, workspace: Workspace
) -> None:
    match = TASK_ID.search(victim.log())
    assert match, victim.log()
    container_id = Workspace.objects.get(pk=workspace.pk).container_id
    assert redeliver_unacked() >= 1  # the killed worker's message (and any an aborted run left)
    rescuer.wait_for_log(f"workspace_create_task[{match[1]}] succeeded")
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED
    assert Workspace.objects.get(pk=workspace.pk).container_id == container_id


def test_after_a_worker_is_killed_mid_create_the_reconciler_has_the_same_create_finished(
    celery_worker_factory: Callable[[], WorkerProcess],
    member: User,
    local_host: Host,
    containers_of: Callable[[], list[ContainerState]],
) -> None:
    op, workspace, victim, rescuer = create_and_kill_its_worker(celery_worker_factory, member, containers_of)
    report = reconcile.reconcile_host(local_host)

    # The reconciler sends the abandoned create to the live worker, which takes it over: the
    # history shows one create that succeeded, not a failure followed by a second start.
    assert report.started == []
    wait_for(lambda: settled(workspace), timeout=60, what="the resumed create to finish")
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, f"{op.log}\n{op.error}\n{rescuer.log()[-3000:]}"
    assert "sent to another worker" in op.log
    assert_one_running_container(workspace, containers_of)
    assert not Operation.objects.filter(state=Operation.State.FAILED).exists()
    assert list(Operation.objects.values_list("kind", flat=True)) == ["create"]
    the_old_message_comes_back_and_does_nothing(victim, rescuer, op, workspace)
    assert_one_running_container(workspace, containers_of)


def test_after_a_worker_is_killed_mid_create_the_members_start_click_has_the_create_finished(
    celery_worker_factory: Callable[[], WorkerProcess],
    member: User,
    local_host: Host,
    containers_of: Callable[[], list[ContainerState]],
) -> None:
    op, workspace, victim, rescuer = create_and_kill_its_worker(celery_worker_factory, member, containers_of)
    client = Client()
    client.force_login(member)
    response = client.post(reverse("workspaces:act", args=[workspace.pk, "start"]), follow=True)

    # The click finds the create abandoned, has it finished and says so; no second job.
    assert "being finished now" in response.content.decode()
    wait_for(lambda: settled(workspace), timeout=60, what="the resumed create to finish")
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, f"{op.log}\n{op.error}\n{rescuer.log()[-3000:]}"
    assert not Operation.objects.filter(kind="start").exists()
    assert_one_running_container(workspace, containers_of)
    the_old_message_comes_back_and_does_nothing(victim, rescuer, op, workspace)
    assert_one_running_container(workspace, containers_of)


def test_a_create_delivered_twice_to_two_workers_leaves_one_container(
    celery_worker_factory: Callable[[], WorkerProcess],
    member: User,
    local_host: Host,
    containers_of: Callable[[], list[ContainerState]],
) -> None:
    workers = [celery_worker_factory(), celery_worker_factory()]
    op = services.workspace_create(owner=member, actor=member)  # the first delivery, after commit
    tasks.workspace_create_task.apply_async(args=[op.pk], queue=local_host.queue)  # and the same again

    def both_done() -> bool:
        return sum(len(CREATE_DONE.findall(worker.log())) for worker in workers) == 2

    wait_for(both_done, timeout=60, what="both deliveries to be handled")
    workspace = Workspace.objects.with_related().get(pk=op.target_id)
    wait_for(lambda: settled(workspace), timeout=30, what="the create to finish")
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, f"{op.log}\n{op.error}"
    assert op.attempts == 1  # claimed once: the other delivery did nothing
    assert (op.error, op.message) == ("", "Running: SSH and Jupyter answer")  # nor wrote into the row
    assert_one_running_container(workspace, containers_of)
    assert Operation.objects.count() == 1
