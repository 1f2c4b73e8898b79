"""A member's click while the job queue (Redis) is down: a clear message, nothing left
waiting for a job nobody will run, and the next click works once Redis is back. The broker is
a real redis-server of this test's own, stopped and started again around the clicks."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import Client
from django.urls import reverse

from portal.models import Host, Operation, User
from portal.operations import QUEUE_DOWN
from project.celery import app as celery_app
from tests.workspaces.conftest import make_workspace, small_quota
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db(transaction=True)  # the task is sent on a real commit


class PrivateRedis:
    """A redis-server on a free loopback port, which the test can stop and start again."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(argv, cwd=self.workdir, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def queued(self, queue: str) -> int:
        return int(redis.Redis(port=self.port).llen(queue))


def _use_broker(url: str) -> None:
    """Point the Celery app at ``url``; its producer pools are looked up by URL again."""
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    original = celery_app.conf.broker_url
    _use_broker(server.url)
    yield server
    _use_broker(original)
    server.stop()


@pytest.fixture
def stopped_workspace(alice: User, ws_settings) -> Workspace:  # type: ignore[no-untyped-def]
    small_quota(alice)
    host = Host.objects.create(name="outage", queue="host.outage", cpu_count=2, memory_bytes=8 * 1024**3)
    return make_workspace(alice, host, port=2230, state=Workspace.State.STOPPED)


def test_a_start_while_redis_is_down_says_so_blocks_nothing_and_the_next_click_works(
    alice_client: Client, stopped_workspace: Workspace, broker: PrivateRedis
) -> None:
    url = reverse("workspaces:act", args=[stopped_workspace.pk, "start"])
    broker.stop()

    response = alice_client.post(url, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert QUEUE_DOWN in response.content.decode()
    failed = Operation.objects.get()
    assert (failed.state, failed.message) == (Operation.State.FAILED, QUEUE_DOWN)
    stopped_workspace.refresh_from_db()
    assert stopped_workspace.desired_state == Workspace.Desired.STOPPED  # the previous wish stands
    assert not Operation.objects.in_progress().exists()

    broker.start()
    response = alice_client.post(url, HTTP_HX_REQUEST="true")

    started = Operation.objects.exclude(pk=failed.pk).get()
    assert response.status_code == 200
    assert QUEUE_DOWN not in response.content.decode(), started.error
    assert started.state == Operation.State.QUEUED
    assert broker.queued("host.outage") == 1
    stopped_workspace.refresh_from_db()
    assert stopped_workspace.desired_state == Workspace.Desired.RUNNING


def test_a_create_while_redis_is_down_leaves_no_half_made_job(
    alice: User,
    alice_client: Client,
    ws_settings,
    broker: PrivateRedis,  # type: ignore[no-untyped-def]
) -> None:
    small_quota(alice)
    Host.local()
    broker.stop()

    response = alice_client.post(reverse("workspaces:create"), {"name": ""}, follow=True)

    assert response.status_code == 200
    assert QUEUE_DOWN in response.content.decode()
    assert not Operation.objects.in_progress().exists()
