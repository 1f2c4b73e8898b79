"""The core's tasks run by a real Celery worker process over the real Redis broker.

Slack is the one outside edge: a stand-in HTTP server on loopback answers the webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.utils import timezone

from portal.models import Operation, User, WorkerHeartbeat
from portal.operations import operation_claim, operation_create
from portal.services import notify_admins
from portal.tasks import operation_reap_task, slack_post_task, worker_heartbeat_task
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("transactional_db")]


class SlackStandIn:
    """Records each webhook POST; answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, object]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with stand_in.lock:
                    stand_in.received.append({"path": self.path, "json": json.loads(body), "at": time.monotonic()})
                    status = stand_in.statuses.pop(0) if stand_in.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"server_error")

            def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/stand-in"

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.statuses.clear()

    def requests(self, count: int, *, timeout: float) -> list[dict[str, object]]:
        wait_for(lambda: len(self.received) >= count, timeout=timeout, what=f"{count} Slack request(s)")
        with self.lock:
            return list(self.received)


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    stand_in = SlackStandIn()
    thread = threading.Thread(target=stand_in.server.serve_forever, daemon=True)
    thread.start()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


@pytest.fixture(scope="module")
def celery_worker_env(slack: SlackStandIn) -> dict[str, str]:
    # The worker is another process: it learns the webhook from its environment.
    return {"SLACK_WEBHOOK_URL": slack.url, "SLACK_RETRY_SECONDS": "3"}  # production waits 30 s


@pytest.fixture(autouse=True)
def _clean_slack(slack: SlackStandIn) -> None:
    slack.reset()


def test_a_worker_reports_its_heartbeat_as_it_starts_without_waiting_for_beat(
    celery_worker_factory: Callable[[], WorkerProcess], client: Client
) -> None:
    WorkerHeartbeat.objects.all().delete()
    assert client.get("/healthz").json()["problems"] == ["worker: no heartbeat yet"]
    worker = celery_worker_factory()  # returns once the worker is ready and answers a ping; no task ran
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["worker"] == "ok"
    # One row for each queue it consumes (the portal's and the local host's), naming the worker.
    beats = dict(WorkerHeartbeat.objects.values_list("queue", "worker"))
    assert beats == {settings.CELERY_TASK_DEFAULT_QUEUE: worker.nodename, "host.local": worker.nodename}


def test_the_worker_writes_its_heartbeat_and_healthz_turns_ok(
    celery_worker_process: WorkerProcess, client: Client
) -> None:
    WorkerHeartbeat.objects.all().delete()  # the one the worker wrote as it started
    assert client.get("/healthz").status_code == 503
    worker_heartbeat_task.delay()
    beat = wait_for(
        lambda: WorkerHeartbeat.objects.filter(queue=settings.CELERY_TASK_DEFAULT_QUEUE).first(),
        what="the heartbeat row",
    )
    assert beat.worker == celery_worker_process.nodename
    assert (timezone.now() - beat.seen_at).total_seconds() < 60
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["worker"] == "ok"


def test_the_worker_reaps_an_operation_whose_worker_died(celery_worker_process: WorkerProcess, alice: User) -> None:
    stuck = operation_create(kind="workspace start", actor=alice, target=alice)
    fresh = operation_create(kind="backup", actor=alice)
    for op in (stuck, fresh):
        assert operation_claim(op.pk)
    long_ago = timezone.now() - timedelta(seconds=settings.OPERATION_STUCK_SECONDS + 60)
    Operation.objects.filter(pk=stuck.pk).update(updated=long_ago)
    operation_reap_task.delay()
    wait_for(lambda: Operation.objects.get(pk=stuck.pk).is_final, what="the reaper to fail the stuck job")
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.state == Operation.State.FAILED
    assert "stopped reporting progress" in stuck.message
    assert fresh.state == Operation.State.RUNNING
    celery_worker_process.wait_for_log("portal.tasks.operation_reap_task[")


def test_an_admin_notification_reaches_slack_through_the_worker(
    celery_worker_process: WorkerProcess, slack: SlackStandIn, admin_user: User
) -> None:
    with transaction.atomic():
        notify_admins(title="carol asks for access", body="carol@corp.example has no invitation.")
        # Enqueued only after commit: a rolled-back change never reaches Slack.
        assert slack.received == []
    (request,) = slack.requests(1, timeout=30)
    assert request["json"] == {"text": "carol asks for access\ncarol@corp.example has no invitation."}
    assert request["path"] == "/services/T000/B000/stand-in"
    assert admin_user.notifications.get().title == "carol asks for access"


def test_a_failing_slack_webhook_makes_the_task_retry(
    celery_worker_process: WorkerProcess, slack: SlackStandIn
) -> None:
    slack.statuses.append(500)
    slack_post_task.delay("GPU 0 is overheating")
    first, second = slack.requests(2, timeout=45)  # the first retry waits SLACK_RETRY_SECONDS
    assert first["json"] == second["json"] == {"text": "GPU 0 is overheating"}
    assert 2.5 <= second["at"] - first["at"] <= 40  # type: ignore[operator]
    celery_worker_process.wait_for_log("Retry in 3s")
