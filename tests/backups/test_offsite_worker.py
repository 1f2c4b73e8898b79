"""The offsite run through real Celery worker processes, a real BTRFS and real restic: a worker
SIGKILLed in the middle of a backup. restic stops with it (no upload goes on unwatched, no lock
is left), the run is recorded as failed with the reason and told once, the local snapshot it
held is released, and the next run succeeds with the same repository."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from backups import offsite, offsite_repo
from backups.models import BackupPolicy, BackupRun, ResticSnapshot, Snapshot
from hostops import mounts, restic
from portal.audit import SYSTEM
from portal.models import Host, Notification, Operation, User
from portal.operations import operation_reap
from storage.layout import Layout, prepare_member
from tests.factories import UserFactory
from tests.loopfs import MIB, LoopFs, needs_loop_devices
from tests.storage.conftest import point_settings_at, storage_fs, wipe
from tests.worker import WorkerProcess, wait_for

__all__ = ["storage_fs"]

pytestmark = [
    pytest.mark.worker,
    pytest.mark.loopdev,
    needs_loop_devices,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def worker_root(storage_fs: LoopFs) -> Iterator[str]:
    root = os.path.join(storage_fs.mount, f"srv-offsite-{uuid.uuid4().hex[:8]}")
    os.mkdir(root)
    yield root
    wipe(storage_fs.mount, root)


@pytest.fixture(scope="module")
def offsite_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    base = tmp_path_factory.mktemp("offsite-worker")
    password = base / "password"
    password.write_text("worker test password\n")
    password.chmod(0o600)
    env = {
        "BACKUP_RESTIC_REPOSITORY": str(base / "repo"),
        "BACKUP_RESTIC_PASSWORD_FILE": str(password),
        "BACKUP_RESTIC_MOUNT_ROOT": str(base / "fixed"),
        "BACKUP_RESTIC_CACHE_DIR": str(base / "cache"),
    }
    yield env
    for point in reversed(mounts.mount_points()):
        if point.startswith(env["BACKUP_RESTIC_MOUNT_ROOT"] + "/"):
            mounts.unmount(point, lazy=True)


@pytest.fixture(scope="module")
def celery_worker_env(worker_root: str, offsite_env: dict[str, str]) -> dict[str, str]:
    return {"STORAGE_ROOT": worker_root, **offsite_env}


def _restic_processes(location: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"--repo={location}".encode() in argv:
                found.append(int(entry.name))
    return found


def test_a_worker_killed_mid_backup_fails_the_run_once_and_the_next_run_succeeds(
    worker_root: str,
    offsite_env: dict[str, str],
    settings: Any,
    admin_user: User,
    celery_worker_factory: Callable[[], WorkerProcess],
) -> None:
    point_settings_at(settings, worker_root)
    for name, value in offsite_env.items():
        setattr(settings, name, value)
    Host.local()  # a transactional test elsewhere may have flushed the migration's row
    alice = UserFactory(username="alice")
    prepare_member(alice)
    home = Layout.from_settings().home_of("alice")
    with open(f"{home}/weights.bin", "wb") as handle:
        handle.write(os.urandom(24 * MIB))
    os.chown(f"{home}/weights.bin", alice.pk, alice.pk)
    repository = offsite_repo.repository()
    restic.init(repository)
    policy = BackupPolicy.of(BackupPolicy.Tier.RESTIC)
    policy.upload_limit_mbps = 16  # 2 MB/s: 24 MiB takes 12 s, time enough to kill the worker
    policy.save()

    first = celery_worker_factory()
    op = offsite.offsite_run_now(actor=admin_user, context=SYSTEM)

    def uploading() -> bool:
        op.refresh_from_db(fields=["log", "message"])
        return "homes/alice: backing up" in op.log and "homes/alice:" in op.message

    wait_for(uploading, timeout=60, what="the first worker to start uploading alice's home")
    assert _restic_processes(repository.location)
    assert Snapshot.objects.filter(pinned__startswith="offsite run").exists()
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)

    # restic stops with its worker (SIGINT from the kernel): its lock goes at once, the pack it
    # was uploading (16 MiB at most, at the upload limit) is finished, nothing new is started.
    wait_for(lambda: not restic.list_locks(repository), timeout=15, what="restic to remove its lock")
    wait_for(lambda: not _restic_processes(repository.location), timeout=60, what="restic to stop")
    assert restic.list_locks(repository) == []
    assert restic.snapshots(repository) == []

    # The reaper (beat, every minute) fails the row once it has not moved for the stuck time.
    later = timezone.now() + timedelta(seconds=django_settings.OPERATION_STUCK_SECONDS + 1)
    assert operation_reap(now=later) >= 1
    op.refresh_from_db()
    assert op.state == Operation.State.FAILED

    policy.upload_limit_mbps = 1000
    policy.save()
    celery_worker_factory()
    again = offsite.offsite_run_now(actor=admin_user, context=SYSTEM)  # or beat, the next night

    lost = BackupRun.objects.get(operation=op)
    assert lost.result == BackupRun.Result.FAILED
    assert "worker stopped mid-run" in lost.message
    assert not Snapshot.objects.filter(pinned=f"offsite run {lost.pk}").exists()
    assert Notification.objects.filter(title__contains="Offsite backup (restic): the last run failed").count() == 1

    def final() -> bool:
        again.refresh_from_db()
        return again.is_final

    wait_for(final, timeout=120, interval=0.5, what="the next run to end")
    assert again.state == Operation.State.SUCCEEDED, (again.message, again.error, again.log)
    run = BackupRun.objects.get(operation=again)
    assert run.result == BackupRun.Result.SUCCEEDED, run.message
    (row,) = ResticSnapshot.objects.filter(source="homes/alice")
    assert row.size >= 24 * MIB
    assert [snap.id for snap in restic.snapshots(repository, tags=["source:homes/alice"])] == [row.snapshot_id]
    assert restic.check(repository).ok
    assert Notification.objects.filter(title__contains="Offsite backup (restic)").count() == 2  # failed, then fine
    assert not Snapshot.objects.exclude(pinned="").exists()
