"""The offsite tier on a real BTRFS (RAID10 over loop devices) and real restic 0.18, to a local
repository and the same through rclone's local backend: backups from the hour's read-only
snapshots mounted at a fixed path (so restic finds its parent), the rows, the pins, restic
forget with the policy agreeing with the planner, and the failures (repository missing, wrong
password, a lock, a full target): the run failed with the reason, nothing half-written, one
alert, and the next run succeeds."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from backups import offsite, offsite_repo, policies, retention, runs, snapshots
from backups.models import BackupPolicy, BackupRun, ResticSnapshot, Snapshot
from hostops import mounts, restic
from portal.audit import SYSTEM, AuditContext
from portal.models import AuditEvent, Notification, Operation, User
from storage.layout import Layout, prepare_member
from tests.factories import UserFactory
from tests.loopfs import MIB, needs_loop_devices
from tests.restic_locks import hold_lock
from tests.storage import conftest as storage_conftest

pytestmark = [pytest.mark.loopdev, needs_loop_devices, pytest.mark.django_db]

storage_fs = storage_conftest.storage_fs
btrfs_root = storage_conftest.btrfs_root

PASSWORD = "correct horse battery staple"


def _password_file(directory: Path, password: str = PASSWORD) -> str:
    path = directory / "password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def mount_root(tmp_path: Path, settings: Any) -> Iterator[Path]:
    root = tmp_path / "fixed"
    settings.BACKUP_RESTIC_MOUNT_ROOT = str(root)
    yield root
    for point in reversed(mounts.mount_points()):
        if point.startswith(str(root) + "/"):
            mounts.unmount(point, lazy=True)


@pytest.fixture(params=["local", "rclone"])
def repo(request: pytest.FixtureRequest, tmp_path: Path, settings: Any, mount_root: Path) -> restic.Repository:
    """The offsite tier set up on an initialised repository: a local folder, or the same through
    rclone's local backend (a remote of RCLONE_REMOTES, as a Drive one would be)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    settings.BACKUP_RESTIC_PASSWORD_FILE = _password_file(secrets)
    settings.BACKUP_RESTIC_CACHE_DIR = str(tmp_path / "cache")
    settings.RCLONE_CONFIG_DIR = str(tmp_path / "rclone")
    if request.param == "local":
        settings.BACKUP_RESTIC_REPOSITORY = str(tmp_path / "repo")
    else:
        settings.RCLONE_REMOTES_JSON = '[{"name": "vault", "type": "local"}]'
        settings.BACKUP_RESTIC_REPOSITORY = f"rclone:vault:{tmp_path}/rrepo"
    repository = offsite_repo.repository()
    restic.init(repository)
    return repository


@pytest.fixture
def local_repo(tmp_path: Path, settings: Any, mount_root: Path) -> restic.Repository:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    settings.BACKUP_RESTIC_PASSWORD_FILE = _password_file(secrets)
    settings.BACKUP_RESTIC_CACHE_DIR = str(tmp_path / "cache")
    settings.BACKUP_RESTIC_REPOSITORY = str(tmp_path / "repo")
    repository = offsite_repo.repository()
    restic.init(repository)
    return repository


@pytest.fixture
def admins(admin_user: User) -> list[User]:
    return [admin_user]


def member(username: str) -> User:
    user = UserFactory(username=username)
    prepare_member(user)
    return user


def write(path: str, data: bytes, *, uid: int = 0) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chown(path, uid, uid)


def home_only(alice: User) -> None:
    """Just alice's home as a source (prepare_member makes datasets/ and portal/ too)."""
    from hostops import btrfs

    layout = Layout.from_settings()
    btrfs.subvolume_delete(layout.portal)
    btrfs.subvolume_delete(layout.datasets)


def new_run() -> BackupRun:
    return BackupRun.objects.create(kind=BackupRun.Kind.RESTIC)


def alerts(title_part: str) -> list[Notification]:
    return list(Notification.objects.filter(title__contains=title_part).order_by("pk"))


# --- backups ---------------------------------------------------------------------------------


