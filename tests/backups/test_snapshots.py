"""The snapshot tier on a real BTRFS (the storage tests' RAID10 over four loop devices): read-only
snapshots holding the files of their hour, one per source per hour, retention exactly as the
planner says over ten simulated days, pins, failing sources, a root that is not BTRFS, rows
reconciled with the disk, the pass lock, and the chain through the Celery task functions."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any

import pytest
from celery import current_app
from django.apps import apps as django_apps
from django.db import connection, transaction
from django_celery_beat.models import PeriodicTask

from backups import retention, snapshots, tasks
from backups.models import BackupPolicy, BackupRun, Snapshot
from hostops import btrfs
from portal.audit import SYSTEM, AuditContext
from portal.models import AuditEvent, Notification, Operation, User
from storage.layout import Layout, delete_member_data, prepare_member
from storage.models import MemberStorage
from tests.factories import UserFactory
from tests.loopfs import needs_loop_devices
from tests.storage.conftest import btrfs_root, plain_root, storage_fs

__all__ = ["btrfs_root", "plain_root", "storage_fs"]  # the fixtures, shared with the storage tests

pytestmark = [needs_loop_devices, pytest.mark.loopdev]

T0 = datetime(2026, 12, 1, 0, 20, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "DELETE_PAUSE_SECONDS", 0)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The tasks the services send (the broker is not what is tested here)."""
    got: list[dict[str, Any]] = []

    def send_task(name: str, args: list[Any] | None = None, **kwargs: Any) -> None:
        got.append({"name": name, "args": args, **kwargs})

    monkeypatch.setattr(current_app, "send_task", send_task)
    return got


def live(source: str | None = None) -> list[Snapshot]:
    rows = Snapshot.objects.filter(deleted_at=None).order_by("source", "taken_at")
    return list(rows.filter(source=source) if source else rows)


def on_disk(root: str, source: str) -> list[str]:
    folder = snapshots.snapshot_dir(root, source)
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def member(username: str) -> User:
    user = UserFactory(username=username)
    prepare_member(user)
    return user


def drop_portal_subvolume() -> None:
    """prepare_member makes portal/ too; some tests want just a home and the datasets."""
    btrfs.subvolume_delete(Layout.from_settings().portal)


@pytest.mark.django_db
def test_snapshots_are_read_only_and_hold_the_files_of_their_hour(btrfs_root: str) -> None:
    alice = member("alice")
    home = f"{btrfs_root}/homes/alice"
    with open(f"{home}/notes.txt", "w") as handle:
        handle.write("version 1")

    run = snapshots.snapshot_pass(now=T0)

    assert (run.result, run.snapshots_made, run.snapshots_removed) == (BackupRun.Result.SUCCEEDED, 3, 0)
    assert run.finished_at is not None
    first = f"{btrfs_root}/.snapshots/homes/alice/2026-12-01T000000Z"
    rows = live()
    assert [(row.source, row.path, row.owner_id, row.run_id) for row in rows] == [
        ("datasets", f"{btrfs_root}/.snapshots/datasets/2026-12-01T000000Z", None, run.pk),
        ("homes/alice", first, alice.pk, run.pk),
        ("portal", f"{btrfs_root}/.snapshots/portal/2026-12-01T000000Z", None, run.pk),
    ]
    assert all(row.taken_at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC) for row in rows)
    assert btrfs.is_subvolume(first)
    # .snapshots is root's and closed to members, who must not see each other's snapshots.
    top = os.stat(f"{btrfs_root}/.snapshots")
    assert (top.st_uid, stat.S_IMODE(top.st_mode)) == (0, 0o700)
    # Read-only: not even root can write into it.
    with pytest.raises(OSError, match="Read-only file system") as caught:
        open(f"{first}/new.txt", "w").close()
    assert caught.value.errno == errno.EROFS
    with pytest.raises(OSError, match="Read-only file system") as caught:
        os.remove(f"{first}/notes.txt")
    assert caught.value.errno == errno.EROFS

    with open(f"{home}/notes.txt", "w") as handle:
        handle.write("version 2")
    second = snapshots.snapshot_pass(now=T0 + timedelta(hours=1))

    assert second.snapshots_made == 3
    with open(f"{first}/notes.txt") as handle:
        assert handle.read() == "version 1"
    with open(f"{btrfs_root}/.snapshots/homes/alice/2026-12-01T010000Z/notes.txt") as handle:
        assert handle.read() == "version 2"


