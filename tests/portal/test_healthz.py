"""/healthz: database, broker and a live worker, as Docker's healthcheck and monitoring see it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.test import Client
from django.utils import timezone

from portal.models import WorkerHeartbeat
from project.celery import app as celery_app

URL = "/healthz"


def _beat(seconds_ago: float) -> None:
    WorkerHeartbeat.objects.update_or_create(
        queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        defaults={"worker": "worker-1", "seen_at": timezone.now() - timedelta(seconds=seconds_ago)},
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Point the Celery app at another broker; it reads the URL at each new connection."""
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = url
    try:
        yield
    finally:
        celery_app.conf.broker_url = original


def test_it_is_healthy_with_a_fresh_heartbeat_and_needs_no_login(client: Client, db: None) -> None:
    _beat(5)
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok"
    assert (body["database"], body["broker"], body["worker"]) == ("ok", "ok", "ok")
    assert 4 <= body["worker_heartbeat_age_s"] < 60
    assert body["problems"] == []


def test_it_is_not_cached(client: Client, db: None) -> None:
    _beat(1)
    assert "no-cache" in client.get(URL)["Cache-Control"]


def test_it_is_down_without_any_heartbeat(client: Client, db: None) -> None:
    response = client.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["worker"], body["database"], body["broker"]) == ("down", "down", "ok", "ok")
    assert body["problems"] == ["worker: no heartbeat yet"]


def test_it_is_down_when_the_heartbeat_is_stale(client: Client, db: None) -> None:
    _beat(settings.WORKER_HEARTBEAT_STALE_SECONDS + 30)
    response = client.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert body["worker"] == "down"
    assert body["problems"][0].startswith(f"worker: last heartbeat {settings.WORKER_HEARTBEAT_STALE_SECONDS + 30}")


def test_a_heartbeat_of_another_queue_does_not_count(client: Client, db: None) -> None:
    WorkerHeartbeat.objects.create(queue="host.gpu2", seen_at=timezone.now())
    assert client.get(URL).status_code == 503


def test_it_names_the_broker_when_redis_cannot_be_reached(client: Client, db: None) -> None:
    _beat(1)
    with broker_at(f"redis://127.0.0.1:{_closed_port()}/0"):
        response = client.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert (body["broker"], body["database"], body["worker"]) == ("down", "ok", "ok")
    assert len(body["problems"]) == 1
    assert body["problems"][0].startswith("broker: ")
    assert client.get(URL).status_code == 200  # and healthy again once it is back


def test_it_answers_get_only(client: Client, db: None) -> None:
    assert client.post(URL).status_code == 405
