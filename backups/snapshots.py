"""Tier 1: hourly read-only BTRFS snapshots of each member's home, of the datasets and of the
portal's own data, thinned by the snapshot policy's retention.

Who does what:

* ``snapshot_scheduled`` (beat's hourly ``backups.tasks.snapshot_run_task``) and
  ``snapshot_run_now`` (an admin's "Snapshot now") record an Operation and a BackupRun and send
  ``backups.tasks.snapshot_execute_task`` to the storage host's queue by name.
* ``snapshot_execute`` is the worker side: it claims the Operation, holds a PostgreSQL advisory
  lock so two passes never overlap, and runs ``snapshot_pass``.
* ``snapshot_pass`` does the work on the host. For each source it takes a read-only snapshot at
  ``<root>/.snapshots/<source>/<YYYY-MM-DDTHHMMSSZ>``, named by the hour (UTC), so a second pass
  within the hour makes nothing new. Then it applies the retention planner
  (backups.retention.plan, one group per source, pinned rows pinned) and deletes what it removes.

The rows are the truth the pages read, so each pass first reconciles them with the disk: a row
whose snapshot was deleted by hand is marked deleted, and a snapshot on disk without a row (its
pass died before writing it) is adopted.

A member whose storage an admin deletes (storage.layout.delete_member_data) keeps their
snapshots: they are the backup that undoes a mistaken deletion. Their source gets no new
snapshots, and retention goes on applying to what is there. restic's rules count periods that
have snapshots, so the newest ones (up to the policy's counts) are kept until an admin deletes
them. A row's ``owner`` may then be None (the user deleted), and nothing here relies on it:
the source name ("homes/<username>") says whose it was.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import stat
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from backups import retention, runs
from backups.alerts import backup_run_finished
from backups.models import BackupPolicy, BackupRun, Snapshot
from backups.policies import planner_snapshots, to_planner
from hostops import btrfs, files
from hostops.errors import HostOpsError
from portal.audit import AuditContext, audit_record
from portal.locks import advisory_lock
from portal.models import Operation, User
from portal.operations import (
    operation_fail,
    operation_succeed,
)
from storage.layout import Layout, StorageError
from storage.models import MemberStorage

logger = logging.getLogger(__name__)

SNAPSHOT_KIND = "backups.snapshot"
EXECUTE_TASK = "backups.tasks.snapshot_execute_task"
SNAPSHOTS_DIR = ".snapshots"
NAME_FORMAT = "%Y-%m-%dT%H%M%SZ"
_NAME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{6}Z")
_SOURCE = re.compile(r"homes/[a-z][a-z0-9_-]{0,31}|datasets|portal")
_SUBVOLUME_INODE = 256  # the root folder of every BTRFS subvolume has this inode number
# Deleting many snapshots at once stalls the filesystem's I/O while the cleaner frees their
# extents (snapper#32): delete a few, then let it breathe.
DELETE_BATCH = 8
DELETE_PAUSE_SECONDS = 2.0
# A PostgreSQL session advisory lock held by the worker running a pass; it dies with its session.
_LOCK = (0x424B, 1)  # "BK"

NOT_BTRFS = (
    "The storage root {root} is not on a BTRFS filesystem, so no snapshots can be taken "
    "(they are BTRFS snapshots). Put STORAGE_ROOT on the BTRFS pool."
)


class SnapshotError(Exception):
    """A refused request, in words for the admin."""


class SnapshotBusy(Exception):
    """Another worker is running a pass right now; this one should try again later."""


@dataclass(frozen=True)
class Source:
    """A subvolume to snapshot: ``name`` relative to the root ("homes/alice", "datasets")."""

    name: str
    path: str
    owner: User | None = None


def snapshot_dir(root: str, source: str) -> str:
    return posixpath.join(root, SNAPSHOTS_DIR, source)


def snapshot_path(root: str, source: str, taken_at: datetime) -> str:
    return posixpath.join(snapshot_dir(root, source), taken_at.astimezone(UTC).strftime(NAME_FORMAT))


def hour_of(now: datetime) -> datetime:
    """The snapshot time of a pass at ``now``: the hour, in UTC, so passes within it agree."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# --- services --------------------------------------------------------------------------------


