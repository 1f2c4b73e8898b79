"""Celery tasks of the snapshot tier. Thin: beat's hourly start (on the default queue) and the
pass itself, on the storage host's queue where the storage root is mounted."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from backups import snapshots

MAX_RETRIES = 6


@shared_task(acks_late=True, ignore_result=True)
def snapshot_run_task() -> None:
    """Beat's "backups-snapshots" row (backups/migrations/0002_snapshot_policy.py), hourly."""
    snapshots.snapshot_scheduled()


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def snapshot_execute_task(self: Task, operation_id: int, **_params: Any) -> None:
    """Run the pass of Operation ``operation_id``; while another worker runs one, try again a
    little later (the pass is idempotent within its hour), and give up after a few tries."""
    try:
        snapshots.snapshot_execute(operation_id)
    except snapshots.SnapshotBusy as exc:
        if self.request.retries >= MAX_RETRIES:
            snapshots.snapshot_give_up(operation_id, "Skipped: another snapshot pass was running all along.")
            return
        raise self.retry(exc=exc, countdown=min(300, 10 * 2**self.request.retries)) from exc
