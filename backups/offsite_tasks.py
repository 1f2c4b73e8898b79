"""Celery tasks of the offsite tier. Thin: beat's nightly start (on the default queue) and the
run itself, on the storage host's queue where the snapshots are mounted."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from backups import offsite

MAX_RETRIES = 12


@shared_task(acks_late=True, ignore_result=True)
def offsite_run_task() -> None:
    """Beat's "backups-offsite" row (backups/migrations/0004_offsite_schedules.py), nightly."""
    offsite.offsite_scheduled()


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def offsite_execute_task(self: Task, operation_id: int, **_params: Any) -> None:
    """Run the backup of Operation ``operation_id``. While another job holds the repository (the
    drill, an admin's unlock) try again a little later, for about an hour, then give up saying so."""
    try:
        offsite.offsite_execute(operation_id)
    except offsite.OffsiteBusy as exc:
        if self.request.retries >= MAX_RETRIES:
            offsite.offsite_give_up(operation_id, "Skipped: another job held the offsite repository all along.")
            return
        raise self.retry(exc=exc, countdown=min(300, 10 * 2**self.request.retries)) from exc