def snapshot_run_now(*, actor: User, context: AuditContext) -> Operation:
    """An admin's "Snapshot now": a pass like the hourly one (within an hour that already has
    its snapshots it only applies retention). Refused while a pass is queued or running."""
    with transaction.atomic():
        op, run = _start(actor=actor)
        if op is None:
            raise SnapshotError(_BUSY)
        audit_record(action="backups.snapshot_now", actor=actor, target=run, context=context)
    return op


def snapshot_scheduled() -> Operation | None:
    """Beat's hourly pass. Skipped (logged: beat has nobody to tell) while the policy is off or
    another pass is still at work; the next hour catches up, as passes are idempotent. Not
    audited: it is the system's own routine, and its BackupRun is the record."""
    policy = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    if not policy.enabled:
        logger.info("hourly snapshots skipped: the snapshot policy is switched off")
        return None
    with transaction.atomic():
        op, _ = _start(actor=None)
    if op is None:
        logger.warning("hourly snapshots skipped: %s", _BUSY)
    return op


_BUSY = "A snapshot pass is already queued or running. Wait for it to end."


def _start(*, actor: User | None) -> tuple[Operation | None, BackupRun | None]:
    return runs.start_run(
        operation_kind=SNAPSHOT_KIND,
        run_kind=BackupRun.Kind.SNAPSHOT,
        task=EXECUTE_TASK,
        actor=actor,
        close_orphans=_close_orphans,
        finish=_finish,
    )


def _close_orphans() -> None:
    """Runs left "running" by a job that ended without recording them (reaped after its worker
    vanished): recorded as failed, so they neither linger nor look like work under way."""
    words = "Its job ended without a result (the worker was lost); the next pass takes the hour's snapshots."
    runs.orphan_runs(BackupRun.Kind.SNAPSHOT).update(
        result=BackupRun.Result.FAILED, finished_at=timezone.now(), message=words
    )


# --- the worker side -------------------------------------------------------------------------


def pass_lock() -> AbstractContextManager[bool]:
    """Try to become the one worker running a pass; yields whether it succeeded."""
    return advisory_lock(*_LOCK)


def snapshot_execute(operation_id: int) -> BackupRun | None:
    """Run the pass of Operation ``operation_id``; the run, or None when this delivery had
    nothing to do. Safe to run twice: a second delivery while the first works finds the lock
    taken and returns (SnapshotBusy when its row still waits to be claimed, so the task tries
    again later); a delivery after the end finds the row final. With the lock held, a row
    already "running" lost its worker, and this one takes it over (the pass is idempotent)."""
    op = Operation.objects.filter(pk=operation_id, kind=SNAPSHOT_KIND).first()
    if op is None:
        return None
    run = BackupRun.objects.filter(operation_id=op.pk).first()
    if run is None:
        operation_fail(op.pk, error="This snapshot pass's record is gone; nothing was done.")
        return None
    with pass_lock() as mine:
        if not mine:
            if op.state in Operation.CLAIMABLE_STATES:
                raise SnapshotBusy("another worker is running a snapshot pass")
            return None
        if not _claim(op.pk):
            return None
        try:
            # The run's own start, not the claim: a retry or a takeover an hour later still
            # takes the hour it was asked for (and finds it done).
            run = snapshot_pass(now=run.started_at, operation_id=op.pk)
        except Exception as exc:  # never leave a run "running": say what broke, then let Celery log it
            snapshot_give_up(op.pk, f"The pass stopped on an unexpected error: {type(exc).__name__}: {exc}")
            raise
        lines = run.message.splitlines() or ["Done"]
        if run.result == BackupRun.Result.FAILED:
            operation_fail(op.pk, message=run.message[:300], error=run.message)
        elif run.result == BackupRun.Result.PARTIAL:
            operation_succeed(op.pk, message=f"Partly done: {lines[0]} {'; '.join(lines[1:])}")
        else:
            operation_succeed(op.pk, message=lines[0])
    return run


