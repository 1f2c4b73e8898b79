"""Alerts on Slack, against a local HTTP server standing in for the incoming webhook: the firing
message is delivered; a webhook answering 500 or refusing connections makes the task retry with
a growing backoff; and the evaluation never waits for Slack: it records the incident and sends
the task by name after the commit, whether the webhook or even the job queue is down.

The task runs in this process (Celery's eager apply runs a retry at once, ignoring the
countdown); tests/portal/test_worker_integration.py shows a real worker's wait (SLACK_RETRY_SECONDS)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery import current_app
from celery.exceptions import Retry
from django.utils import timezone
from kombu.exceptions import OperationalError
from pytest_django.fixtures import Settings

from monitoring.alerts import alerts_evaluate
from monitoring.models import Alert, AlertKind, AlertRule, Resolution, Sample
from monitoring.rules import rules_ensure
from portal.models import Notification
from portal.slack import SlackError
from portal.tasks import slack_post_task
from tests.factories import UserFactory
from tests.monitoring.webhook import Webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook(settings: Settings) -> Iterator[Webhook]:
    stand_in = Webhook()
    stand_in.start()
    settings.SLACK_WEBHOOK_URL = stand_in.url
    yield stand_in
    stand_in.stop()


@pytest.fixture
def webhook_down(settings: Settings) -> str:
    """A webhook URL on a port nothing listens on: every post is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.SLACK_WEBHOOK_URL = f"http://127.0.0.1:{port}/services/T000/B000/alerts"
    return str(settings.SLACK_WEBHOOK_URL)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Slack tasks sent to the queue (by name, after the commit), not run."""
    texts: list[str] = []

    def send_task(name: str, args: list[Any] | None = None, **kwargs: Any) -> None:
        assert name == "portal.tasks.slack_post_task"
        texts.append((args or [""])[0])

    monkeypatch.setattr(current_app, "send_task", send_task)
    return texts


@pytest.fixture
def disk_full(db: None) -> None:
    """The disk rule alone, firing at once, and a root disk at 97 %."""
    UserFactory(username="ada", is_staff=True)
    rules_ensure()
    AlertRule.objects.exclude(kind=AlertKind.DISK_USAGE).update(enabled=False)
    AlertRule.objects.filter(kind=AlertKind.DISK_USAGE).update(for_minutes=0)
    now = timezone.now()
    for series, value in (("disk.root.used_bytes", 97.0), ("disk.root.total_bytes", 100.0)):
        Sample.objects.create(series=series, resolution=Resolution.RAW, at=now - timedelta(minutes=1), value=value)


def evaluate(capture: Callable[..., Any]) -> float:
    """One evaluation with its commit hooks run; returns how long it took."""
    start = time.monotonic()
    with capture(execute=True):
        alerts_evaluate(now=timezone.now())
    return time.monotonic() - start


def test_a_firing_alert_reaches_the_webhook(
    disk_full: None, webhook: Webhook, queued: list[str], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    evaluate(django_capture_on_commit_callbacks)
    (text,) = queued
    assert slack_post_task.apply(args=[text]).successful()
    (message,) = webhook.received
    assert message["text"].startswith("Firing: Disk usage on disk root\nDisk usage on disk root: 97 % (threshold 85 %)")


def test_a_webhook_answering_500_is_retried_until_it_takes_the_message(webhook: Webhook) -> None:
    webhook.statuses += [500, 500]
    assert slack_post_task.apply(args=["Firing: GPU temperature on GPU 0"]).successful()
    assert webhook.received == [{"text": "Firing: GPU temperature on GPU 0"}] * 3


def test_a_webhook_refusing_connections_is_retried_with_a_growing_backoff(
    webhook_down: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    resent: list[tuple[str, float]] = []  # what a worker's retry sends back to the queue

    def send_task(name: str, args: Any = None, kwargs: Any = None, countdown: float = 0, **options: Any) -> None:
        resent.append((name, countdown))

    monkeypatch.setattr(current_app, "send_task", send_task)
    text = "Firing: Host unreachable on host local"
    for retries in (0, 1, 2, 4):
        slack_post_task.push_request(args=[text], kwargs={}, retries=retries, called_directly=False)
        try:
            with pytest.raises(Retry) as retry:
                slack_post_task.run(text)
        finally:
            slack_post_task.pop_request()
        assert isinstance(retry.value.exc, SlackError)
    assert resent == [("portal.tasks.slack_post_task", seconds) for seconds in (30, 60, 120, 480)]
    monkeypatch.undo()
    # Past max_retries the task gives up with Slack's error (the portal notification stays).
    result = slack_post_task.apply(args=["Firing: Host unreachable on host local"])
    assert result.failed()
    assert "unreachable" in str(result.result)


def test_the_evaluation_records_the_incident_at_once_while_the_webhook_is_down(
    disk_full: None, webhook_down: str, queued: list[str], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    took = evaluate(django_capture_on_commit_callbacks)
    assert took < 1.0, f"the evaluation took {took:.2f} s"
    alert = Alert.objects.get()
    assert (alert.state, alert.notified_at is not None) == (Alert.State.FIRING, True)
    assert Notification.objects.get().title == "Firing: Disk usage on disk root"
    assert len(queued) == 1  # the worker's task retries Slack; the next evaluation tells nothing again
    evaluate(django_capture_on_commit_callbacks)
    assert len(queued) == 1


def test_the_evaluation_records_the_incident_while_the_job_queue_is_down(
    disk_full: None, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(current_app, "send_task", broker_down)
    evaluate(django_capture_on_commit_callbacks)
    assert Alert.objects.get().state == Alert.State.FIRING
    assert Notification.objects.get().title == "Firing: Disk usage on disk root"
