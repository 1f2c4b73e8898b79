"""Celery tasks of monitoring. Thin: the work is in monitoring.collect and monitoring.rollup.
The host is read on its own worker (Host.local()'s queue), so beat's minute entry is a fan-out
on the default queue that sends the sample there; rollups and pruning only touch the database."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.utils import timezone

from monitoring import alerts, collect, heartbeats, rollup
from portal.models import Host

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def host_sample_fanout_task() -> None:
    """Every minute (CELERY_BEAT_SCHEDULE): the sample, on the local host's queue."""
    host_sample_task.apply_async(queue=Host.local().queue, expires=55)  # a late sample is worthless


@shared_task(ignore_result=True, acks_late=True)
def host_sample_task() -> None:
    collect.host_sample()


@shared_task(ignore_result=True)
def samples_rollup_task() -> None:
    """Every 5 minutes: the finished buckets' averages, then rows past their keeping dropped."""
    written = rollup.samples_rollup()
    pruned = rollup.samples_prune()
    logger.info(
        "host samples: %s rolled up, %d pruned",
        ", ".join(f"{count} {resolution.label}" for resolution, count in written.items()),
        pruned,
    )


@shared_task(ignore_result=True)
def heartbeat_fanout_task() -> None:
    """Every minute (CELERY_BEAT_SCHEDULE): one heartbeat to every queue a worker should take."""
    for queue in heartbeats.expected_queues():
        heartbeat_task.apply_async(args=[queue], queue=queue, expires=120)  # a stale one proves nothing


@shared_task(bind=True, ignore_result=True)
def heartbeat_task(self: Task, queue: str) -> None:
    heartbeats.stamp(queue, worker=str(self.request.hostname or ""))


@shared_task(ignore_result=True)
def alerts_evaluate_task() -> None:
    """Every minute (CELERY_BEAT_SCHEDULE): the alert rules against the figures; Slack is sent
    by its own tasks after the commit, so an outage there never holds this up."""
    now = timezone.now()
    result = alerts.alerts_evaluate(now=now)
    if result.opened or result.fired or result.resolved:
        logger.info("alerts: opened %s, fired %s, resolved %s", result.opened, result.fired, result.resolved)
    alerts.alerts_prune(now=now)
