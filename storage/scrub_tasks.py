"""Celery tasks of the storage app's scrub area. Thin: the scrub itself (on the local host's
queue, where the storage root is mounted) and beat's monthly start."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from hostops.errors import HostOpsTransient
from portal.operations import operation_retrying
from storage import scrub

MAX_RETRIES = 5


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def scrub_task(self: Task, operation_id: int, **_params: Any) -> None:
    """Start and follow the scrub of Operation ``operation_id``; retry transient host errors."""
    try:
        scrub.scrub_execute(operation_id)
    except HostOpsTransient as exc:
        if self.request.retries >= MAX_RETRIES:
            scrub.scrub_give_up(operation_id, exc)
            return
        countdown = min(300, 5 * 2**self.request.retries)
        if not isinstance(exc, scrub.ScrubBusy):  # another worker owns the row: leave it alone
            operation_retrying(operation_id, error=str(exc), countdown=countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(acks_late=True, ignore_result=True)
def scrub_monthly_task() -> None:
    """Beat's "storage-scrub" row (made by storage/migrations/0003_scrub_schedule.py)."""
    scrub.scrub_monthly()


@shared_task(ignore_result=True)
def scrub_watch_task() -> None:
    """Every minute (CELERY_BEAT_SCHEDULE): send a scrub whose worker died to a live one."""
    scrub.scrub_watch()
