"""The offsite repository for tests, as settings describe it: a local folder, or the same
through rclone's local backend (a remote of RCLONE_REMOTES), with its password file; a restic
that holds a lock for real; restic snapshots made the way the nightly run makes them; and the
queued Operations of the repository page run as the worker runs them (its tasks, called)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from backups import offsite_admin, offsite_admin_tasks, offsite_repo
from backups.models import ResticSnapshot, Snapshot
from hostops import mounts, restic
from portal.models import Operation
from tests.restic_locks import hold_lock

PASSWORD = "correct horse battery staple 0xA1"
HOSTNAME = socket.gethostname()
_TASKS = {
    offsite_admin.CHECK_KIND: offsite_admin_tasks.repository_check_task,
    offsite_admin.CREATE_KIND: offsite_admin_tasks.repository_create_task,
    offsite_admin.UNLOCK_KIND: offsite_admin_tasks.repository_unlock_task,
}


@dataclass(frozen=True)
class Where:
    location: str
    path: Path  # the folder holding the repository's files
    password_file: Path


def point_offsite_at(settings: Any, tmp_path: Path, kind: str = "local") -> Where:
    """BACKUP_RESTIC_REPOSITORY and its password file, RCLONE_* and the cache under tmp_path."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    password = secrets / "restic-password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    settings.BACKUP_RESTIC_PASSWORD_FILE = str(password)
    settings.BACKUP_RESTIC_CACHE_DIR = str(tmp_path / "cache")
    settings.BACKUP_RESTIC_MOUNT_ROOT = str(tmp_path / "mnt")
    settings.RCLONE_CONFIG_DIR = str(tmp_path / "rclone")
    path = tmp_path / "repo"
    if kind == "local":
        settings.RCLONE_REMOTES_JSON = "[]"
        location = str(path)
    else:
        settings.RCLONE_REMOTES_JSON = json.dumps([{"name": "vault", "type": "local"}])
        location = f"rclone:vault:{path}"
    settings.BACKUP_RESTIC_REPOSITORY = location
    return Where(location=location, path=path, password_file=password)


def run_queued() -> list[Operation]:
    """Run every queued Operation of the repository page as the worker would (oldest first)."""
    ran = []
    for op in Operation.objects.filter(kind__in=offsite_admin.KINDS, state=Operation.State.QUEUED).order_by("pk"):
        _TASKS[op.kind](op.pk, **op.params)
        op.refresh_from_db()
        ran.append(op)
    return ran


def stale_lock(repo: restic.Repository) -> int:
    """A lock left by a restic killed mid-backup (SIGKILL: it cannot clean up); its PID."""
    holder = hold_lock(repo)
    holder.kill()
    holder.wait()
    return holder.pid


def offsite_snapshot(repo: restic.Repository, local: Snapshot, folder: str) -> ResticSnapshot:
    """A restic snapshot of ``local`` made as the nightly run makes it: ``folder`` (the BTRFS
    snapshot's files) bind-mounted at the source's fixed path, backed up with the snapshot's
    time, the portal's host and tags, and its ResticSnapshot row."""
    target = offsite_repo.mount_path(local.source)
    mounts.bind_readonly(folder, target)
    try:
        summary = restic.backup(
            repo,
            [target],
            time=local.taken_at,
            host=settings.BACKUP_RESTIC_HOST,
            tags=["portal", f"source:{local.source}"],
        )
    finally:
        mounts.unmount(target)
    return ResticSnapshot.objects.create(
        snapshot_id=summary.snapshot_id,
        source=local.source,
        owner=local.owner,
        path=target,
        taken_at=local.taken_at,
        local=local,
        files=summary.total_files_processed,
        size=summary.total_bytes_processed,
    )


def local_snapshot(source: str, taken_at: datetime, owner: Any = None) -> Snapshot:
    return Snapshot.objects.create(
        source=source,
        owner=owner,
        path=f"{settings.STORAGE_ROOT}/.snapshots/{source}/{taken_at:%Y-%m-%dT%H%M%SZ}",
        taken_at=taken_at,
    )


def exclusive_lock(repo: restic.Repository, locks_folder: Path, data_folder: Path) -> subprocess.Popen[bytes]:
    """A ``restic check --read-data`` frozen (SIGSTOP) while it holds its exclusive lock: a live
    job that blocks every other restic. ``locks_folder`` is the repository's locks/, watched
    directly (asking restic costs its key derivation each time, longer than the check takes)."""
    (data_folder / "big").write_bytes(os.urandom(30 * 1024 * 1024))
    restic.backup(repo, [str(data_folder)])
    checker = subprocess.Popen(
        [restic.binary(), *repo.options(), "check", "--read-data"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **repo.env()},
    )
    deadline = time.monotonic() + 30
    # restic writes a temporary file first and renames it: wait for the lock's own name.
    while not any(re.fullmatch(r"[0-9a-f]{64}", entry.name) for entry in locks_folder.iterdir()):
        if time.monotonic() > deadline or checker.poll() is not None:
            checker.kill()
            pytest.fail("restic check never took its lock")
        time.sleep(0.005)
    checker.send_signal(signal.SIGSTOP)
    return checker
