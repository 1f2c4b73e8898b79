"""A screenshot of the Servers page (tests/e2e/screenshots/hosts.png, ignored by git): the local
server online with its worker up, gpu2 unreachable with its worker down, and a new server that
was never checked, with members and workspaces placed on them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from gpus.models import GPU
from portal.models import Host, User, WorkerHeartbeat
from tests.factories import UserFactory
from workspaces.models import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parent / "screenshots"
GIB = 1024**3


def _servers() -> User:
    now = timezone.now()
    local = Host.local()
    Host.objects.filter(pk=local.pk).update(
        state=Host.State.ONLINE, last_seen=now - timedelta(seconds=40), cpu_count=64, memory_bytes=256 * GIB
    )
    gpu2 = Host.objects.create(
        name="gpu2",
        queue="host.gpu2",
        docker_url="ssh://portal@gpu2.corp.example",
        ssh_address="gpu2.corp.example",
        state=Host.State.UNREACHABLE,
        state_detail="Error while fetching server API version: ssh: connect to host gpu2.corp.example port 22: "
        "Connection refused",
        last_seen=now - timedelta(hours=3),
        cpu_count=32,
        memory_bytes=128 * GIB,
    )
    Host.objects.create(name="gpu3", queue="host.gpu3", docker_url="tcp://10.0.0.13:2376")
    WorkerHeartbeat.objects.create(queue="host.local", seen_at=now - timedelta(seconds=12), worker="local@portal")
    WorkerHeartbeat.objects.create(queue="host.gpu2", seen_at=now - timedelta(hours=3), worker="gpu2@gpu2")
    for index in range(4):
        GPU.objects.create(host=local, index=index, name="RTX 5080", memory_bytes=16 * GIB)
    GPU.objects.create(host=gpu2, index=0, name="RTX 4090", memory_bytes=24 * GIB)
    for number, (name, host, state) in enumerate(
        [("alice", local, "running"), ("bob", local, "stopped"), ("carol", gpu2, "running")]
    ):
        member = UserFactory(username=name, host=None if host == local else host)
        Workspace.objects.create(owner=member, host=host, ssh_port=2300 + number, slug=name, state=state)
    return UserFactory(username="ada", first_name="Ada", is_staff=True)


def test_a_screenshot_of_the_servers_page(page: Page, sign_in_as: Callable[[User], None]) -> None:
    sign_in_as(_servers())
    page.goto(reverse("host-list"))
    expect(page.get_by_role("heading", name="Servers")).to_be_visible()
    expect(page.locator("#host-gpu2")).to_contain_text("Worker down")
    expect(page.locator("#host-gpu3")).to_contain_text("Worker never seen")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "hosts.png"), full_page=True)
    page.get_by_role("link", name="gpu3").click()
    expect(page.get_by_label("Worker command")).to_have_text("celery -A project worker -Q host.gpu3 --hostname gpu3@%h")
    page.screenshot(path=str(SHOTS / "host-detail.png"), full_page=True)
