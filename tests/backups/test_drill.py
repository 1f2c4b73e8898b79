"""The restore drill against the real parts: restic 0.18 repositories (a local folder, and the
same folder through rclone's local backend), read-only BTRFS snapshots on the storage tests'
loop filesystem, bound read-only at the source's fixed path while restic reads them, exactly as
the nightly offsite run makes its snapshots. Good drills, a corrupted pack, a local copy that
differs, a planted symlink, nothing to verify, a busy repository, a tier not set up.

restic's key derivation makes ``init`` take a second or two, so one repository serves the
module (the tests that damage one make their own)."""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from django.db import connection
from django.utils import timezone

from backups import drill, drill_sample, drill_tasks, offsite_repo, snapshots
from backups.models import BackupRun, ResticSnapshot, Snapshot
from hostops import btrfs, mounts, restic
from portal.audit import SYSTEM, AuditContext
from portal.models import AuditEvent, Notification, Operation, User
from tests.factories import UserFactory
from tests.loopfs import needs_loop_devices
from tests.storage.conftest import btrfs_root, storage_fs

__all__ = ["btrfs_root", "storage_fs"]  # the fixtures, shared with the storage tests

RESTIC_BINARY = os.environ.get(restic.BINARY_ENV) or "/usr/local/lib/portal-test/bin/restic"
pytestmark = [
    needs_loop_devices,
    pytest.mark.loopdev,
    pytest.mark.skipif(not os.access(RESTIC_BINARY, os.X_OK), reason=f"needs restic 0.18 at {RESTIC_BINARY}"),
]

PASSWORD = "drill-marker-Pw-7c1d"  # must show up in no message, log line or detail
T1 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
T2 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One initialised repository folder and its password file, for the module."""
    place = tmp_path_factory.mktemp("drill-vault")
    secret = place / "password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    location = str(place / "repo")
    restic.init(restic.Repository(location=location, password_file=str(secret)))
    return {"place": str(place), "location": location, "password_file": str(secret)}


def point_at(settings: Any, vault: dict[str, str], backend: str, tmp_path: Path) -> str:
    """Settings naming ``vault``'s repository directly or through rclone's local backend."""
    settings.BACKUP_RESTIC_PASSWORD_FILE = vault["password_file"]
    settings.BACKUP_RESTIC_MOUNT_ROOT = str(tmp_path / "mnt")
    settings.BACKUP_RESTIC_CACHE_DIR = str(tmp_path / "cache")
    settings.RCLONE_CONFIG_DIR = str(tmp_path / "rclone")
    settings.RCLONE_REMOTES_JSON = json.dumps([{"name": "vault", "type": "local"}])
    location = vault["location"]
    settings.BACKUP_RESTIC_REPOSITORY = location if backend == "local" else f"rclone:vault:{location}"
    return settings.BACKUP_RESTIC_REPOSITORY


@pytest.fixture
def offsite(settings: Any, vault: dict[str, str], tmp_path: Path) -> str:
    """A local repository: the drill's logic is the same above hostops whatever the backend
    (tests/hostops/test_restic.py runs restic through both), and rclone's costs seconds a call."""
    return point_at(settings, vault, "local", tmp_path)


@pytest.fixture(params=["local", "rclone"])
def offsite_any(request: pytest.FixtureRequest, settings: Any, vault: dict[str, str], tmp_path: Path) -> str:
    """Both backends, for the drill that restores and compares end to end."""
    return point_at(settings, vault, request.param, tmp_path)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The tasks the services send (the broker is not what is tested here)."""
    got: list[dict[str, Any]] = []

    def send_task(name: str, args: list[Any] | None = None, **kwargs: Any) -> None:
        got.append({"name": name, "args": args, **kwargs})

    monkeypatch.setattr(current_app, "send_task", send_task)
    return got


@pytest.fixture
def admin(db: None) -> User:
    return UserFactory(username="ada", is_staff=True)


def local_snapshot(
    root: str, source: str, at: datetime, files: dict[str, bytes], owner: User | None = None
) -> Snapshot:
    """The source's subvolume holding ``files`` (and nothing else), frozen read-only at ``at``."""
    live = f"{root}/{source}"
    if not os.path.isdir(live):
        os.makedirs(os.path.dirname(live), exist_ok=True)
        btrfs.subvolume_create(live)
    for name in os.listdir(live):  # what the previous snapshot held
        shutil.rmtree(f"{live}/{name}") if os.path.isdir(f"{live}/{name}") else os.unlink(f"{live}/{name}")
    for relative, data in files.items():
        os.makedirs(os.path.dirname(f"{live}/{relative}"), exist_ok=True)
        with open(f"{live}/{relative}", "wb") as handle:
            handle.write(data)
    dest = snapshots.snapshot_path(root, source, at)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    btrfs.snapshot_readonly(live, dest)
    return Snapshot.objects.create(source=source, owner=owner, path=dest, taken_at=at)