def test_each_source_is_backed_up_from_its_snapshot_at_a_fixed_path(
    btrfs_root: str, repo: restic.Repository, mount_root: Path, admins: list[User]
) -> None:
    alice = member("alice")
    home = Layout.from_settings().home_of("alice")
    write(f"{home}/notes.txt", b"alice's notes\n", uid=alice.pk)
    write(f"{home}/.cache/pip/big.whl", os.urandom(4096), uid=alice.pk)
    write(f"{btrfs_root}/datasets/mnist/train.bin", os.urandom(8192))

    run = offsite.offsite_pass(new_run())

    assert run.result == BackupRun.Result.SUCCEEDED, run.message
    rows = {row.source: row for row in ResticSnapshot.objects.all()}
    assert set(rows) == {"homes/alice", "datasets", "portal"}
    hour = snapshots.hour_of(timezone.now())
    for source, row in rows.items():
        assert row.path == str(mount_root / source)
        assert row.local is not None
        assert row.local.source == source
        assert row.taken_at == row.local.taken_at == hour  # the hour's snapshot, taken by the run
        assert row.run == run
    assert rows["homes/alice"].owner == alice
    listed = {snap.id: snap for snap in restic.snapshots(repo)}
    assert set(listed) == {row.snapshot_id for row in rows.values()}
    alice_snap = listed[rows["homes/alice"].snapshot_id]
    assert alice_snap.hostname == "portal"
    assert alice_snap.paths == (str(mount_root / "homes/alice"),)
    assert set(alice_snap.tags) == {"portal", "source:homes/alice"}
    assert alice_snap.time == hour  # --time: the snapshot's own moment
    names = {node.path for node in restic.ls(repo, alice_snap.id, recursive=True)}
    assert str(mount_root / "homes/alice/notes.txt") in names
    assert not any("/.cache" in name for name in names)  # the policy's excludes
    # Nothing left mounted, nothing left pinned.
    assert not [point for point in mounts.mount_points() if point.startswith(str(mount_root))]
    assert not Snapshot.objects.exclude(pinned="").exists()
    assert run.files_new >= 2
    assert run.bytes_total > 8192
    assert run.snapshots_made == 3
    assert {item["source"] for item in run.details["sources"]} == set(rows)
    assert "3 of 3 sources backed up" in run.message
    assert not alerts("Offsite")


def test_the_next_night_reads_only_what_changed(
    btrfs_root: str, local_repo: restic.Repository, settings: Any, admins: list[User]
) -> None:
    alice = member("alice")
    home_only(alice)
    home = Layout.from_settings().home_of("alice")
    for index in range(20):
        write(f"{home}/file{index:02d}.txt", f"line {index}\n".encode(), uid=alice.pk)
    run1 = offsite.offsite_pass(new_run(), now=datetime(2026, 12, 1, 5, 0, tzinfo=UTC))
    assert run1.result == BackupRun.Result.SUCCEEDED, run1.message
    write(f"{home}/file03.txt", b"changed\n", uid=alice.pk)

    # The next night's snapshot: another folder, mounted at the same fixed path.
    run2 = offsite.offsite_pass(new_run(), now=datetime(2026, 12, 2, 5, 0, tzinfo=UTC))

    assert run2.result == BackupRun.Result.SUCCEEDED, run2.message
    (first,) = run1.details["sources"]
    (second,) = run2.details["sources"]
    assert first["files_new"] == 20
    assert second["files_changed"] == 1
    assert second["files_unmodified"] == 19  # restic found last night's snapshot as its parent
    latest = restic.snapshots(local_repo)[-1]
    assert latest.parent == first["snapshot_id"]


