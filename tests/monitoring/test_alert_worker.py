"""The alert evaluation as beat runs it: the task on a real Celery worker, Slack through the
worker's retrying task to a local webhook stand-in. A webhook answering 500 does not hold the
evaluation up (the incident is recorded, the Slack task retries in 30 s), and repeated
evaluations tell nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import Alert, AlertKind, AlertRule, Resolution, Sample
from monitoring.rules import rules_ensure
from monitoring.tasks import alerts_evaluate_task
from tests.factories import UserFactory
from tests.monitoring.webhook import Webhook
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("transactional_db")]


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    stand_in = Webhook()
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def celery_worker_env(webhook: Webhook) -> dict[str, str]:
    return {"SLACK_WEBHOOK_URL": webhook.url}  # the worker is another process: it reads its environment


def _disk(percent: float) -> None:
    now = timezone.now()
    Sample.objects.filter(series__startswith="disk.root.").delete()
    for series, value in (("disk.root.used_bytes", percent), ("disk.root.total_bytes", 100.0)):
        Sample.objects.create(series=series, resolution=Resolution.RAW, at=now - timedelta(seconds=30), value=value)


def _evaluations(worker: WorkerProcess) -> int:
    return worker.log().count("monitoring.tasks.alerts_evaluate_task[") // 2  # "received" and "succeeded"


def _evaluate(worker: WorkerProcess) -> None:
    done = _evaluations(worker)
    alerts_evaluate_task.delay()
    wait_for(lambda: _evaluations(worker) > done, timeout=30, what="the evaluation on the worker")


def test_the_worker_evaluates_tells_slack_once_and_a_failing_webhook_holds_nothing_up(
    celery_worker_process: WorkerProcess, webhook: Webhook
) -> None:
    UserFactory(username="ada", is_staff=True)
    rules_ensure()
    AlertRule.objects.exclude(kind=AlertKind.DISK_USAGE).update(enabled=False)
    AlertRule.objects.filter(kind=AlertKind.DISK_USAGE).update(enabled=True, for_minutes=0)
    webhook.statuses.append(500)  # Slack's first answer: a server error
    _disk(97.0)
    _evaluate(celery_worker_process)
    assert Alert.objects.get().state == Alert.State.FIRING  # recorded whatever Slack said
    celery_worker_process.wait_for_log("Retry in 30s")
    _evaluate(celery_worker_process)  # still firing: nothing more to tell
    _disk(40.0)
    _evaluate(celery_worker_process)
    _evaluate(celery_worker_process)
    # The refused firing message, then the resolved one; the firing one's retry comes 30 s later.
    assert webhook.texts(2, timeout=20) == ["Firing: Disk usage on disk root", "Resolved: Disk usage on disk root"]
    assert Alert.objects.get().state == Alert.State.RESOLVED