def backed_up(local: Snapshot) -> ResticSnapshot:
    """What the nightly run does with one source: bind the snapshot read-only at the source's
    fixed path, back that path up with the snapshot's time, host and tags, record the row."""
    repo = offsite_repo.repository(for_backup=True)
    target = offsite_repo.mount_path(local.source)
    mounts.bind_readonly(local.path, target)
    try:
        summary = restic.backup(
            repo,
            [target],
            time=local.taken_at,
            tags=["portal", f"source:{local.source}"],
            host="portal",
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


def alice_files() -> dict[str, bytes]:
    return {
        "model.ckpt": os.urandom(300_000),
        "notes/readme.txt": b"hello\n",
        "notes/deep/data.bin": os.urandom(50_000),
        "empty": b"",
    }


def start(admin: User, django_capture_on_commit_callbacks: Callable[..., Any]) -> Operation:
    with django_capture_on_commit_callbacks(execute=True):
        return drill.drill_run_now(actor=admin, context=AuditContext(ip="10.0.0.9"))


def staging_root(root: str) -> str:
    return f"{root}/{drill.STAGING_FOLDER}"


# --- good drills -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_good_drill_restores_every_sampled_file_and_they_match(
    btrfs_root: str,
    offsite_any: str,
    admin: User,
    sent: list[dict[str, Any]],
    settings: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    settings.BACKUP_DRILL_SAMPLE = 5
    alice = UserFactory(username="alice")
    older = backed_up(local_snapshot(btrfs_root, "homes/alice", T1, {"gone.txt": b"old\n"}, owner=alice))
    newest = backed_up(local_snapshot(btrfs_root, "homes/alice", T2, alice_files(), owner=alice))
    backed_up(local_snapshot(btrfs_root, "datasets", T2, {"imagenet/labels.csv": b"a,b\n1,2\n"}))

    op = start(admin, django_capture_on_commit_callbacks)
    assert [(item["name"], item["args"], item["queue"]) for item in sent] == [
        (drill.EXECUTE_TASK, [op.pk], "host.local")
    ]
    assert AuditEvent.objects.filter(action="backups.drill_now", actor=admin).count() == 1
    run = drill.drill_execute(op.pk)

    assert run is not None
    op.refresh_from_db()
    assert run.result == BackupRun.Result.SUCCEEDED, run.message
    assert op.state == Operation.State.SUCCEEDED
    month = timezone.localtime(run.started_at).month
    assert run.details["subset"] == f"{month}/12"
    assert run.details["check"]["ok"] is True
    checked = run.details["files"]
    # Five asked for, five files in the newest snapshots: each source got its share.
    assert len(checked) == 5
    assert {item["source"] for item in checked} == {"homes/alice", "datasets"}
    assert all(item["match"] and item["sha256_restored"] == item["sha256_local"] for item in checked)
    assert "gone.txt" not in {item["path"] for item in checked}  # from the older snapshot: not sampled
    assert older.snapshot_id != newest.snapshot_id
    assert run.details["bytes_read"] == sum(item["size"] for item in checked)
    assert run.message.startswith("5 files, ")
    assert run.message.endswith(f"restored and matched; check read {month}/12 of the data: no errors")
    assert op.message == run.message
    assert "check read" in op.log
    assert op.percent == 100
    assert not os.listdir(staging_root(btrfs_root))  # the staging folder went
    assert oct(os.stat(staging_root(btrfs_root)).st_mode & 0o777) == "0o700"
    assert not Notification.objects.exists()
    assert PASSWORD not in json.dumps(run.details) + run.message + op.log


@pytest.mark.django_db
def test_files_are_picked_from_every_source_even_when_one_is_much_larger(
    btrfs_root: str, offsite: str, admin: User, sent: list[dict[str, Any]], settings: Any
) -> None:
    settings.BACKUP_DRILL_SAMPLE = 4
    big = {f"shard{index:03}.bin": os.urandom(100) for index in range(60)}
    backed_up(local_snapshot(btrfs_root, "datasets", T2, big))
    backed_up(local_snapshot(btrfs_root, "homes/bob", T2, {"one.txt": b"bob\n"}))
    run = BackupRun.objects.create(kind=BackupRun.Kind.DRILL)

    drill.drill_pass(run)

    sources = sorted(item["source"] for item in run.details["files"])
    assert sources == ["datasets", "datasets", "datasets", "homes/bob"], run.message
    assert run.result == BackupRun.Result.SUCCEEDED


def test_the_sample_gives_each_source_a_share() -> None:
    def pool(source: str, count: int) -> list[drill_sample.Candidate]:
        row = ResticSnapshot(snapshot_id=source, source=source)
        return [drill_sample.Candidate(row, f"/m/{source}/{n}", str(n), 1) for n in range(count)]

    pools = {"a": pool("a", 100), "b": pool("b", 2), "c": pool("c", 100)}
    picked = drill_sample.pick_sample(pools, 10, random.Random(1))
    counts = {source: sum(1 for item in picked if item.snapshot.source == source) for source in "abc"}
    assert counts == {"a": 4, "b": 2, "c": 4}
    assert len({item.path for item in picked}) == 10
    assert len(drill_sample.pick_sample({"a": pool("a", 3)}, 10, random.Random(1))) == 3


@pytest.mark.django_db
def test_files_over_the_size_cap_are_left_out_and_counted(
    btrfs_root: str,
    offsite: str,
    admin: User,
    sent: list[dict[str, Any]],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    monkeypatch.setattr(drill_sample, "MAX_FILE_BYTES", 10_000)  # 256 MiB in production
    settings.BACKUP_DRILL_SAMPLE = 10
    files = {"huge.ckpt": os.urandom(20_000), "small.txt": b"s\n", "also/small.txt": b"t\n"}
    backed_up(local_snapshot(btrfs_root, "homes/alice", T1, files))
    op = start(admin, django_capture_on_commit_callbacks)

    run = drill.drill_execute(op.pk)

    assert run is not None
    assert run.result == BackupRun.Result.SUCCEEDED, run.message
    assert sorted(item["path"] for item in run.details["files"]) == ["also/small.txt", "small.txt"]
    assert run.details["too_large"] == 1
    op.refresh_from_db()
    assert "homes/alice: 2 files in snapshot" in op.log
    assert "1 over 9.8K left out of the sample" in op.log


def test_the_reservoir_keeps_a_uniform_pick_of_at_most_its_size() -> None:
    row = ResticSnapshot(snapshot_id="a" * 64, source="datasets")
    rng = random.Random(7)
    counts = dict.fromkeys(range(50), 0)
    for _ in range(2000):
        pool = drill_sample.Reservoir(row, 5, rng)
        for number in range(50):
            pool.offer(restic.Node(f"f{number}", "file", f"{pool.top}/f{number}", 1, None, 0, "", 0, 0))
        pool.offer(restic.Node("sub", "dir", f"{pool.top}/sub", None, None, 0, "", 0, 0))
        pool.offer(restic.Node("odd*", "file", f"{pool.top}/odd*", 1, None, 0, "", 0, 0))  # a pattern character
        assert len(pool.kept) == 5
        assert pool.files == 50
        for item in pool.kept:
            counts[int(item.relative.removeprefix("f"))] += 1
    # Each file is kept in 1 of 10 pools (5 of 50): 200 of 2000, give or take chance.
    assert all(130 < count < 270 for count in counts.values()), counts


@pytest.mark.django_db
def test_the_local_snapshots_are_pinned_while_the_drill_reads_them(
    btrfs_root: str, offsite: str, admin: User, sent: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = backed_up(local_snapshot(btrfs_root, "homes/alice", T1, {"a.txt": b"a\n"}))
    bob = backed_up(local_snapshot(btrfs_root, "homes/bob", T1, {"b.txt": b"b\n"}))
    Snapshot.objects.filter(pk=bob.local_id).update(pinned="restore #5")  # a restore reading it
    stale = Snapshot.objects.create(source="datasets", path="/elsewhere", taken_at=T1, pinned="restore drill #999")
    run = BackupRun.objects.create(kind=BackupRun.Kind.DRILL)
    seen: list[dict[int, str]] = []
    real_restore = restic.restore

    def watched(*args: Any, **kwargs: Any) -> restic.RestoreSummary:
        seen.append(dict(Snapshot.objects.values_list("pk", "pinned")))
        return real_restore(*args, **kwargs)

    monkeypatch.setattr(restic, "restore", watched)  # the real restore, watched while it runs

    drill.drill_pass(run)

    assert run.result == BackupRun.Result.SUCCEEDED, run.message
    assert seen
    assert seen[0][alice.local_id] == f"restore drill #{run.pk}"  # type: ignore[index]
    assert seen[0][bob.local_id] == "restore #5"  # type: ignore[index]
    assert seen[0][stale.pk] == ""  # left by a drill whose worker died
    pins = dict(Snapshot.objects.values_list("pk", "pinned"))
    assert (pins[alice.local_id], pins[bob.local_id]) == ("", "restore #5")


# --- what a drill finds wrong ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_local_copy_that_differs_is_a_mismatch_and_one_alert(
    btrfs_root: str,
    offsite: str,
    admin: User,
    sent: list[dict[str, Any]],
    settings: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    settings.BACKUP_DRILL_SAMPLE = 10
    first = local_snapshot(btrfs_root, "homes/alice", T1, {"a.txt": b"the backed-up words\n"})
    row = backed_up(first)
    # A snapshot is read-only, so point the row at another one whose file differs.
    other = local_snapshot(btrfs_root, "homes/alice", T2, {"a.txt": b"other words\n"})
    ResticSnapshot.objects.filter(pk=row.pk).update(local=other)

    op = start(admin, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        run = drill.drill_execute(op.pk)

    assert run is not None
    assert run.result == BackupRun.Result.FAILED
    slack = [item["args"][0] for item in sent if item["name"] == "portal.tasks.slack_post_task"]
    assert len(slack) == 1
    assert "Restore drill failed" in slack[0]
    assert "a.txt" not in slack[0]
    [item] = run.details["files"]
    assert (item["path"], item["match"]) == ("a.txt", False)
    assert item["sha256_restored"]
    assert item["sha256_local"]
    assert item["sha256_restored"] != item["sha256_local"]
    assert "homes/alice: a.txt: the checksums differ" in run.message
    assert run.message.startswith("0 of 1 file restored and matched")
    op.refresh_from_db()
    assert op.state == Operation.State.FAILED
    notes = Notification.objects.filter(user=admin)
    assert [(note.title, note.level) for note in notes] == [("Restore drill failed", Notification.Level.ERROR)]
    assert "1 file did not match or could not be restored, in homes/alice." in notes[0].body
    assert "a.txt" not in notes[0].body  # it goes to the team's Slack too: sources, never files
    assert notes[0].url == f"/backups/history/{run.pk}/"

    drill_tasks.drill_execute_task.run(op.pk)  # delivered again: the row is final, nothing more is told
    assert Notification.objects.filter(user=admin).count() == 1


@pytest.mark.django_db
def test_a_symlink_planted_in_the_local_snapshot_is_not_followed(
    btrfs_root: str, offsite: str, admin: User, sent: list[dict[str, Any]], settings: Any
) -> None:
    secret = f"{btrfs_root}/root-only-secret"
    with open(secret, "wb") as handle:
        handle.write(b"the backed-up words\n")  # the same bytes: following the link would "match"
    row = backed_up(local_snapshot(btrfs_root, "homes/alice", T1, {"a.txt": b"the backed-up words\n"}))
    live = f"{btrfs_root}/homes/alice"
    os.unlink(f"{live}/a.txt")
    os.symlink(secret, f"{live}/a.txt")
    planted = snapshots.snapshot_path(btrfs_root, "homes/alice", T2)
    btrfs.snapshot_readonly(live, planted)
    other = Snapshot.objects.create(source="homes/alice", path=planted, taken_at=T2)
    ResticSnapshot.objects.filter(pk=row.pk).update(local=other)
    run = BackupRun.objects.create(kind=BackupRun.Kind.DRILL)

    drill.drill_pass(run)

    assert run.result == BackupRun.Result.FAILED
    [item] = run.details["files"]
    assert item["match"] is False
    assert item["sha256_local"] == ""
    assert "a.txt is a link; links are not followed" in item["problem"]
    assert "links are not followed" in run.message


@pytest.mark.django_db
def test_a_corrupted_pack_fails_the_drill_with_the_checks_words_and_one_alert(
    btrfs_root: str,
    admin: User,
    sent: list[dict[str, Any]],
    settings: Any,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    own = {"location": str(tmp_path / "broken-repo"), "password_file": str(secret)}
    restic.init(restic.Repository(**own))
    point_at(settings, own, "local", tmp_path)
    backed_up(local_snapshot(btrfs_root, "homes/alice", T1, {"weights.bin": os.urandom(2_000_000)}))
    packs = sorted(Path(own["location"], "data").glob("*/*"), key=lambda path: path.stat().st_size)
    pack = packs[-1]  # the data pack (the tree packs are small)
    with open(pack, "r+b") as handle:
        handle.seek(pack.stat().st_size // 2)
        handle.write(b"\0" * 4096)
    # check --read-data-subset=n/12 reads the packs whose id's first byte is n-1 modulo 12:
    # the drill runs in the month that reads this one.
    month = int(pack.name[:2], 16) % 12 + 1
    op = start(admin, django_capture_on_commit_callbacks)
    BackupRun.objects.filter(operation=op).update(
        started_at=datetime(2026, month, 15, 12, 0, tzinfo=timezone.get_current_timezone())
    )

    run = drill.drill_execute(op.pk)

    assert run is not None
    assert run.result == BackupRun.Result.FAILED
    assert run.details["subset"] == f"{month}/12"
    check = run.details["check"]
    assert check["ran"] is True
    assert check["ok"] is False
    assert pack.name in " ".join(check["broken_packs"] + check["errors"])
    assert f"check read {month}/12 of the data: errors" in run.message
    assert "The check found" in run.message
    assert Notification.objects.filter(user=admin, title="Restore drill failed").count() == 1
    assert not os.listdir(staging_root(btrfs_root))


@pytest.mark.django_db
def test_with_no_offsite_snapshot_whose_local_one_is_here_the_drill_fails_in_words(
    btrfs_root: str, offsite: str, admin: User, sent: list[dict[str, Any]]
) -> None:
    gone = local_snapshot(btrfs_root, "homes/alice", T1, {"a.txt": b"x\n"})
    backed_up(gone)
    Snapshot.objects.filter(pk=gone.pk).update(deleted_at=timezone.now())
    run = BackupRun.objects.create(kind=BackupRun.Kind.DRILL)

    drill.drill_pass(run)

    assert run.result == BackupRun.Result.FAILED
    assert run.message == ("The drill found nothing to verify: no offsite snapshot whose local snapshot is still here.")
    assert Notification.objects.filter(user=admin).count() == 1


@pytest.mark.django_db
def test_the_staging_folder_goes_also_when_the_restore_fails(
    btrfs_root: str, offsite: str, admin: User, sent: list[dict[str, Any]]
) -> None:
    local = local_snapshot(btrfs_root, "homes/alice", T1, {"a.txt": b"x\n"})
    row = backed_up(local)
    ResticSnapshot.objects.filter(pk=row.pk).update(snapshot_id="f" * 64)  # restic has no such snapshot
    run = BackupRun.objects.create(kind=BackupRun.Kind.DRILL)

    drill.drill_pass(run)

    assert run.result == BackupRun.Result.FAILED
    assert "could not be listed" in run.message
    assert "No file could be sampled." in run.message
    assert not os.listdir(staging_root(btrfs_root))


# --- refusals, the lock, the tasks ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_tier_not_set_up_is_refused_in_words_and_beat_skips(
    settings: Any, admin: User, sent: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = ""
    with pytest.raises(drill.DrillError, match="The drill can't run: No offsite repository is set up"):
        drill.drill_run_now(actor=admin, context=SYSTEM)
    assert drill.drill_scheduled() is None
    assert "restore drill skipped: No offsite repository is set up" in caplog.text
    assert not Operation.objects.exists()
    assert not BackupRun.objects.exists()
    assert not sent
    assert not AuditEvent.objects.filter(action="backups.drill_now").exists()


@pytest.mark.django_db
def test_a_second_drill_while_one_waits_is_refused(
    offsite: str, admin: User, sent: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    drill.drill_run_now(actor=admin, context=SYSTEM)
    with pytest.raises(drill.DrillError, match="already queued or running"):
        drill.drill_run_now(actor=admin, context=SYSTEM)
    assert drill.drill_scheduled() is None
    assert "restore drill skipped: A restore drill is already queued" in caplog.text
    assert Operation.objects.filter(kind=drill.DRILL_KIND).count() == 1


@pytest.fixture
def repo_lock_held_elsewhere() -> Iterator[None]:
    """Another worker's database session holding the repository's lock (the night's backup)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", list(offsite_repo._REPO_LOCK))
            held.set()
            release.wait(30)
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", list(offsite_repo._REPO_LOCK))
        connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    yield
    release.set()
    thread.join(10)


@pytest.mark.django_db
def test_a_busy_repository_makes_the_task_try_again_and_give_up_in_the_end(
    offsite: str,
    admin: User,
    sent: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Callable[..., Any],
    repo_lock_held_elsewhere: None,
) -> None:
    op = start(admin, django_capture_on_commit_callbacks)
    with pytest.raises(drill.DrillBusy):  # called directly, Celery re-raises instead of retrying
        drill_tasks.drill_execute_task.run(op.pk)
    op.refresh_from_db()
    assert op.state == Operation.State.QUEUED
    assert op.message == "Waiting: another job is using the offsite repository."
    Operation.objects.filter(pk=op.pk).update(state=Operation.State.RUNNING)
    assert drill.drill_execute(op.pk) is None  # running elsewhere: left to the worker on it
    Operation.objects.filter(pk=op.pk).update(state=Operation.State.QUEUED)

    # apply() runs the task's retries in line, each finding the lock still taken, then gives up.
    drill_tasks.drill_execute_task.apply(args=[op.pk])

    op.refresh_from_db()
    run = BackupRun.objects.get(operation=op)
    assert op.state == Operation.State.FAILED
    assert (run.result, run.message) == (
        BackupRun.Result.FAILED,
        "Not run: another job held the offsite repository all along.",
    )
    assert Notification.objects.filter(user=admin, title="Restore drill failed").count() == 1


@pytest.mark.django_db
def test_beat_starts_the_monthly_drill_on_the_storage_hosts_queue(
    offsite: str, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        drill_tasks.drill_run_task.run()
    op = Operation.objects.get(kind=drill.DRILL_KIND)
    assert (op.actor_id, op.state) == (None, Operation.State.QUEUED)
    assert [(item["name"], item["args"], item["queue"]) for item in sent] == [
        (drill.EXECUTE_TASK, [op.pk], "host.local")
    ]
    assert BackupRun.objects.get(operation=op).kind == BackupRun.Kind.DRILL
    assert not AuditEvent.objects.filter(action="backups.drill_now").exists()


def test_the_subset_is_the_month_of_the_runs_start_in_the_servers_zone(settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    with timezone.override("Europe/Berlin"):
        # 23:30 UTC on 31 December is already January in Berlin.
        run = BackupRun(started_at=datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
        assert drill.subset_of(run) == "1/12"
        assert drill.subset_of(BackupRun(started_at=datetime(2026, 12, 31, 12, 0, tzinfo=UTC))) == "12/12"
