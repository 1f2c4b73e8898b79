"""Celery tasks of monitoring. Thin: the work is in monitoring.collect and monitoring.rollup.
The host is read on its own worker (Host.local()'s queue), so beat's minute entry is a fan-out
on the default queue that sends the sample there; rollups and pruning only touch the database."""

from __future__ import annotations

import dataclasses
import logging

from celery import shared_task
from django.utils import timezone

from monitoring import alerts, collect, doctor, rollup
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
def doctor_schedule_task() -> None:
    """Every hour (CELERY_BEAT_SCHEDULE): the checks, on the local host's worker."""
    problem = doctor.doctor_request()
    if problem:
        logger.warning("%s", problem)


@shared_task(ignore_result=True)
def doctor_task(token: str = "") -> None:
    """The doctor's checks where the host's parts are; the report goes to the dashboard (and to
    `doctor --via-worker`, which waits for its ``token``)."""
    report = dataclasses.replace(doctor.doctor_run(), token=token)
    doctor.report_store(report)
    logger.info("doctor: %s", ", ".join(f"{count} {status}" for status, count in report.counts().items()))


@shared_task(ignore_result=True)
def alerts_evaluate_task() -> None:
    """Every minute (CELERY_BEAT_SCHEDULE): the alert rules against the figures; Slack is sent
    by its own tasks after the commit, so an outage there never holds this up."""
    now = timezone.now()
    result = alerts.alerts_evaluate(now=now)
    if result.opened or result.fired or result.resolved:
        logger.info("alerts: opened %s, fired %s, resolved %s", result.opened, result.fired, result.resolved)
    alerts.alerts_prune(now=now)