@pytest.mark.django_db
def test_a_second_pass_within_the_hour_makes_nothing_new(btrfs_root: str) -> None:
    member("alice")
    assert snapshots.snapshot_pass(now=T0).snapshots_made == 3
    again = snapshots.snapshot_pass(now=T0 + timedelta(minutes=35))
    assert (again.result, again.snapshots_made, again.snapshots_removed) == (BackupRun.Result.SUCCEEDED, 0, 0)
    assert Snapshot.objects.count() == 3
    assert on_disk(btrfs_root, "homes/alice") == ["2026-12-01T000000Z"]
    assert "0 snapshots taken" in again.message


@pytest.mark.django_db
def test_ten_days_of_hourly_passes_keep_exactly_what_the_planner_says(btrfs_root: str) -> None:
    member("alice")
    drop_portal_subvolume()
    start = datetime(2026, 11, 20, 0, 5, tzinfo=UTC)  # a Friday
    hours = 240
    pinned_at = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)  # an hour the policy would drop early
    began = time.monotonic()
    made = removed = 0
    for hour in range(hours):
        now = start + timedelta(hours=hour)
        run = snapshots.snapshot_pass(now=now)
        assert run.result == BackupRun.Result.SUCCEEDED, run.message
        made, removed = made + run.snapshots_made, removed + run.snapshots_removed
        if hour == 5:
            Snapshot.objects.filter(taken_at=pinned_at, source="homes/alice").update(pinned="restore in progress")
    took = time.monotonic() - began
    assert took < 60, f"240 passes took {took:.0f} s"

    # What the planner keeps of the same hourly times, computed here from the times alone.
    times = [snapshots.hour_of(start + timedelta(hours=hour)) for hour in range(hours)]
    policy = retention.Policy(keep_hourly=24, keep_daily=7, keep_weekly=4)
    expected = retention.plan(
        [retention.Snapshot(id=t.isoformat(), time=t) for t in times], policy, now=start + timedelta(hours=hours - 1)
    )
    want = sorted(datetime.fromisoformat(item.snapshot.id) for item in expected.groups[0].keep)
    # 24 hourly (Sunday 29th), 23:00 of the six days before, 23:00 of the Sunday before (weekly), and
    # the very first snapshot, as "oldest weekly snapshot" (the weekly count was not used up).
    assert len(want) == 24 + 6 + 1 + 1
    assert want[:2] == [datetime(2026, 11, 20, 0, 0, tzinfo=UTC), datetime(2026, 11, 22, 23, 0, tzinfo=UTC)]
    for source in ("homes/alice", "datasets"):
        kept = [row.taken_at for row in live(source)]
        extra = [pinned_at] if source == "homes/alice" else []
        assert kept == sorted([*want, *extra]), source
        names = [t.strftime(snapshots.NAME_FORMAT) for t in kept]
        assert on_disk(btrfs_root, source) == names  # the removed ones are gone from the disk
    assert made == 2 * hours
    assert removed == 2 * hours - len(want) * 2 - 1
    assert Snapshot.objects.exclude(deleted_at=None).count() == removed

    # Unpinned, the next pass lets it go.
    Snapshot.objects.filter(taken_at=pinned_at).update(pinned="")
    run = snapshots.snapshot_pass(now=start + timedelta(hours=hours - 1, minutes=30))
    assert (run.snapshots_made, run.snapshots_removed) == (0, 1)
    assert not os.path.lexists(snapshots.snapshot_path(btrfs_root, "homes/alice", pinned_at))


