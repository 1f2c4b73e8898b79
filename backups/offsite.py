"""Tier 2: the nightly offsite backup with restic (to Google Drive through rclone), made from
the hour's read-only BTRFS snapshots, then thinned with ``restic forget`` under the same
retention rules the pages preview.

Who does what:

* ``offsite_scheduled`` (beat's "backups-offsite" row, 06:00 server time) and ``offsite_run_now``
  (an admin's "Back up now") record an Operation and a BackupRun and send
  ``backups.offsite_tasks.offsite_execute_task`` to the storage host's queue.
* ``offsite_execute`` is the worker side. It holds ``offsite_repo.repo_lock()`` (one job on the
  repository at a time: backup, drill, create, unlock) and runs ``offsite_pass``.
* ``offsite_pass``: for each source it takes the newest live Snapshot row (taking this hour's
  snapshots first when the hourly pass has not yet), pins it, mounts it read-only at the
  source's fixed path (``BACKUP_RESTIC_MOUNT_ROOT/<source>``) and runs ``restic backup`` of that
  path with ``--time`` = the snapshot's time, ``--host`` = BACKUP_RESTIC_HOST and the tags
  ``portal`` and ``source:<source>``. A fixed path and host make restic find last night's
  snapshot of the same source as the parent, so it reads only what changed; the same time
  makes the offsite snapshot and the local one name the same moment (the drill compares
  them). Then ``restic forget`` with the policy's counts, grouped by host and path (one group
  per source, as the planner groups), prune on BACKUP_RESTIC_PRUNE_WEEKDAY, and the
  ResticSnapshot rows are reconciled with ``restic snapshots``.

Failures: the repository missing (never created here: an admin's action on the Offsite
repository page), a wrong password, a lock, an interruption and a full target end the run as
FAILED with restic's reason in words; a source that fails on its own leaves the others done
(PARTIAL); restic's exit 3 (some files unreadable) keeps the snapshot and says which files. A
worker killed mid-run leaves its run to be marked failed; what restic uploaded stays in the
repository and the next run reuses it (its packs are content-addressed), and restic ignores
the dead process's lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups import offsite_repo, runs, snapshots
from backups.alerts import backup_run_finished
from backups.models import KEEP_FIELDS, BackupPolicy, BackupRun, ResticSnapshot, Snapshot
from hostops import mounts, restic
from hostops.errors import (
    CommandTimeout,
    HostOpsError,
    PartialForget,
    RepositoryLocked,
    RepositoryMissing,
    ResticInterrupted,
    WrongPassword,
)
from portal.audit import AuditContext, audit_record
from portal.env import format_size
from portal.models import Operation, User
from portal.operations import (
    operation_claim,
    operation_fail,
    operation_keepalive,
    operation_succeed,
)
from storage.layout import Layout

logger = logging.getLogger(__name__)

OFFSITE_KIND = "backups.offsite"
EXECUTE_TASK = "backups.offsite_tasks.offsite_execute_task"
TAG = "portal"
SOURCE_TAG = "source:"
PROGRESS_FPS = 0.5  # restic's status lines: one every two seconds is plenty for a page
# How long the run waits for a running hourly pass before it backs up what is there.
SNAPSHOT_WAIT_SECONDS = 600
_PIN = "offsite run {pk}"

# Errors that stop the whole run: every source would meet them.
_FATAL = (RepositoryMissing, WrongPassword, RepositoryLocked, ResticInterrupted, CommandTimeout)


class OffsiteError(Exception):
    """A refused request, in words for the admin."""


class OffsiteBusy(Exception):
    """Another job holds the repository; this one should try again later."""


# --- services --------------------------------------------------------------------------------


def offsite_run_now(*, actor: User, context: AuditContext) -> Operation:
    """An admin's "Back up now": the nightly run, at once. Refused while the tier is not set up
    or a run is queued or running."""
    problem = offsite_repo.problem()
    if problem:
        raise OffsiteError(problem)
    with transaction.atomic():
        op, run = _start(actor=actor)
        if op is None:
            raise OffsiteError(_BUSY)
        audit_record(action="backups.offsite_now", actor=actor, target=run, context=context)
    return op


def offsite_scheduled() -> Operation | None:
    """Beat's nightly run. Skipped (logged) while the policy is off, the tier is not set up (the
    alerts pass reports a tier that never runs as overdue) or a run is still at work."""
    policy = BackupPolicy.of(BackupPolicy.Tier.RESTIC)
    if not policy.enabled:
        logger.info("offsite backup skipped: the offsite policy is switched off")
        return None
    problem = offsite_repo.problem()
    if problem:
        logger.warning("offsite backup skipped: %s", problem)
        return None
    with transaction.atomic():
        op, _ = _start(actor=None)
    if op is None:
        logger.warning("offsite backup skipped: %s", _BUSY)
    return op


_BUSY = "An offsite backup is already queued or running. Wait for it to end."


def _start(*, actor: User | None) -> tuple[Operation | None, BackupRun | None]:
    return runs.start_run(
        operation_kind=OFFSITE_KIND,
        run_kind=BackupRun.Kind.RESTIC,
        task=EXECUTE_TASK,
        actor=actor,
        close_orphans=_close_orphans,
        finish=_finish,
    )


def _close_orphans() -> None:
    """Runs whose job ended without recording them (their worker was lost): failed, with their
    pins taken off, so the local snapshots they held go back to the retention's care."""
    words = (
        "Its worker stopped mid-run (killed or restarted). What restic had uploaded stays in the "
        "repository, and the next run reuses it."
    )
    for run in list(runs.orphan_runs(BackupRun.Kind.RESTIC)):
        _unpin(run)
        _finish(run, result=BackupRun.Result.FAILED, message=words)


