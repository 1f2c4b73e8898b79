"""The restore drill on the production path: an admin's "Run drill now" goes through the broker
to a real Celery worker process on the storage host's queue, which restores from a real restic
repository, compares with the read-only BTRFS snapshot and checks the repository; the page the
admin then opens shows the run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from backups import drill, offsite_repo, snapshots
from backups.models import BackupRun, ResticSnapshot, Snapshot
from hostops import btrfs, mounts, restic
from portal.models import Operation, User
from tests.factories import UserFactory
from tests.loopfs import LoopFs, loop_btrfs, needs_loop_devices
from tests.storage.conftest import point_settings_at, wipe
from tests.worker import WorkerProcess, wait_for

RESTIC_BINARY = os.environ.get(restic.BINARY_ENV) or "/usr/local/lib/portal-test/bin/restic"
pytestmark = [
    pytest.mark.worker,
    pytest.mark.loopdev,
    needs_loop_devices,
    pytest.mark.skipif(not os.access(RESTIC_BINARY, os.X_OK), reason=f"needs restic 0.18 at {RESTIC_BINARY}"),
    pytest.mark.django_db(transaction=True),
]
WHEN = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A BTRFS for the storage root and a restic repository, the same for the worker and the test."""
    folder = tmp_path_factory.mktemp("drill-worker")
    secret = folder / "password"
    secret.write_text("drill-worker-password\n")
    secret.chmod(0o600)
    (folder / "fs").mkdir()
    with loop_btrfs(folder / "fs") as fs:
        values = {
            "STORAGE_ROOT": f"{fs.mount}/srv",
            "BACKUP_RESTIC_REPOSITORY": str(folder / "repo"),
            "BACKUP_RESTIC_PASSWORD_FILE": str(secret),
            "BACKUP_RESTIC_MOUNT_ROOT": str(folder / "mnt"),
            "BACKUP_RESTIC_CACHE_DIR": str(folder / "cache"),
        }
        restic.init(restic.Repository(location=values["BACKUP_RESTIC_REPOSITORY"], password_file=str(secret)))
        yield {"fs": fs, "env": values}


@pytest.fixture(scope="module")
def celery_worker_env(place: dict[str, Any]) -> dict[str, str]:
    return {**place["env"], "BACKUP_DRILL_SAMPLE": "3"}


@pytest.fixture
def root(place: dict[str, Any], settings: Any) -> Iterator[str]:
    fs: LoopFs = place["fs"]
    path = place["env"]["STORAGE_ROOT"]
    os.makedirs(path, exist_ok=True)
    point_settings_at(settings, path)
    for name, value in place["env"].items():
        if name != "STORAGE_ROOT":
            setattr(settings, name, value)
    yield path
    wipe(fs.mount, path)


def _backed_up(root: str, owner: User) -> ResticSnapshot:
    """alice's home frozen read-only and backed up as the nightly run does (see test_drill.py)."""
    home = f"{root}/homes/alice"
    os.makedirs(f"{root}/homes", exist_ok=True)
    btrfs.subvolume_create(home)
    for index in range(4):
        Path(home, f"part{index}.bin").write_bytes(os.urandom(40_000))
    dest = snapshots.snapshot_path(root, "homes/alice", WHEN)
    os.makedirs(os.path.dirname(dest))
    btrfs.snapshot_readonly(home, dest)
    local = Snapshot.objects.create(source="homes/alice", owner=owner, path=dest, taken_at=WHEN)
    target = offsite_repo.mount_path("homes/alice")
    mounts.bind_readonly(dest, target)
    try:
        summary = restic.backup(
            offsite_repo.repository(), [target], time=WHEN, tags=["portal", "source:homes/alice"], host="portal"
        )
    finally:
        mounts.unmount(target)
    return ResticSnapshot.objects.create(
        snapshot_id=summary.snapshot_id, source="homes/alice", owner=owner, path=target, taken_at=WHEN, local=local
    )


def test_the_worker_runs_the_drill_an_admin_asked_for(root: str, celery_worker_process: WorkerProcess) -> None:
    ada = UserFactory(username="ada", is_staff=True)
    alice = UserFactory(username="alice")
    _backed_up(root, alice)
    client = Client()
    client.force_login(ada)

    assert client.post(reverse("backups:drill-now")).status_code == 302
    op = Operation.objects.get(kind=drill.DRILL_KIND)
    done = wait_for(
        lambda: Operation.objects.filter(pk=op.pk, state__in=Operation.FINAL_STATES).first(),
        timeout=120,
        what="the drill to end",
    )

    run = BackupRun.objects.get(operation=op)
    assert done.state == Operation.State.SUCCEEDED, (run.message, celery_worker_process.log()[-3000:])
    assert run.result == BackupRun.Result.SUCCEEDED
    assert len(run.details["files"]) == 3  # BACKUP_DRILL_SAMPLE from the worker's environment
    assert all(item["match"] for item in run.details["files"])
    assert run.details["check"]["ok"] is True
    assert not os.listdir(f"{root}/{drill.STAGING_FOLDER}")
    page = client.get(reverse("backups:history-run", args=[run.pk])).content.decode()
    assert page.count('pill-ok">Match') == 3