def snapshot_give_up(operation_id: int, words: str) -> None:
    """End the Operation and its run as failed with ``words``."""
    runs.give_up(operation_id, words, finish=_finish)


def _claim(operation_id: int) -> bool:
    return runs.claim(operation_id, taking_over="The previous worker stopped mid-pass; taking over.")


# --- the pass --------------------------------------------------------------------------------


@dataclass
class _Tally:
    made: int = 0
    removed: int = 0
    adopted: int = 0
    forgotten: int = 0


def snapshot_pass(*, now: datetime, operation_id: int | None = None) -> BackupRun:
    """One pass at ``now``: reconcile, snapshot every source for ``now``'s hour, apply
    retention. Runs on the storage host's worker (the caller holds the pass lock). Records what
    it did on the BackupRun of ``operation_id`` (a new one without): SUCCEEDED; PARTIAL when
    some sources failed and the others were done (the reasons in its message); FAILED when
    nothing could be done."""
    if timezone.is_naive(now):
        raise ValueError("now must be an aware datetime: snapshots are named by the UTC hour")
    run = BackupRun.objects.filter(operation_id=operation_id).first() if operation_id else None
    if run is None:
        run = BackupRun.objects.create(kind=BackupRun.Kind.SNAPSHOT, operation_id=operation_id, started_at=now)
    layout = Layout.from_settings()
    root = layout.root
    progress = runs.Progress(operation_id, logger)
    try:
        on_btrfs = btrfs.is_btrfs(root) if os.path.isdir(root) else layout.on_btrfs()
    except HostOpsError as exc:
        return _finish(run, result=BackupRun.Result.FAILED, message=f"The storage root {root} cannot be read: {exc}")
    if not on_btrfs:
        return _finish(run, result=BackupRun.Result.FAILED, message=NOT_BTRFS.format(root=root))
    tally = _Tally()
    problems: list[str] = []
    try:
        _ensure_snapshots_dir(root)
        sources, problems = live_sources(layout)
        _reconcile(root, sources, tally, progress)
    except HostOpsError as exc:
        words = f"Nothing was done: {exc}"
        return _finish(run, result=BackupRun.Result.FAILED, message=words)
    hour = hour_of(now)
    done = 0
    for index, source in enumerate(sources):
        try:
            if _take(root, source, hour, run):
                tally.made += 1
                progress.log(f"Snapshot of {source.name} taken for {hour:%Y-%m-%d %H:%M} UTC.")
            done += 1
        except (HostOpsError, StorageError, ValueError) as exc:
            problems.append(f"{source.name}: {exc}")
            progress.log(f"No snapshot of {source.name}: {exc}")
        progress.percent(80 * (index + 1) // max(1, len(sources)), f"Snapshots taken of {index + 1}/{len(sources)}")
    problems += _apply_retention(root, now, tally, progress)
    run.snapshots_made, run.snapshots_removed = tally.made, tally.removed
    summary = _summary(tally)
    if sources and not done:
        result = BackupRun.Result.FAILED
    elif problems:
        result = BackupRun.Result.PARTIAL
    else:
        result = BackupRun.Result.SUCCEEDED
    message = "\n".join([summary, *problems])
    return _finish(run, result=result, message=message)


def _summary(tally: _Tally) -> str:
    words = f"{_count(tally.made, 'snapshot')} taken, {tally.removed} removed by retention."
    if tally.adopted:
        words += f" {_count(tally.adopted, 'snapshot')} found on disk without a record, now recorded."
    if tally.forgotten:
        words += f" {_count(tally.forgotten, 'snapshot')} deleted outside the portal, now marked deleted."
    return words


def live_sources(layout: Layout) -> tuple[list[Source], list[str]]:
    """What is snapshotted: each member's home whose storage row says it is a present
    subvolume, and datasets/ and portal/ where they are subvolumes (scratch never: it is not
    backed up). A home missing on disk is reported, not skipped silently: it is a source that
    failed (the second item: the problems)."""
    sources: list[Source] = []
    problems: list[str] = []
    rows = MemberStorage.objects.filter(
        kind=MemberStorage.Kind.SUBVOLUME, state=MemberStorage.State.PRESENT
    ).select_related("user")
    for row in rows:
        name = f"homes/{row.user.username}"
        try:
            path = layout.home_of(row.user.username)
        except StorageError as exc:
            problems.append(f"{name}: {exc}")
            continue
        sources.append(Source(name=name, path=path, owner=row.user))
    for name, path in (("datasets", layout.datasets), ("portal", layout.portal)):
        if os.path.isdir(path) and btrfs.is_subvolume(path):
            sources.append(Source(name=name, path=path))
    return sources, problems


def _ensure_snapshots_dir(root: str) -> None:
    """``<root>/.snapshots``, root's own and mode 0700: members never see others' snapshots."""
    top = posixpath.join(root, SNAPSHOTS_DIR)
    if not os.path.isdir(top):
        files.ensure_dir(top)
    info = os.stat(top)
    if stat.S_IMODE(info.st_mode) != 0o700 or info.st_uid != 0:
        files.set_owner(top, uid=0, gid=0, mode="0700")


def _take(root: str, source: Source, hour: datetime, run: BackupRun) -> bool:
    """The hour's snapshot of ``source``; True if made now, False if it was there."""
    dest = snapshot_path(root, source.name, hour)
    row = Snapshot.objects.filter(source=source.name, taken_at=hour).first()
    if row is not None and row.deleted_at is None and os.path.lexists(dest):
        return False
    if not os.path.lexists(source.path):
        raise StorageError(f"{source.path} is missing (its storage record says it is present)")
    parent = snapshot_dir(root, source.name)
    if not os.path.isdir(parent):
        files.ensure_dir(parent)
    btrfs.snapshot_readonly(source.path, dest)
    if row is None:
        Snapshot.objects.create(source=source.name, owner=source.owner, path=dest, taken_at=hour, run=run)
    else:  # deleted by hand within the hour, and now taken again
        row.path, row.run, row.deleted_at, row.owner = dest, run, None, source.owner or row.owner
        row.save(update_fields=["path", "run", "deleted_at", "owner"])
    return True


def _reconcile(root: str, sources: list[Source], tally: _Tally, progress: runs.Progress) -> None:
    """Make the rows say what is on disk, for every source that has snapshots (a deleted
    member's too): a row whose folder is gone is marked deleted; a snapshot without a row is
    adopted (with no run: an earlier pass made it)."""
    base = posixpath.join(root, SNAPSHOTS_DIR)
    by_source: dict[str, dict[str, Snapshot]] = {}
    for row in _live_rows(root):
        by_source.setdefault(row.source, {})[row.path] = row
    names = {source.name for source in sources} | set(by_source)
    names |= {name for name in ("datasets", "portal") if os.path.isdir(posixpath.join(base, name))}
    homes = posixpath.join(base, "homes")
    if os.path.isdir(homes):
        names |= {f"homes/{entry}" for entry in os.listdir(homes)}
    owners = {source.name: source.owner for source in sources}
    now = timezone.now()
    for name in sorted(name for name in names if _SOURCE.fullmatch(name)):
        on_disk = _on_disk(snapshot_dir(root, name))
        rows = by_source.get(name, {})
        for path, row in rows.items():
            if path not in on_disk:
                row.deleted_at = now
                row.save(update_fields=["deleted_at"])
                tally.forgotten += 1
                progress.log(f"{path} was deleted outside the portal; marked deleted.")
        for path, taken_at in on_disk.items():
            if path in rows:
                continue
            owner = owners.get(name) or owner_of(name)
            with transaction.atomic():
                # A row of the same time that was marked deleted is revived rather than duplicated.
                Snapshot.objects.update_or_create(
                    source=name,
                    taken_at=taken_at,
                    defaults={"path": path, "owner": owner, "deleted_at": None},
                )
            tally.adopted += 1
            progress.log(f"{path} was on disk without a record; recorded.")


def _live_rows(root: str) -> QuerySet[Snapshot]:
    """Rows of this root (a changed STORAGE_ROOT leaves the old root's rows alone)."""
    prefix = posixpath.join(root, SNAPSHOTS_DIR) + "/"
    return Snapshot.objects.filter(deleted_at=None, path__startswith=prefix)


def _on_disk(folder: str) -> dict[str, datetime]:
    """The snapshots in ``folder``, by path: subvolumes named like a snapshot time."""
    found: dict[str, datetime] = {}
    if not os.path.isdir(folder):
        return found
    for entry in os.listdir(folder):
        if not _NAME.fullmatch(entry):
            continue
        path = posixpath.join(folder, entry)
        try:
            info = os.lstat(path)
            taken_at = datetime.strptime(entry, NAME_FORMAT).replace(tzinfo=UTC)
        except (OSError, ValueError):
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_ino == _SUBVOLUME_INODE:
            found[path] = taken_at
    return found


def owner_of(source: str) -> User | None:
    if not source.startswith("homes/"):
        return None
    return User.objects.filter(username=source.removeprefix("homes/")).first()


def _apply_retention(root: str, now: datetime, tally: _Tally, progress: runs.Progress) -> list[str]:
    """Plan each source's snapshots with the policy (one group per source, at the server's
    wall clock, pinned rows pinned) and delete what the plan removes, a batch at a time. Each deletion
    re-reads its row under a lock, so a pin set meanwhile (a restore starting) wins, and the
    newest snapshot of a source is never deleted whatever the policy."""
    policy_row = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    try:
        policy = to_planner(policy_row)
    except retention.PolicyError as exc:
        return [f"Retention not applied: the snapshot policy's {exc}"]
    rows = list(_live_rows(root).only("pk", "source", "taken_at", "pinned", "path"))
    if not rows:
        return []
    # The same view of the snapshots as the policy page's preview (the server's wall clock
    # decides what "daily" means), so what it shows is what this deletes.
    planned = retention.plan(planner_snapshots(rows), policy, now=now)
    latest: dict[str, Snapshot] = {}
    for row in rows:
        if row.source not in latest or row.taken_at > latest[row.source].taken_at:
            latest[row.source] = row
    newest = {str(row.pk) for row in latest.values()}
    doomed = [int(snap.id) for group in planned.groups for snap in group.remove if snap.id not in newest]
    problems: list[str] = []
    for start in range(0, len(doomed), DELETE_BATCH):
        if start:
            _pause()
        for pk in doomed[start : start + DELETE_BATCH]:
            problem = _delete(pk, progress)
            if problem is None:
                tally.removed += 1
            elif problem:
                problems.append(problem)
    return problems


def _delete(pk: int, progress: runs.Progress) -> str | None:
    """Delete one snapshot and mark its row; None when done, "" when skipped (pinned or gone
    meanwhile), else what went wrong."""
    with transaction.atomic():
        row = Snapshot.objects.select_for_update().filter(pk=pk, deleted_at=None, pinned="").first()
        if row is None:
            return ""
        try:
            if os.path.lexists(row.path):
                btrfs.subvolume_delete(row.path)
        except (HostOpsError, ValueError) as exc:
            return f"{row.source}: the snapshot {row.path} could not be deleted: {exc}"
        row.deleted_at = timezone.now()
        row.save(update_fields=["deleted_at"])
    progress.log(f"Removed {row.path} (retention).")
    return None


def _pause() -> None:
    time.sleep(DELETE_PAUSE_SECONDS)


def _finish(run: BackupRun, *, result: str, message: str) -> BackupRun:
    run.result = result
    run.message = message
    run.finished_at = timezone.now()
    run.save()
    backup_run_finished(run)  # a failure is told at once, not at the next alerts pass
    return run


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