# --- the worker side -------------------------------------------------------------------------


def offsite_execute(operation_id: int) -> BackupRun | None:
    """Run the backup of Operation ``operation_id``; the run, or None when this delivery had
    nothing to do. A second delivery while the first works finds the repository lock taken
    (OffsiteBusy while the row still waits, so the task tries later). A delivery that finds the
    row already running lost its worker mid-run: the run is recorded as failed rather than taken
    over (a restic backup cannot be resumed; the next run reuses what it uploaded)."""
    op = Operation.objects.filter(pk=operation_id, kind=OFFSITE_KIND).first()
    if op is None:
        return None
    run = BackupRun.objects.filter(operation_id=op.pk).first()
    if run is None:
        operation_fail(op.pk, error="This backup's record is gone; nothing was done.")
        return None
    with offsite_repo.repo_lock() as mine:
        if not mine:
            if op.state in Operation.CLAIMABLE_STATES:
                raise OffsiteBusy("another job is using the offsite repository")
            return None
        if not operation_claim(op.pk):
            op.refresh_from_db()
            if op.state == Operation.State.RUNNING:
                offsite_give_up(op.pk, _LOST)
            return None
        try:
            run = offsite_pass(run, operation_id=op.pk)
        except Exception as exc:  # never leave a run "running": say what broke, then let Celery log it
            offsite_give_up(op.pk, f"The run stopped on an unexpected error: {type(exc).__name__}: {exc}")
            raise
        first = run.message.splitlines()[0] if run.message else "Done"
        if run.result == BackupRun.Result.FAILED:
            operation_fail(op.pk, message=first[:300], error=run.message)
        elif run.result == BackupRun.Result.PARTIAL:
            operation_succeed(op.pk, message=f"Partly done: {first}")
        else:
            operation_succeed(op.pk, message=first)
    return run


_LOST = (
    "Its worker stopped mid-run (killed or restarted). What restic had uploaded stays in the repository, "
    "and the next run reuses it."
)


def offsite_give_up(operation_id: int, words: str) -> None:
    """End the Operation and its run as failed with ``words``, the run's pins taken off."""
    runs.give_up(operation_id, words, finish=_finish, before=_unpin)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class _Source:
    name: str
    snapshot: Snapshot
    result: dict[str, Any] = field(default_factory=dict)


