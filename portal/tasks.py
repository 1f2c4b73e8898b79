"""Periodic housekeeping of the core. Tasks are thin; the work is in services."""

from __future__ import annotations

import socket
from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from portal.models import AuditEvent, Host, Operation, WorkerHeartbeat
from portal.operations import operation_reap


def heartbeat_record(queue: str, *, worker: str = "") -> None:
    """A worker of ``queue`` is alive now: the row /healthz and monitoring/heartbeats.py read."""
    WorkerHeartbeat.objects.update_or_create(
        queue=queue, defaults={"worker": worker or socket.gethostname(), "seen_at": timezone.now()}
    )


@shared_task(ignore_result=True)
def worker_heartbeat_fanout_task() -> None:
    """Every 30 s (beat): one heartbeat to the portal's queue and one to each host's."""
    queues = [settings.CELERY_TASK_DEFAULT_QUEUE, *Host.objects.values_list("queue", flat=True)]
    for queue in dict.fromkeys(queues):
        worker_heartbeat_task.apply_async(args=[queue], queue=queue, expires=60)  # a stale one proves nothing


@shared_task(bind=True, ignore_result=True)
def worker_heartbeat_task(self: Task, queue: str = "portal") -> None:
    """Proves that beat, the broker and a worker of ``queue`` all work; /healthz reads it.
    A worker also records one as it starts (portal.signals), before beat's first tick."""
    heartbeat_record(queue, worker=str(self.request.hostname or ""))


@shared_task(ignore_result=True)
def operation_reap_task() -> int:
    return operation_reap()


@shared_task(ignore_result=True)
def history_prune_task() -> None:
    """Drop audit rows past retention and finished operations older than 90 days."""
    now = timezone.now()
    AuditEvent.objects.filter(created__lt=now - timedelta(days=settings.AUDIT_RETENTION_DAYS)).delete()
    Operation.objects.filter(state__in=Operation.FINAL_STATES, finished__lt=now - timedelta(days=90)).delete()


@shared_task(bind=True, ignore_result=True, max_retries=5, acks_late=True)
def slack_post_task(self: Task, text: str) -> None:
    from portal.slack import SlackError, slack_post

    try:
        slack_post(text)
    except SlackError as exc:
        raise self.retry(exc=exc, countdown=settings.SLACK_RETRY_SECONDS * 2**self.request.retries) from exc
