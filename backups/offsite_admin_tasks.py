"""Celery tasks of the offsite repository's admin actions (backups/offsite_admin.py), on the
storage host's queue where the password file and rclone.conf are. Thin: one per Operation kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task, shared_task

from backups import offsite_admin

MAX_RETRIES = 12  # every 5 minutes at most: an hour of waiting for the night's job to let go
_GAVE_UP = "Not done: another job (the night's backup or the drill) held the repository all along. Try again later."


@shared_task(acks_late=True, ignore_result=True)
def repository_check_task(operation_id: int, **_params: Any) -> None:
    """Read the repository for the page (no repository lock: it only reads)."""
    offsite_admin.repository_check_execute(operation_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def repository_create_task(self: Task, operation_id: int, location: str = "", **_params: Any) -> None:
    """Create the repository the admin confirmed, once no other job holds it."""
    _retrying(self, operation_id, lambda: offsite_admin.repository_create_execute(operation_id, location=location))


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def repository_unlock_task(self: Task, operation_id: int, lock_id: str = "", **_params: Any) -> None:
    """Break a stale lock, once no other job of the portal holds the repository."""
    _retrying(self, operation_id, lambda: offsite_admin.repository_unlock_execute(operation_id, lock_id=lock_id))


def _retrying(task: Task, operation_id: int, work: Callable[[], None]) -> None:
    try:
        work()
    except offsite_admin.RepositoryBusy as exc:
        if task.request.retries >= MAX_RETRIES:
            offsite_admin.repository_give_up(operation_id, _GAVE_UP)
            return
        raise task.retry(exc=exc, countdown=min(300, 10 * 2**task.request.retries)) from exc