def offsite_pass(run: BackupRun, *, now: datetime | None = None, operation_id: int | None = None) -> BackupRun:
    """Back up every source's newest snapshot as of ``now`` (the run's start: a retry still backs
    up the hour it was asked for), then forget and reconcile. The caller holds the repository
    lock. Records on ``run``: SUCCEEDED; PARTIAL when some sources failed or were read
    in part; FAILED when nothing was backed up (or forget met a repository error)."""
    progress = runs.Progress(operation_id, logger)
    deadline = time.monotonic() + settings.BACKUP_RESTIC_MAX_HOURS * 3600
    policy = BackupPolicy.of(BackupPolicy.Tier.RESTIC)
    try:
        repo = offsite_repo.repository(for_backup=True)
    except (offsite_repo.OffsiteNotConfigured, HostOpsError) as exc:
        return _finish(run, result=BackupRun.Result.FAILED, message=f"Nothing was backed up: {exc}")
    now = now or run.started_at
    problems: list[str] = []
    chosen = _choose(now, progress, problems)
    if not chosen:
        words = problems[0] if problems else "There are no local snapshots to back up yet (the hourly tier makes them)."
        return _finish(run, result=BackupRun.Result.FAILED, message=f"Nothing was backed up: {words}")
    pin = _PIN.format(pk=run.pk)
    Snapshot.objects.filter(pk__in=[s.snapshot.pk for s in chosen], pinned="").update(pinned=pin)
    done: list[_Source] = []
    fatal: str | None = None
    try:
        for index, source in enumerate(chosen):
            left = deadline - time.monotonic()
            if left <= 0:
                fatal = f"Stopped after {settings.BACKUP_RESTIC_MAX_HOURS} h (BACKUP_RESTIC_MAX_HOURS)."
                break
            try:
                _backup_one(repo, source, run, policy, progress, index, len(chosen), timeout=left)
                done.append(source)
                if source.result.get("partial"):
                    problems.append(f"{source.name}: {offsite_repo.partial_words(source.result['errors'])}")
            except _FATAL as exc:
                fatal = _words(exc)
                source.result["error"] = fatal
                break
            except (HostOpsError, OSError, ValueError) as exc:
                source.result["error"] = _words(exc)
                problems.append(f"{source.name}: {_words(exc)}")
                progress.log(f"{source.name}: not backed up: {_words(exc)}")
    finally:
        _unpin(run)
    run.details = {"sources": [{"source": s.name, **s.result} for s in chosen]}
    run.files_new = sum(int(s.result.get("files_new", 0)) for s in done)
    run.bytes_new = sum(int(s.result.get("bytes_added", 0)) for s in done)
    run.bytes_total = sum(int(s.result.get("bytes_total", 0)) for s in done)
    run.snapshot_id = " ".join(s.result["snapshot_id"][:8] for s in done)[:64]
    run.snapshots_made = len(done)
    if fatal is not None:
        message = "\n".join([f"Stopped: {fatal}", _made_words(done, chosen), *problems])
        return _finish(run, result=BackupRun.Result.FAILED, message=message)
    if not done:
        return _finish(run, result=BackupRun.Result.FAILED, message="\n".join(["Nothing was backed up.", *problems]))
    forget_problem = _forget(repo, policy, run, now, progress)
    if forget_problem:
        problems.append(forget_problem)
    message = "\n".join([_made_words(done, chosen), *problems])
    result = BackupRun.Result.PARTIAL if problems else BackupRun.Result.SUCCEEDED
    return _finish(run, result=result, message=message)


def _choose(now: datetime, progress: runs.Progress, problems: list[str]) -> list[_Source]:
    """The newest live snapshot of each source now snapshotted (a deleted member's old
    snapshots are not backed up again), taking this hour's first if the hourly pass has not."""
    layout = Layout.from_settings()
    hour = snapshots.hour_of(now)
    try:
        live, live_problems = snapshots.live_sources(layout)
    except HostOpsError as exc:
        problems.append(f"The storage root cannot be read: {exc}")
        return []
    problems.extend(live_problems)
    names = [source.name for source in live]
    have = set(
        Snapshot.objects.filter(source__in=names, taken_at=hour, deleted_at=None).values_list("source", flat=True)
    )
    if set(names) - have:
        _take_this_hour(now, progress)
    chosen = []
    for name in names:
        row = Snapshot.objects.filter(source=name, deleted_at=None, taken_at__lte=now).order_by("-taken_at").first()
        if row is None:
            problems.append(f"{name}: no local snapshot to back up")
            continue
        if row.taken_at < hour:
            progress.log(f"{name}: this hour's snapshot is missing; backing up the one of {_local(row.taken_at)}.")
        chosen.append(_Source(name=name, snapshot=row))
    return chosen


