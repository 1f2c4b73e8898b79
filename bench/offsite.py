"""The offsite backup driven by the portal against plain restic, on the same generated tree in
the same process (root, real BTRFS on a loop device, real restic 0.18, a local repository).

* Plain: ``restic backup --one-file-system --exclude-caches`` of the read-only snapshot, then
  ``restic forget`` with the offsite policy: what a cron script does.
* Portal: ``backups.offsite.offsite_pass`` of the same snapshot: pin, read-only bind mount at
  the fixed path, restic backup with --json progress parsed into the Operation, the rows, and
  restic forget with the rows reconciled from forget's own answer.

Plain restic runs as an admin's script would (no --json, no wrapper). Each round backs up
into two fresh repositories (a first backup: the whole tree is read and
written), alternating which goes first; the figure is the median over the rounds. Reported:
the backup phase alone (the run minus its forget, the issue's ≤ 5 % target) and the whole
run against backup + forget.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

ROUNDS = 5
SMALL_FILES = 3000
BIG_FILES = 6
MIB = 1024 * 1024


def _tree(root: Path) -> int:
    """A home like a member's: many small files in nested folders and a few large ones (random:
    nothing compresses or deduplicates away). Returns its size."""
    rng = random.Random(7)
    total = 0
    for index in range(SMALL_FILES):
        folder = root / f"project{index % 12}" / f"part{index % 37}"
        folder.mkdir(parents=True, exist_ok=True)
        data = os.urandom(rng.randint(1024, 48 * 1024))
        (folder / f"file{index:05d}.py").write_bytes(data)
        total += len(data)
    for index in range(BIG_FILES):
        data = os.urandom(24 * MIB)
        (root / f"checkpoint{index:02d}.pt").write_bytes(data)
        total += len(data)
    return total


def offsite_backup() -> list[dict[str, Any]]:
    if os.geteuid() != 0:
        return [_skipped("needs root (loop devices, mounts)")]
    from backups import offsite, offsite_repo, snapshots
    from backups.models import BackupPolicy, BackupRun, ResticSnapshot, Snapshot
    from hostops import btrfs, files, mounts, restic
    from portal.models import User
    from storage.layout import Layout, prepare_member
    from tests.loopfs import loop_btrfs
    from tests.storage.conftest import point_settings_at

    work = Path(tempfile.mkdtemp(prefix="bench-offsite-"))
    saved = {
        name: getattr(settings, name)
        for name in (
            "STORAGE_ROOT",
            "WORKSPACE_HOME_ROOT",
            "WORKSPACE_SCRATCH_ROOT",
            "WORKSPACE_DATASETS_PATH",
            "BACKUP_RESTIC_REPOSITORY",
            "BACKUP_RESTIC_PASSWORD_FILE",
            "BACKUP_RESTIC_MOUNT_ROOT",
            "BACKUP_RESTIC_CACHE_DIR",
        )
    }
    plain_backup: list[float] = []
    plain_forget: list[float] = []
    portal_run: list[float] = []
    portal_forget: list[float] = []
    try:
        (work / "fs").mkdir()
        with loop_btrfs(work / "fs", count=2) as fs:
            password = work / "password"
            password.write_text("bench password\n")
            password.chmod(0o600)
            point_settings_at(settings, f"{fs.mount}/srv")
            settings.BACKUP_RESTIC_PASSWORD_FILE = str(password)
            settings.BACKUP_RESTIC_MOUNT_ROOT = str(work / "fixed")
            files.ensure_dir(settings.STORAGE_ROOT)
            user, _ = User.objects.get_or_create(username="benchhome", defaults={"email": "benchhome@bench.example"})
            prepare_member(user)
            layout = Layout.from_settings()
            btrfs.subvolume_delete(layout.datasets)  # one source: the member's home
            btrfs.subvolume_delete(layout.portal)
            size = _tree(Path(layout.home_of(user.username)))
            now = snapshots.hour_of(timezone.now())
            Snapshot.objects.filter(source="homes/benchhome").delete()
            snapshots.snapshot_pass(now=now)
            snapshot = Snapshot.objects.get(source="homes/benchhome", deleted_at=None, taken_at=now)
            policy = BackupPolicy.of(BackupPolicy.Tier.RESTIC)
            policy.upload_limit_mbps = 10_000  # a local disk: no limit that binds
            policy.save()
            keep = offsite.keep_policy(policy)
            real_forget = restic.forget
            for round_ in range(ROUNDS):
                order = ("plain", "portal") if round_ % 2 == 0 else ("portal", "plain")
                for which in order:
                    repo_path = work / f"repo-{which}-{round_}"
                    settings.BACKUP_RESTIC_CACHE_DIR = str(work / f"cache-{which}-{round_}")
                    settings.BACKUP_RESTIC_REPOSITORY = str(repo_path)
                    repo = offsite_repo.repository()
                    restic.init(repo)
                    if which == "plain":
                        target = str(work / "plain-mount")
                        mounts.bind_readonly(snapshot.path, target)  # the same path length and reads
                        try:
                            plain_backup.append(
                                _plain(
                                    repo,
                                    "backup",
                                    "--one-file-system",
                                    "--exclude-caches",
                                    "--host=portal",
                                    "--tag=portal",
                                    "--",
                                    target,
                                )
                            )
                            plain_forget.append(
                                _plain(
                                    repo, "forget", *restic.policy_args(keep), "--group-by=host,paths", "--tag=portal"
                                )
                            )
                        finally:
                            mounts.unmount(target)
                    else:
                        spent: list[float] = []

                        def timed_forget(*args: Any, spent: list[float] = spent, **kwargs: Any) -> Any:
                            t0 = time.perf_counter()
                            try:
                                return real_forget(*args, **kwargs)
                            finally:
                                spent.append(time.perf_counter() - t0)

                        restic.forget = timed_forget  # type: ignore[assignment]
                        try:
                            run = BackupRun.objects.create(kind=BackupRun.Kind.RESTIC, started_at=now)
                            t0 = time.perf_counter()
                            offsite.offsite_pass(run, now=now)
                            portal_run.append(time.perf_counter() - t0)
                        finally:
                            restic.forget = real_forget  # type: ignore[assignment]
                        portal_forget.append(sum(spent))
                        if run.result != BackupRun.Result.SUCCEEDED:
                            raise RuntimeError(f"the portal's run did not succeed: {run.message}")
                    shutil.rmtree(repo_path)
            ResticSnapshot.objects.all().delete()
            Snapshot.objects.filter(source="homes/benchhome").delete()
            for row in list(os.scandir(f"{settings.STORAGE_ROOT}/.snapshots/homes/benchhome")):
                btrfs.subvolume_delete(row.path)
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        shutil.rmtree(work, ignore_errors=True)
    backup_plain = statistics.median(plain_backup)
    backup_portal = statistics.median(p - f for p, f in zip(portal_run, portal_forget, strict=True))
    whole_plain = statistics.median(b + f for b, f in zip(plain_backup, plain_forget, strict=True))
    whole_portal = statistics.median(portal_run)
    return [
        {
            "name": "offsite backup: portal / plain restic",
            "value": round(backup_portal / backup_plain, 3),
            "unit": "x",
            "target": "<= 1.05",
            "baseline": (
                f"{size / MIB:.0f} MiB, {SMALL_FILES + BIG_FILES} files; restic backup {backup_plain:.2f} s, "
                f"portal's backup phase {backup_portal:.2f} s (median of {ROUNDS})"
            ),
        },
        {
            "name": "offsite run with forget: portal / plain",
            "value": round(whole_portal / whole_plain, 3),
            "unit": "x",
            "target": "<= 1.05",
            "baseline": f"restic backup + forget {whole_plain:.2f} s, portal's whole run {whole_portal:.2f} s",
        },
    ]


def _plain(repo: Any, *args: str) -> float:
    """Seconds of one plain restic command, as an admin's cron script runs it (no --json), run
    through hostops like every command the portal starts."""
    from hostops import restic
    from hostops.run import run

    argv = [restic.binary(), *repo.options(), "--quiet", *args]
    t0 = time.perf_counter()
    run(argv, timeout=3600, env=repo.env())
    return time.perf_counter() - t0


def _skipped(why: str) -> dict[str, Any]:
    name = "offsite backup: portal / plain restic"
    return {"name": name, "value": "-", "unit": "", "target": "<= 1.05", "baseline": why}


def benchmarks() -> list[dict[str, Any]]:
    return offsite_backup()