@pytest.mark.django_db
def test_a_source_that_fails_gives_a_partial_run_with_the_others_done(btrfs_root: str) -> None:
    member("alice")
    member("bob")
    btrfs.subvolume_delete(f"{btrfs_root}/homes/bob")  # gone behind the portal's back

    run = snapshots.snapshot_pass(now=T0)

    assert run.result == BackupRun.Result.PARTIAL
    assert run.snapshots_made == 3
    assert sorted(row.source for row in live()) == ["datasets", "homes/alice", "portal"]
    assert "homes/bob" in run.message
    assert f"{btrfs_root}/homes/bob is missing" in run.message


@pytest.mark.django_db
def test_when_every_source_fails_the_run_failed(btrfs_root: str) -> None:
    member("bob")
    layout = Layout.from_settings()
    for path in (f"{btrfs_root}/homes/bob", layout.datasets, layout.portal):
        btrfs.subvolume_delete(path)
    MemberStorage.objects.update(state=MemberStorage.State.PRESENT)

    run = snapshots.snapshot_pass(now=T0)

    assert run.result == BackupRun.Result.FAILED
    assert "homes/bob" in run.message
    assert Snapshot.objects.count() == 0


@pytest.mark.django_db
def test_a_root_that_is_not_btrfs_fails_with_words(plain_root: str, admin_user: User) -> None:
    run = snapshots.snapshot_pass(now=T0)
    assert run.result == BackupRun.Result.FAILED
    assert run.message == snapshots.NOT_BTRFS.format(root=plain_root)
    assert "is not on a BTRFS filesystem" in run.message
    assert run.snapshots_made == 0
    assert not os.path.exists(f"{plain_root}/.snapshots")
    # The admins are told at once, not at the next alerts pass; and only once.
    snapshots.snapshot_pass(now=T0 + timedelta(hours=1))
    assert Notification.objects.filter(user=admin_user).count() == 1


@pytest.mark.django_db
def test_reconcile_adopts_a_stray_snapshot_and_forgets_a_vanished_one(btrfs_root: str) -> None:
    alice = member("alice")
    drop_portal_subvolume()
    snapshots.snapshot_pass(now=T0)
    snapshots.snapshot_pass(now=T0 + timedelta(hours=1))
    # A pass that died after making its snapshot, before writing the row.
    stray = snapshots.snapshot_path(btrfs_root, "homes/alice", T0 - timedelta(minutes=20, hours=1))
    btrfs.snapshot_readonly(f"{btrfs_root}/homes/alice", stray)
    # An admin deleting one by hand.
    vanished = snapshots.snapshot_path(btrfs_root, "datasets", datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    btrfs.subvolume_delete(vanished)
    # Not snapshots: left alone.
    os.mkdir(f"{btrfs_root}/.snapshots/homes/alice/not-a-time")

    run = snapshots.snapshot_pass(now=T0 + timedelta(hours=1, minutes=10))

    adopted = Snapshot.objects.get(path=stray)
    assert (adopted.source, adopted.owner_id, adopted.run_id) == ("homes/alice", alice.pk, None)
    assert adopted.deleted_at is None
    assert adopted.taken_at == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert Snapshot.objects.get(path=vanished).deleted_at is not None
    assert run.result == BackupRun.Result.SUCCEEDED
    assert "1 snapshot found on disk without a record" in run.message
    assert "1 snapshot deleted outside the portal" in run.message
    assert os.path.isdir(f"{btrfs_root}/.snapshots/homes/alice/not-a-time")


@pytest.mark.django_db
def test_a_deleted_members_snapshots_stay_under_retention(btrfs_root: str) -> None:
    alice = member("alice")
    snapshots.snapshot_pass(now=T0)
    delete_member_data(alice)
    Snapshot.objects.filter(source="homes/alice").update(owner=None)  # as when the user row goes

    run = snapshots.snapshot_pass(now=T0 + timedelta(hours=1))

    assert run.result == BackupRun.Result.SUCCEEDED, run.message
    assert run.snapshots_made == 2  # datasets and portal; no home to snapshot
    assert [row.taken_at.hour for row in live("homes/alice")] == [0]
    assert on_disk(btrfs_root, "homes/alice") == ["2026-12-01T000000Z"]


@pytest.mark.django_db
def test_a_policy_that_keeps_nothing_is_not_applied(btrfs_root: str) -> None:
    member("alice")
    BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)  # a transactional test elsewhere may have flushed it
    BackupPolicy.objects.filter(tier=BackupPolicy.Tier.SNAPSHOT).update(keep_hourly=0, keep_daily=0, keep_weekly=0)
    snapshots.snapshot_pass(now=T0)
    run = snapshots.snapshot_pass(now=T0 + timedelta(hours=1))
    assert run.result == BackupRun.Result.PARTIAL
    assert "Retention not applied" in run.message
    assert run.snapshots_removed == 0
    assert len(live()) == 6