def _take_this_hour(now: datetime, progress: runs.Progress) -> None:
    """Run the hourly pass now (idempotent within the hour), or wait for the one running."""
    waited = 0.0
    while True:
        with snapshots.pass_lock() as mine:
            if mine:
                progress.log("Taking this hour's local snapshots first.")
                snapshots.snapshot_pass(now=now)
                return
        if waited >= SNAPSHOT_WAIT_SECONDS:
            progress.log("The hourly snapshot pass is still running; backing up the newest snapshots there are.")
            return
        time.sleep(5)
        waited += 5


def _backup_one(
    repo: restic.Repository,
    source: _Source,
    run: BackupRun,
    policy: BackupPolicy,
    progress: runs.Progress,
    index: int,
    count: int,
    *,
    timeout: float,
) -> None:
    snapshot = source.snapshot
    target = offsite_repo.mount_path(source.name)
    zone = ZoneInfo(settings.TIME_ZONE)

    def on_progress(status: restic.Progress) -> None:
        overall = int(90 * (index + status.percent / 100) / count)
        progress.percent(overall, _status_words(source.name, status))

    progress.log(f"{source.name}: backing up the snapshot of {_local(snapshot.taken_at)}.")
    with _mounted(snapshot.path, target):
        summary = restic.backup(
            repo,
            [target],
            time=snapshot.taken_at.astimezone(zone),
            tags=[TAG, SOURCE_TAG + source.name],
            host=settings.BACKUP_RESTIC_HOST,
            excludes=list(policy.excludes),
            one_file_system=True,
            exclude_caches=True,
            on_progress=on_progress,
            progress_fps=PROGRESS_FPS,
            timeout=timeout,
        )
    ResticSnapshot.objects.update_or_create(
        snapshot_id=summary.snapshot_id,
        defaults={
            "source": source.name,
            "owner": snapshot.owner,
            "path": target,
            "taken_at": snapshot.taken_at,
            "run": run,
            "local": snapshot,
            "files": summary.total_files_processed,
            "size": summary.total_bytes_processed,
            "forgotten_at": None,
        },
    )
    source.result = {
        "snapshot_id": summary.snapshot_id,
        "files_new": summary.files_new,
        "files_changed": summary.files_changed,
        "files_unmodified": summary.files_unmodified,
        "bytes_added": summary.data_added,
        "bytes_total": summary.total_bytes_processed,
        "seconds": round(summary.duration, 1),
        "partial": summary.partial,
        "errors": list(summary.errors[-20:]),
    }
    progress.log(
        f"{source.name}: snapshot {summary.snapshot_id[:8]}: {summary.files_new} new and {summary.files_changed} "
        f"changed files of {summary.total_files_processed}, {format_size(summary.data_added)} added."
    )


@contextmanager
def _mounted(path: str, target: str) -> Iterator[None]:
    mounts.bind_readonly(path, target)
    try:
        yield
    finally:
        try:
            mounts.unmount(target)
        except HostOpsError:
            mounts.unmount(target, lazy=True)


def keep_policy(policy: BackupPolicy) -> dict[str, int]:
    """The policy as restic's --keep-* options: the rules in use (0 is "off", not an option)."""
    return {name: value for name in KEEP_FIELDS if (value := getattr(policy, name))}


def _forget(
    repo: restic.Repository, policy: BackupPolicy, run: BackupRun, now: datetime, progress: runs.Progress
) -> str | None:
    """restic forget with the policy (prune on its weekday), then the rows reconciled; what went
    wrong, in words, or None."""
    keep = keep_policy(policy)
    if not keep:
        return "Retention not applied: the offsite policy keeps nothing (every count is 0)."
    weekday = settings.BACKUP_RESTIC_PRUNE_WEEKDAY
    prune = weekday == -1 or now.astimezone(ZoneInfo(settings.TIME_ZONE)).weekday() == weekday
    progress.percent(92, "Applying the retention (restic forget" + (" --prune)" if prune else ")"))
    problem = None
    unremoved: set[str] = set()
    try:
        with operation_keepalive(progress.operation_id):  # a prune on Drive reports nothing for long
            groups = restic.forget(repo, keep, group_by="host,paths", tags=[TAG], prune=prune)
    except PartialForget as exc:
        groups = list(cast("Sequence[restic.ForgetGroup]", exc.groups))
        unremoved = set(exc.unremoved)
        problem = _words(exc)
    except HostOpsError as exc:
        return f"Retention not applied: {_words(exc)}"
    removed = {snap.id for group in groups for snap in group.remove} - unremoved
    run.snapshots_removed = len(removed)
    run.details = {**run.details, "forget": {"removed": sorted(removed), "pruned": prune}}
    progress.log(f"restic forget removed {len(removed)} snapshot{'s' if len(removed) != 1 else ''}.")
    # forget's groups list every portal snapshot (kept, or removed): what is left is known
    # without another restic call (each costs a key derivation, most of a second).
    left = {snap.id: snap for group in groups for snap in (*group.keep, *group.remove) if snap.id not in removed}
    reconcile_rows(left)
    return problem


