"""Celery tasks of the restore drill (backups/drill.py). Thin: beat's monthly start (on the
default queue) and the drill itself, on the storage host's queue where the local snapshots are."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from backups import drill

MAX_RETRIES = 8  # about half an hour of waiting in all: the night's backup may hold the repository


@shared_task(acks_late=True, ignore_result=True)
def drill_run_task() -> None:
    """Beat's "backups-drill" row (backups/migrations/0004_offsite_schedules.py), monthly."""
    drill.drill_scheduled()


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def drill_execute_task(self: Task, operation_id: int, **_params: Any) -> None:
    """Run the drill of Operation ``operation_id``; while another job holds the repository, try
    again a little later, and give up (a failed drill, told) after a few tries."""
    try:
        drill.drill_execute(operation_id)
    except drill.DrillBusy as exc:
        if self.request.retries >= MAX_RETRIES:
            drill.drill_give_up(operation_id, "Not run: another job held the offsite repository all along.")
            return
        raise self.retry(exc=exc, countdown=min(600, 10 * 2**self.request.retries)) from exc
