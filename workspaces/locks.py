"""Who is working on a workspace right now. A worker holds a PostgreSQL session advisory lock
on the workspace for as long as it runs one of its operations. The database drops the lock
the moment the worker's connection dies (SIGKILL, OOM, lost host), so "running, but nobody
holds the lock" is proof that the operation's worker is gone: a redelivered task may take it
over at once instead of waiting for the reaper. SQLite (``make run``: one worker) has no such
locks; there an operation silent for longer than the start timeout counts as abandoned."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from portal.locks import advisory_lock
from portal.models import Operation

LOCK_NAMESPACE = 0x5753  # "WS": keeps workspace locks apart from any other advisory lock


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def workspace_lock(workspace_id: int) -> AbstractContextManager[bool]:
    """Try to become the one worker of ``workspace_id``; yields whether it succeeded."""
    return advisory_lock(LOCK_NAMESPACE, workspace_id)


def stale_after() -> timedelta:
    """How long a running workspace operation may stay silent (waiting for health is the
    longest silent step)."""
    return timedelta(seconds=settings.WORKSPACE_START_TIMEOUT + 120)


def operation_abandoned(operation: Operation, workspace_id: int) -> bool:
    """Whether a running operation's worker is gone (see the module docstring)."""
    if operation.state != Operation.State.RUNNING:
        return False
    if not _postgres():
        return operation.updated < timezone.now() - stale_after()
    with workspace_lock(workspace_id) as acquired:
        return acquired
