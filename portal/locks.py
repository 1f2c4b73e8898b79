"""PostgreSQL session advisory locks: "one worker at a time" for a job, held for as long as
the worker's connection lives. The database drops the lock the moment that connection dies
(SIGKILL, OOM, a lost host), so a redelivered task finding the lock free knows the previous
worker is gone. SQLite (``make run``: one worker) has no such locks: there every try succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


@contextmanager
def advisory_lock(namespace: int, key: int) -> Iterator[bool]:
    """Try to take lock (``namespace``, ``key``) without waiting; yields whether it was taken,
    and releases it on leaving if it was."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])
