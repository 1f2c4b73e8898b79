"""A live restic holding a lock on a repository, for the tests of locks (hostops, the offsite
run, the repository page)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from hostops import restic


def hold_lock(repo: restic.Repository) -> subprocess.Popen[bytes]:
    """A live ``restic backup --stdin``: it holds its (non-exclusive) lock while its stdin stays
    open. Returns once the lock is in the repository."""
    holder = subprocess.Popen(
        [restic.binary(), *repo.options(), "backup", "--stdin", "--stdin-filename=held", "--host=holder"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **repo.env()},
    )
    deadline = time.monotonic() + 30
    while not restic.list_locks(repo):
        if time.monotonic() > deadline or holder.poll() is not None:
            holder.kill()
            pytest.fail("the holder never took its lock")
        time.sleep(0.1)
    return holder