def reconcile(repo: restic.Repository) -> tuple[int, int]:
    """Make the ResticSnapshot rows say what the repository holds, read with ``restic snapshots``."""
    return reconcile_rows({snap.id: snap for snap in restic.snapshots(repo, tags=[TAG])})


def reconcile_rows(found: dict[str, restic.Snapshot]) -> tuple[int, int]:
    """Make the ResticSnapshot rows say what the repository holds (of the portal's snapshots,
    ``found`` by id): rows restic no longer has are marked forgotten; portal-tagged snapshots
    without a row (a run that died after restic wrote its snapshot) are recorded. Returns
    (forgotten, adopted)."""
    now = timezone.now()
    forgotten = (
        ResticSnapshot.objects.filter(forgotten_at=None).exclude(snapshot_id__in=list(found)).update(forgotten_at=now)
    )
    known = set(ResticSnapshot.objects.filter(snapshot_id__in=list(found)).values_list("snapshot_id", flat=True))
    adopted = 0
    for snap_id, snap in found.items():
        if snap_id in known:
            continue
        source = next((t.removeprefix(SOURCE_TAG) for t in snap.tags if t.startswith(SOURCE_TAG)), "")
        if not source or not snap.paths:
            continue
        owner = snapshots.owner_of(source)
        local = Snapshot.objects.filter(source=source, taken_at=snap.time).first()
        ResticSnapshot.objects.create(
            snapshot_id=snap_id, source=source, owner=owner, path=snap.paths[0], taken_at=snap.time, local=local
        )
        adopted += 1
    ResticSnapshot.objects.filter(snapshot_id__in=list(found), forgotten_at__isnull=False).update(forgotten_at=None)
    return forgotten, adopted


def _unpin(run: BackupRun) -> None:
    Snapshot.objects.filter(pinned=_PIN.format(pk=run.pk)).update(pinned="")


# --- words -----------------------------------------------------------------------------------


def _words(exc: BaseException) -> str:
    """restic's failure as the admin reads it: offsite_repo.explain's words for restic's exit
    codes (one place for the whole tier), and this run's own cases (a timeout, a full target)."""
    if isinstance(exc, CommandTimeout):
        return f"restic did not finish in time: {exc}"
    text = offsite_repo.explain(exc) if isinstance(exc, HostOpsError) else str(exc)
    if "no space left on device" in text.lower():
        return f"The backup target is full (no space left on device): {text}"
    return text


def _status_words(name: str, status: restic.Progress) -> str:
    words = (
        f"{name}: {status.files_done:,} of {status.total_files:,} files, "
        f"{format_size(status.bytes_done)} of {format_size(status.total_bytes)}, {status.percent:.0f}%"
    )
    if status.seconds_remaining is not None:
        minutes = max(1, round(status.seconds_remaining / 60))
        words += f", about {minutes} min left"
    return words


def _made_words(done: list[_Source], chosen: list[_Source]) -> str:
    added = sum(int(s.result.get("bytes_added", 0)) for s in done)
    new = sum(int(s.result.get("files_new", 0)) for s in done)
    return f"{len(done)} of {len(chosen)} sources backed up: {new:,} new files, {format_size(added)} added."


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo(settings.TIME_ZONE)):%Y-%m-%d %H:%M}"


def _finish(run: BackupRun, *, result: str, message: str) -> BackupRun:
    run.result = result
    run.message = message
    run.finished_at = timezone.now()
    run.save()
    backup_run_finished(run)
    return run