@pytest.mark.django_db
def test_the_newest_snapshot_and_pinned_ones_are_never_deleted(
    btrfs_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    member("alice")
    drop_portal_subvolume()
    for hour in range(3):
        snapshots.snapshot_pass(now=T0 + timedelta(hours=hour))
    Snapshot.objects.filter(source="homes/alice", taken_at__hour=0).update(pinned="tonight's offsite run")
    real_plan = retention.plan

    def remove_everything(snaps: Any, policy: retention.Policy, *, now: datetime) -> retention.Plan:
        """A planner gone wrong: it drops every snapshot, pins included."""
        listed = list(snaps)
        planned = real_plan(listed, policy, now=now)
        groups = tuple(
            retention.GroupPlan(
                group=g.group, keep=(), remove=tuple(s for s in listed if s.group == g.group), latest=None
            )
            for g in planned.groups
        )
        return retention.Plan(policy=policy, now=now, groups=groups)

    monkeypatch.setattr(snapshots.retention, "plan", remove_everything)
    monkeypatch.setattr(snapshots, "DELETE_BATCH", 2)
    pauses: list[float] = []
    monkeypatch.setattr(snapshots, "_pause", lambda: pauses.append(time.monotonic()))
    run = snapshots.snapshot_pass(now=T0 + timedelta(hours=2, minutes=30))

    assert [row.taken_at.hour for row in live("homes/alice")] == [0, 2]  # pinned, newest
    assert [row.taken_at.hour for row in live("datasets")] == [2]
    assert run.snapshots_removed == 3
    assert on_disk(btrfs_root, "homes/alice") == ["2026-12-01T000000Z", "2026-12-01T020000Z"]
    assert len(pauses) == 1  # three deletions in batches of two: one pause between them


# --- the worker side: the lock, and the chain through the tasks ------------------------------


@pytest.fixture
def lock_held_elsewhere() -> Iterator[None]:
    """Another worker's database session holding the pass lock."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", list(snapshots._LOCK))
            held.set()
            release.wait(30)
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", list(snapshots._LOCK))
        connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    yield
    release.set()
    thread.join(10)


@pytest.mark.django_db
def test_a_second_overlapping_execute_does_nothing(
    btrfs_root: str,
    sent: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Callable[..., Any],
    lock_held_elsewhere: None,
) -> None:
    member("alice")
    with django_capture_on_commit_callbacks(execute=True):
        op = snapshots.snapshot_scheduled()
    assert op is not None

    with pytest.raises(snapshots.SnapshotBusy):  # still queued: the task tries again later
        snapshots.snapshot_execute(op.pk)
    op.refresh_from_db()
    assert op.state == Operation.State.QUEUED
    Operation.objects.filter(pk=op.pk).update(state=Operation.State.RUNNING)
    assert snapshots.snapshot_execute(op.pk) is None  # running elsewhere: leave it alone
    assert Snapshot.objects.count() == 0
    assert BackupRun.objects.get(operation=op).result == BackupRun.Result.RUNNING


@pytest.mark.django_db
def test_the_hourly_chain_through_the_task_functions(
    btrfs_root: str, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    member("alice")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.snapshot_run_task.run()
    op = Operation.objects.get(kind=snapshots.SNAPSHOT_KIND)
    assert (op.actor_id, op.target_type, op.state) == (None, "host", Operation.State.QUEUED)
    assert [(item["name"], item["args"], item["queue"]) for item in sent] == [
        (snapshots.EXECUTE_TASK, [op.pk], "host.local")
    ]
    run = BackupRun.objects.get(operation=op)
    assert (run.kind, run.result) == (BackupRun.Kind.SNAPSHOT, BackupRun.Result.RUNNING)
    # Beat again while the pass waits: skipped, nothing sent.
    with django_capture_on_commit_callbacks(execute=True):
        tasks.snapshot_run_task.run()
    assert len(sent) == 1

    tasks.snapshot_execute_task.run(op.pk)

    op.refresh_from_db()
    run.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, (op.message, op.error)
    assert op.percent == 100
    assert (run.result, run.snapshots_made) == (BackupRun.Result.SUCCEEDED, 3)
    assert op.message == run.message.splitlines()[0] == "3 snapshots taken, 0 removed by retention."
    assert op.log.count("Snapshot of ") == 3
    assert "Snapshot of homes/alice taken" in op.log
    hour = snapshots.hour_of(run.started_at)
    assert all(row.taken_at == hour and row.run_id == run.pk for row in live())

    tasks.snapshot_execute_task.run(op.pk)  # delivered twice: the row is final, nothing happens
    assert Snapshot.objects.count() == 3
    op.refresh_from_db()
    assert op.attempts == 1


@pytest.mark.django_db
def test_a_pass_whose_worker_died_is_taken_over_and_finished_once(
    btrfs_root: str, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    member("alice")
    with django_capture_on_commit_callbacks(execute=True):
        op = snapshots.snapshot_scheduled()
    assert op is not None
    run = BackupRun.objects.get(operation=op)
    # The first worker claimed the row, took alice's snapshot and died (its lock went with it).
    Operation.objects.filter(pk=op.pk).update(state=Operation.State.RUNNING, attempts=1)
    os.makedirs(f"{btrfs_root}/.snapshots/homes/alice")
    btrfs.snapshot_readonly(
        f"{btrfs_root}/homes/alice",
        snapshots.snapshot_path(btrfs_root, "homes/alice", snapshots.hour_of(run.started_at)),
    )

    tasks.snapshot_execute_task.run(op.pk)  # the redelivered message

    op.refresh_from_db()
    run.refresh_from_db()
    assert (op.state, op.attempts) == (Operation.State.SUCCEEDED, 2)
    assert "taking over" in op.log
    assert (run.result, run.snapshots_made) == (BackupRun.Result.SUCCEEDED, 2)  # alice's was adopted
    assert sorted(row.source for row in live()) == ["datasets", "homes/alice", "portal"]


@pytest.mark.django_db
def test_a_pass_that_stays_busy_is_given_up_after_its_retries(
    btrfs_root: str,
    sent: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Callable[..., Any],
    lock_held_elsewhere: None,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        op = snapshots.snapshot_scheduled()
    assert op is not None
    with pytest.raises(snapshots.SnapshotBusy):
        tasks.snapshot_execute_task.run(op.pk)  # called directly, Celery re-raises instead of retrying
    tasks.snapshot_execute_task.apply(args=[op.pk], retries=tasks.MAX_RETRIES)
    op.refresh_from_db()
    assert op.state == Operation.State.FAILED
    run = BackupRun.objects.get(operation=op)
    assert (run.result, run.message) == (
        BackupRun.Result.FAILED,
        "Skipped: another snapshot pass was running all along.",
    )


@pytest.mark.django_db
def test_a_run_left_running_by_a_reaped_job_is_closed_at_the_next_start(sent: list[dict[str, Any]]) -> None:
    BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    with transaction.atomic():
        op = snapshots.snapshot_scheduled()
    assert op is not None
    Operation.objects.filter(pk=op.pk).update(state=Operation.State.FAILED)  # the reaper gave it up
    assert snapshots.snapshot_scheduled() is not None
    old = BackupRun.objects.get(operation=op)
    assert old.result == BackupRun.Result.FAILED
    assert "worker was lost" in old.message


def test_a_pass_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        snapshots.snapshot_pass(now=datetime(2026, 12, 1, 10, 0))  # noqa: DTZ001


@pytest.mark.django_db
def test_snapshot_now_is_audited_and_refused_while_one_runs(
    btrfs_root: str,
    admin_user: User,
    sent: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    context = AuditContext(ip="192.0.2.7")
    with django_capture_on_commit_callbacks(execute=True):
        op = snapshots.snapshot_run_now(actor=admin_user, context=context)
    assert op.actor_id == admin_user.pk
    event = AuditEvent.objects.get(action="backups.snapshot_now")
    assert event.actor_id == admin_user.pk
    with pytest.raises(snapshots.SnapshotError, match="already queued or running"):
        snapshots.snapshot_run_now(actor=admin_user, context=context)
    assert Operation.objects.filter(kind=snapshots.SNAPSHOT_KIND).count() == 1

    tasks.snapshot_execute_task.run(op.pk)
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED
    with django_capture_on_commit_callbacks(execute=True):
        assert snapshots.snapshot_run_now(actor=admin_user, context=context).pk != op.pk


@pytest.mark.django_db
def test_a_pass_on_a_root_that_is_not_btrfs_fails_its_operation(
    plain_root: str, sent: list[dict[str, Any]], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        op = snapshots.snapshot_scheduled()
    assert op is not None
    tasks.snapshot_execute_task.run(op.pk)
    op.refresh_from_db()
    assert op.state == Operation.State.FAILED
    assert "is not on a BTRFS filesystem" in op.message
    assert BackupRun.objects.get(operation=op).result == BackupRun.Result.FAILED


@pytest.mark.django_db
def test_a_queue_that_does_not_answer_fails_the_run_at_once(
    admin_user: User, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(current_app, "send_task", down)
    with django_capture_on_commit_callbacks(execute=True):
        op = snapshots.snapshot_run_now(actor=admin_user, context=SYSTEM)
    op.refresh_from_db()
    assert op.state == Operation.State.FAILED
    run = BackupRun.objects.get(operation=op)
    assert (run.result, run.message) == (BackupRun.Result.FAILED, "Not started: the job queue did not answer.")


@pytest.mark.django_db
def test_beat_skips_the_pass_while_the_policy_is_off(sent: list[dict[str, Any]]) -> None:
    BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    BackupPolicy.objects.filter(tier=BackupPolicy.Tier.SNAPSHOT).update(enabled=False)
    assert snapshots.snapshot_scheduled() is None
    assert not Operation.objects.filter(kind=snapshots.SNAPSHOT_KIND).exists()


@pytest.mark.django_db
def test_the_task_names_exist_and_beat_row_points_at_one() -> None:
    registered = current_app.tasks
    assert "backups.tasks.snapshot_run_task" in registered
    assert snapshots.EXECUTE_TASK in registered
    # The migration's row (made again here: a transactional test elsewhere may have flushed it).
    import_module("backups.migrations.0002_snapshot_policy").create_policy(django_apps, None)
    row = PeriodicTask.objects.get(name="backups-snapshots")
    assert row.task == "backups.tasks.snapshot_run_task"
    assert (row.crontab.minute, row.crontab.hour) == ("0", "*")