def test_progress_goes_into_the_operation(
    btrfs_root: str, local_repo: restic.Repository, admins: list[User], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = member("alice")
    home_only(alice)
    home = Layout.from_settings().home_of("alice")
    write(f"{home}/data.bin", os.urandom(6 * MIB), uid=alice.pk)
    monkeypatch.setattr(offsite, "PROGRESS_FPS", 20.0)
    slow = restic.Repository(
        location=local_repo.location,
        password_file=local_repo.password_file,
        cache_dir=local_repo.cache_dir,
        limit_upload_kib=2048,  # 6 MiB at 2 MiB/s: three seconds of status lines
    )
    monkeypatch.setattr(offsite_repo, "repository", lambda for_backup=False: slow)
    seen: list[tuple[int | None, str]] = []
    real = runs.operation_progress

    def recording(operation_id: int, *, percent: int | None = None, message: str = "", log: str = "") -> None:
        seen.append((percent, message))
        real(operation_id, percent=percent, message=message, log=log)

    monkeypatch.setattr(runs, "operation_progress", recording)
    op = offsite.offsite_run_now(actor=admins[0], context=SYSTEM)

    run = offsite.offsite_execute(op.pk)

    assert run is not None
    assert run.result == BackupRun.Result.SUCCEEDED, run.message
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED
    assert op.percent == 100
    assert "1 of 1 sources backed up" in op.message
    # restic's status lines, as the Operation shows them (restic counts what it has read, so
    # with the upload limited it reaches 100% of the reading while the upload still runs).
    statuses = [(p, m) for p, m in seen if p is not None and m.startswith("homes/alice: ")]
    assert len(statuses) >= 3, seen
    assert all(0 <= p <= 90 for p, _ in statuses)
    assert any(m.startswith("homes/alice: 1 of 1 files, 6M of 6M") for _, m in statuses)
    assert "homes/alice: snapshot" in op.log
    assert AuditEvent.objects.filter(action="backups.offsite_now", actor=admins[0]).count() == 1


def test_a_snapshot_being_backed_up_is_pinned_against_the_hourly_retention(
    btrfs_root: str, local_repo: restic.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = member("alice")
    home_only(alice)
    seen: list[list[str]] = []
    real = restic.backup

    def watching(*args: Any, **kwargs: Any) -> restic.BackupSummary:
        seen.append(list(Snapshot.objects.exclude(pinned="").values_list("pinned", flat=True)))
        return real(*args, **kwargs)

    monkeypatch.setattr(restic, "backup", watching)
    run = offsite.offsite_pass(new_run())
    assert seen == [[f"offsite run {run.pk}"]]
    assert not Snapshot.objects.exclude(pinned="").exists()


# --- one retention for both tiers ------------------------------------------------------------


def test_restic_forget_keeps_exactly_what_the_planner_keeps(
    btrfs_root: str, local_repo: restic.Repository, settings: Any, mount_root: Path
) -> None:
    """Nightly snapshots over two and a half weeks, with gaps, in Europe/Berlin across the end of summer time:
    restic forget with the offsite policy and the planner on the rows agree snapshot for snapshot."""
    settings.TIME_ZONE = "Europe/Berlin"
    alice = member("alice")
    home_only(alice)
    home = Layout.from_settings().home_of("alice")
    zone = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 10, 15, 6, 0, tzinfo=zone)  # summer time ends on the 25th
    days = [d for d in range(17) if d not in (3, 7, 8)]
    source = "homes/alice"
    target = offsite_repo.mount_path(source)
    snapshots.snapshot_pass(now=datetime(2026, 12, 1, 5, tzinfo=UTC))
    local = Snapshot.objects.get(source=source)
    write(f"{home}/f.txt", b"x", uid=alice.pk)
    mounts.bind_readonly(local.path, target)
    try:
        for day in days:
            when = (start + timedelta(days=day)).astimezone(zone)
            summary = restic.backup(local_repo, [target], time=when, tags=["portal", f"source:{source}"], host="portal")
            ResticSnapshot.objects.create(
                snapshot_id=summary.snapshot_id, source=source, owner=alice, path=target, taken_at=when, local=local
            )
    finally:
        mounts.unmount(target)
    policy = BackupPolicy.of(BackupPolicy.Tier.RESTIC)
    policy.keep_daily, policy.keep_weekly = 4, 2
    policy.save()
    rows = list(ResticSnapshot.objects.all())
    planned = retention.plan(policies.planner_offsite(rows), policies.to_planner(policy), now=timezone.now())
    (group,) = planned.groups
    planner_keep = {kept.snapshot.id for kept in group.keep}
    assert 0 < len(planner_keep) < len(rows)

    problem = offsite._forget(local_repo, policy, new_run(), timezone.now(), runs.Progress(None, offsite.logger))

    assert problem is None
    restic_keep = {snap.id for snap in restic.snapshots(local_repo)}
    by_id = {str(row.pk): row.snapshot_id for row in rows}
    assert {by_id[pk] for pk in planner_keep} == restic_keep
    live = set(ResticSnapshot.objects.filter(forgotten_at=None).values_list("snapshot_id", flat=True))
    assert live == restic_keep  # the rows were reconciled


def test_the_offsite_preview_plans_the_rows_with_restics_reasons(db: None) -> None:
    policy = BackupPolicy.of(BackupPolicy.Tier.RESTIC)
    base = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    for day in range(10):
        ResticSnapshot.objects.create(
            snapshot_id=f"{day:064x}",
            source="homes/alice",
            path="/run/portal-backup/homes/alice",
            taken_at=base + timedelta(days=day),
        )
    (preview,) = policies.retention_preview(policy, now=base + timedelta(days=10))
    assert preview.source == "homes/alice"
    kept = [row for row in preview.rows if row.keep]
    assert len(kept) == 7 + 1  # seven daily, and one weekly beyond them
    assert any("daily snapshot" in row.reasons for row in kept)


# --- failures --------------------------------------------------------------------------------


def test_a_missing_repository_fails_with_words_is_never_created_and_the_next_run_succeeds(
    btrfs_root: str, tmp_path: Path, settings: Any, mount_root: Path, admins: list[User]
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    settings.BACKUP_RESTIC_PASSWORD_FILE = _password_file(secrets)
    settings.BACKUP_RESTIC_CACHE_DIR = str(tmp_path / "cache")
    settings.BACKUP_RESTIC_REPOSITORY = str(tmp_path / "nowhere")
    alice = member("alice")
    home_only(alice)

    run = offsite.offsite_pass(new_run())

    assert run.result == BackupRun.Result.FAILED
    assert "There is no repository at" in run.message
    assert "(restic exit 10). None is ever made by itself" in run.message
    assert not (tmp_path / "nowhere").exists()
    assert not ResticSnapshot.objects.exists()
    assert not Snapshot.objects.exclude(pinned="").exists()
    assert not [point for point in mounts.mount_points() if point.startswith(str(mount_root))]
    assert len(alerts("Offsite backup (restic): the last run failed")) == 1
    offsite.offsite_pass(new_run())  # failing again: the same incident, told once
    assert len(alerts("Offsite backup (restic): the last run failed")) == 1

    restic.init(offsite_repo.repository())  # the admin's "create repository"
    again = offsite.offsite_pass(new_run())

    assert again.result == BackupRun.Result.SUCCEEDED, again.message
    assert ResticSnapshot.objects.count() == 1
    assert len(alerts("Offsite backup (restic)")) == 2  # failed, then working again
    assert "working again" in alerts("Offsite backup (restic)")[-1].title.lower() or "resolved" in (
        alerts("Offsite backup (restic)")[-1].title.lower()
    )


def test_a_wrong_password_fails_with_words_and_never_shows_the_password(
    btrfs_root: str, local_repo: restic.Repository, tmp_path: Path, settings: Any, admins: list[User]
) -> None:
    alice = member("alice")
    home_only(alice)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    settings.BACKUP_RESTIC_PASSWORD_FILE = _password_file(wrong, "not the password")

    run = offsite.offsite_pass(new_run())

    assert run.result == BackupRun.Result.FAILED
    assert "The password file does not open this repository (restic exit 12)" in run.message
    assert "not the password" not in run.message
    assert PASSWORD not in run.message
    assert not ResticSnapshot.objects.exists()
    assert restic.snapshots(local_repo) == []
    assert len(alerts("Offsite backup (restic): the last run failed")) == 1


def test_a_missing_password_file_is_named(
    btrfs_root: str, local_repo: restic.Repository, tmp_path: Path, settings: Any
) -> None:
    member("alice")
    settings.BACKUP_RESTIC_PASSWORD_FILE = str(tmp_path / "gone")
    run = offsite.offsite_pass(new_run())
    assert run.result == BackupRun.Result.FAILED
    assert f"password file {tmp_path / 'gone'} is missing on the worker" in run.message


def test_a_lock_held_by_another_restic_defers_retention_with_its_holder_named(
    btrfs_root: str, local_repo: restic.Repository, admins: list[User]
) -> None:
    """A backup shares the repository with another one; forget needs it alone, so it waits for
    the next night and the run says who holds the lock. Nothing is unlocked by itself."""
    alice = member("alice")
    home_only(alice)
    holder = hold_lock(local_repo)
    try:
        run = offsite.offsite_pass(new_run())
    finally:
        holder.kill()
        holder.wait()

    assert run.result == BackupRun.Result.PARTIAL
    assert "1 of 1 sources backed up" in run.message
    assert "Retention not applied: The repository is locked by " in run.message
    assert f"PID {holder.pid}" in run.message
    assert "(restic exit 11)" in run.message
    assert "'Break stale lock' on the Offsite repository page" in run.message
    assert ResticSnapshot.objects.count() == 1
    assert len(restic.list_locks(local_repo)) == 1  # the killed holder's lock stays for the admin
    assert len(alerts("partly failed")) == 1

    restic.unlock(local_repo)  # the admin's "break stale lock"
    again = offsite.offsite_pass(new_run())
    assert again.result == BackupRun.Result.SUCCEEDED, again.message


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB filesystem (tmpfs) for the repository: full long before the backup is done."""
    point = tmp_path / "small"
    point.mkdir()
    subprocess.run(["/usr/bin/mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(point)], check=True)
    yield point
    subprocess.run(["/usr/bin/umount", "--lazy", str(point)], check=True)


def test_a_full_target_fails_the_run_leaves_no_snapshot_and_the_next_run_succeeds(
    btrfs_root: str, tmp_path: Path, settings: Any, mount_root: Path, admins: list[User], small_disk: Path
) -> None:
    from hostops import btrfs

    alice = member("alice")
    home_only(alice)
    home = Layout.from_settings().home_of("alice")
    write(f"{home}/big.bin", os.urandom(48 * MIB), uid=alice.pk)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    settings.BACKUP_RESTIC_PASSWORD_FILE = _password_file(secrets)
    settings.BACKUP_RESTIC_CACHE_DIR = str(tmp_path / "cache")
    settings.BACKUP_RESTIC_REPOSITORY = f"{small_disk}/repo"
    repository = offsite_repo.repository()
    restic.init(repository)

    run = offsite.offsite_pass(new_run())

    assert run.result == BackupRun.Result.FAILED
    assert "The backup target is full (no space left on device)" in run.message
    assert not ResticSnapshot.objects.exists()
    assert restic.snapshots(repository) == []
    assert len(alerts("Offsite backup (restic): the last run failed")) == 1

    # The member tidies up; the next hour's snapshot no longer holds the big file.
    os.unlink(f"{home}/big.bin")
    write(f"{home}/small.txt", b"fits\n", uid=alice.pk)
    for row in Snapshot.objects.all():
        btrfs.subvolume_delete(row.path)
    Snapshot.objects.update(deleted_at=timezone.now())
    restic.unlock(repository)  # the failed run's own lock went with it; this removes nothing else
    again = offsite.offsite_pass(new_run())

    assert again.result == BackupRun.Result.SUCCEEDED, again.message
    assert len(restic.snapshots(repository)) == 1
    assert restic.check(repository).ok


# --- services --------------------------------------------------------------------------------


def test_back_up_now_is_refused_with_words_when_not_set_up_or_busy(
    db: None, settings: Any, admin_user: User, django_capture_on_commit_callbacks: Any
) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = ""
    with pytest.raises(offsite.OffsiteError, match="No offsite repository is set up"):
        offsite.offsite_run_now(actor=admin_user, context=AuditContext())
    settings.BACKUP_RESTIC_REPOSITORY = "rclone:gdrive:backup"
    settings.RCLONE_REMOTES_JSON = "[]"
    with pytest.raises(offsite.OffsiteError, match="names the rclone remote 'gdrive', which RCLONE_REMOTES does not"):
        offsite.offsite_run_now(actor=admin_user, context=AuditContext())
    settings.BACKUP_RESTIC_REPOSITORY = "/srv/backup-disk/restic"
    assert not Operation.objects.filter(kind=offsite.OFFSITE_KIND).exists()
    with django_capture_on_commit_callbacks():
        offsite.offsite_run_now(actor=admin_user, context=AuditContext())
    with pytest.raises(offsite.OffsiteError, match="already queued or running"):
        offsite.offsite_run_now(actor=admin_user, context=AuditContext())
    assert Operation.objects.filter(kind=offsite.OFFSITE_KIND).count() == 1


def test_beat_skips_a_tier_that_is_off_or_not_set_up(db: None, settings: Any) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = ""
    assert offsite.offsite_scheduled() is None
    settings.BACKUP_RESTIC_REPOSITORY = "/srv/backup-disk/restic"
    BackupPolicy.objects.filter(tier=BackupPolicy.Tier.RESTIC).update(enabled=False)
    assert offsite.offsite_scheduled() is None
    assert not BackupRun.objects.exists()


def test_a_second_delivery_of_a_run_already_running_records_the_lost_worker(
    db: None, settings: Any, admin_user: User
) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = "/srv/backup-disk/restic"
    op = offsite.offsite_run_now(actor=admin_user, context=AuditContext())
    Operation.objects.filter(pk=op.pk).update(state=Operation.State.RUNNING)
    BackupRun.objects.filter(operation=op).update(started_at=timezone.now() - timedelta(minutes=5))
    Snapshot.objects.create(
        source="homes/x",
        path="/tmp/nowhere/x",
        taken_at=timezone.now(),
        pinned=f"offsite run {BackupRun.objects.get(operation=op).pk}",
    )

    assert offsite.offsite_execute(op.pk) is None

    run = BackupRun.objects.get(operation=op)
    assert run.result == BackupRun.Result.FAILED
    assert "worker stopped mid-run" in run.message
    assert not Snapshot.objects.exclude(pinned="").exists()
    op.refresh_from_db()
    assert op.state == Operation.State.FAILED


def test_a_snapshot_whose_row_was_lost_is_adopted_and_a_forgotten_one_marked(
    btrfs_root: str, local_repo: restic.Repository
) -> None:
    """A worker that died between restic writing its snapshot and the row being saved: the
    next reconcile records it (source, owner and local snapshot from its tags and time); a
    snapshot deleted outside the portal is marked forgotten."""
    alice = member("alice")
    home_only(alice)
    run = offsite.offsite_pass(new_run())
    assert run.result == BackupRun.Result.SUCCEEDED, run.message
    row = ResticSnapshot.objects.get()
    snapshot_id, local = row.snapshot_id, row.local
    row.delete()

    assert offsite.reconcile(local_repo) == (0, 1)

    adopted = ResticSnapshot.objects.get()
    assert (adopted.snapshot_id, adopted.source, adopted.owner, adopted.local) == (
        snapshot_id,
        "homes/alice",
        alice,
        local,
    )
    from hostops.run import run as host_run

    host_run(  # an admin's restic forget by hand
        [restic.binary(), *local_repo.options(), "forget", snapshot_id],
        timeout=60,
        env=local_repo.env(),
    )
    assert offsite.reconcile(local_repo) == (1, 0)
    adopted.refresh_from_db()
    assert adopted.forgotten_at is not None


def test_back_up_now_on_the_page_says_why_it_cannot_start(admin_client: Any, settings: Any) -> None:
    from django.urls import reverse

    settings.BACKUP_RESTIC_REPOSITORY = ""
    response = admin_client.post(reverse("backups:offsite-now"), follow=True)
    assert response.status_code == 200
    assert "No offsite repository is set up" in response.content.decode()
    assert not Operation.objects.filter(kind=offsite.OFFSITE_KIND).exists()
    assert not BackupRun.objects.filter(kind=BackupRun.Kind.RESTIC).exists()
