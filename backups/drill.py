"""The monthly restore drill of the offsite (restic) tier: proof that the backups can be read
back, not just written. A drill restores a random sample of files (BACKUP_DRILL_SAMPLE) from the newest restic
snapshot of each source with ``restic restore --verify`` and compares each file's sha256 with
the same file in the frozen read-only BTRFS snapshot it was backed up from (ResticSnapshot.local),
so "the backup holds what was there" is checked byte for byte. Then ``restic check
--read-data-subset=<month>/12`` reads a twelfth of the repository's packs, a different twelfth
each month, so a year reads everything once (and bounds Drive's egress).

Who does what:

* ``drill_run_now`` (an admin's "Run drill now") and ``drill_scheduled`` (beat's
  "backups-drill" row, the 1st of the month at 12:00 by default) record an Operation and a
  BackupRun of kind DRILL and send ``backups.drill_tasks.drill_execute_task`` by name to the
  storage host's queue (where the local snapshots are).
* ``drill_execute`` is the worker side: it claims the Operation and holds the repository's lock
  (offsite_repo.repo_lock: the night's backup, its forget and the drill never overlap); while
  another job holds it, DrillBusy makes the task try again later.

A failed drill (a mismatch, a file not restored, errors found by the check) is told to the
admins once, by its run; a drill that does not happen is backups.alerts' overdue incident.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from backups import drill_sample, offsite_repo, runs
from backups.alerts import backup_run_finished
from backups.drill_sample import Candidate, Reservoir, pick_sample
from backups.models import BackupRun, ResticSnapshot, Snapshot
from backups.restore import RestoreError, snapshot_dir
from hostops import files, restic, safetree
from hostops.errors import HostOpsError
from portal.audit import AuditContext, audit_record
from portal.env import format_size
from portal.models import Notification, Operation, User
from portal.operations import (
    operation_fail,
    operation_keepalive,
    operation_progress,
    operation_succeed,
)
from portal.services import notify_admins

logger = logging.getLogger(__name__)

DRILL_KIND = "backups.drill"
EXECUTE_TASK = "backups.drill_tasks.drill_execute_task"
STAGING_FOLDER = ".drill"
_HASH_CHUNK = 8 * 1024 * 1024
_ORPHAN_AFTER = timedelta(hours=26)
_PIN = "restore drill #{}"
LIST_TIMEOUT = 4 * 3600.0  # listing a large dataset's snapshot on Drive reads many tree blobs

NOTHING = "nothing to verify: no offsite snapshot whose local snapshot is still here"
_BUSY = "A restore drill is already queued or running. Wait for it to end."


class DrillError(Exception):
    """A refused request, in words for the admin."""


class DrillBusy(Exception):
    """Another job holds the offsite repository right now; the drill should try again later."""


# --- services --------------------------------------------------------------------------------


def drill_run_now(*, actor: User, context: AuditContext) -> Operation:
    """An admin's "Run drill now". Refused while a drill is queued or running, and while the
    offsite tier is not set up (the words say what to set)."""
    problem = offsite_repo.problem()
    if problem is not None:
        raise DrillError(f"The drill can't run: {problem}")
    with transaction.atomic():
        op, run = _start(actor=actor)
        if op is None:
            raise DrillError(_BUSY)
        audit_record(action="backups.drill_now", actor=actor, target=run, context=context)
    return op


def drill_scheduled() -> Operation | None:
    """Beat's monthly drill. Skipped with a log line (beat has nobody to tell) while the tier is
    not set up or a drill is still at work; a drill that never happens is the alerts' overdue
    incident. Not audited: its BackupRun is the record."""
    problem = offsite_repo.problem()
    if problem is not None:
        logger.info("restore drill skipped: %s", problem)
        return None
    with transaction.atomic():
        op, _ = _start(actor=None)
    if op is None:
        logger.warning("restore drill skipped: %s", _BUSY)
    return op


def _start(*, actor: User | None) -> tuple[Operation | None, BackupRun | None]:
    return runs.start_run(
        operation_kind=DRILL_KIND,
        run_kind=BackupRun.Kind.DRILL,
        task=EXECUTE_TASK,
        actor=actor,
        close_orphans=_close_orphans,
        finish=_finish,
    )


def _close_orphans() -> None:
    """Drill runs left "running" by a job that ended without recording them: recorded as failed."""
    words = "Its job ended without a result (the worker was lost); run the drill again."
    runs.orphan_runs(BackupRun.Kind.DRILL, after=_ORPHAN_AFTER).update(
        result=BackupRun.Result.FAILED, finished_at=timezone.now(), message=words
    )


# --- the worker side -------------------------------------------------------------------------


def drill_execute(operation_id: int) -> BackupRun | None:
    """Run the drill of Operation ``operation_id``; the run, or None when this delivery had
    nothing to do. With the repository's lock taken by another job, DrillBusy while the row
    still waits to be claimed (the task tries again later); a row already running belongs to
    the worker holding the lock. With the lock held, a row left running lost its worker and is
    taken over (a drill only reads, so it simply starts again)."""
    op = Operation.objects.filter(pk=operation_id, kind=DRILL_KIND).first()
    if op is None:
        return None
    run = BackupRun.objects.filter(operation_id=op.pk).first()
    if run is None:
        operation_fail(op.pk, error="This drill's record is gone; nothing was done.")
        return None
    with offsite_repo.repo_lock() as mine:
        if not mine:
            if op.state in Operation.CLAIMABLE_STATES:
                operation_progress(op.pk, message="Waiting: another job is using the offsite repository.")
                raise DrillBusy("another job holds the offsite repository")
            return None
        if not _claim(op.pk):
            return None
        try:
            run = drill_pass(run)
        except Exception as exc:  # never leave a run "running": say what broke, then let Celery log it
            drill_give_up(op.pk, f"The drill stopped on an unexpected error: {type(exc).__name__}: {exc}")
            raise
    if run.result == BackupRun.Result.SUCCEEDED:
        operation_succeed(op.pk, message=run.message)
    else:
        operation_fail(op.pk, message=run.message[:300], error=run.message)
    return run


def drill_give_up(operation_id: int, words: str) -> None:
    """End the Operation and its run as failed with ``words`` (told to the admins, like any
    failed drill)."""
    runs.give_up(operation_id, words, finish=_finish)


def _claim(operation_id: int) -> bool:
    return runs.claim(operation_id, taking_over="The previous worker stopped mid-drill; starting again.")


# --- the drill -------------------------------------------------------------------------------


def subset_of(run: BackupRun) -> str:
    """The slice of the repository this run's check reads: the month of its start in the
    server's zone, of twelve, so a year of monthly drills reads every pack once."""
    return f"{timezone.localtime(run.started_at).month}/12"


def chosen_snapshots() -> list[ResticSnapshot]:
    """The newest live restic snapshot of each source whose local snapshot is still on disk."""
    rows = (
        ResticSnapshot.objects.filter(forgotten_at=None, local__isnull=False, local__deleted_at=None)
        .select_related("local")
        .order_by("source", "-taken_at")
    )
    newest: dict[str, ResticSnapshot] = {}
    for row in rows:
        newest.setdefault(row.source, row)
    return list(newest.values())


def drill_pass(run: BackupRun) -> BackupRun:
    """The drill itself, for ``run`` (the caller holds the repository lock): sample, restore,
    compare, check; the run's result, message and details say what was found."""
    progress = runs.Progress(run.operation_id, logger)
    subset = subset_of(run)
    details: dict[str, Any] = {"files": [], "subset": subset, "check": {}, "bytes_read": 0}
    try:
        repo = offsite_repo.repository()
    except offsite_repo.OffsiteNotConfigured as exc:
        return _finish(run, result=BackupRun.Result.FAILED, message=f"The drill can't run: {exc}", details=details)
    chosen = chosen_snapshots()
    if not chosen:
        return _finish(run, result=BackupRun.Result.FAILED, message=f"The drill found {NOTHING}.", details=details)
    problems: list[str] = []
    rng = random.SystemRandom()
    _pin(run, chosen)
    try:
        candidates, details["too_large"] = _candidates(repo, chosen, rng, problems, progress)
        sample = pick_sample(candidates, settings.BACKUP_DRILL_SAMPLE, rng)
        progress.percent(10, f"Restoring {len(sample)} files")
        details["files"] = _restore_and_compare(repo, run, sample, problems, progress)
    finally:
        Snapshot.objects.filter(pinned=_PIN.format(run.pk)).update(pinned="")
    details["bytes_read"] = sum(item["size"] for item in details["files"] if item["sha256_restored"])
    progress.percent(60, f"Checking the repository, reading {subset} of its data")
    details["check"] = _check(repo, subset, problems, progress)
    return _verdict(run, details, problems)


def _pin(run: BackupRun, chosen: list[ResticSnapshot]) -> None:
    """Keep the local snapshots the drill compares with from retention while it reads them. A
    pin already there (a restore's) stays, as it keeps the snapshot too; a drill's pin left by a
    worker that died goes now (one drill runs at a time)."""
    Snapshot.objects.filter(pinned__startswith=_PIN.format("")).update(pinned="")
    ids = [row.local_id for row in chosen if row.local_id is not None]
    Snapshot.objects.filter(pk__in=ids, pinned="").update(pinned=_PIN.format(run.pk))


def _candidates(
    repo: restic.Repository,
    chosen: list[ResticSnapshot],
    rng: random.Random,
    problems: list[str],
    progress: runs.Progress,
) -> tuple[dict[str, list[Candidate]], int]:
    """Up to a whole sample's worth of files from each chosen snapshot, by source, and how many
    files were left out for their size."""
    found: dict[str, list[Candidate]] = {}
    too_large = 0
    for row in chosen:
        pool = Reservoir(row, settings.BACKUP_DRILL_SAMPLE, rng)
        try:
            with operation_keepalive(progress.operation_id):
                restic.walk(repo, row.snapshot_id, pool.top, pool.offer, timeout=LIST_TIMEOUT)
        except HostOpsError as exc:
            problems.append(f"{row.source}: snapshot {row.short_id} could not be listed: {exc}")
            continue
        found[row.source] = pool.kept
        too_large += pool.too_large
        words = f"{row.source}: {_count(pool.files, 'file')} in snapshot {row.short_id}"
        if pool.too_large:
            words += f"; {pool.too_large} over {format_size(drill_sample.MAX_FILE_BYTES)} left out of the sample"
        progress.log(words + ".")
    return found, too_large


def _restore_and_compare(
    repo: restic.Repository, run: BackupRun, sample: list[Candidate], problems: list[str], progress: runs.Progress
) -> list[dict[str, Any]]:
    """Restore the sample into a fresh root-only folder (one restore per restic snapshot), hash
    each restored file and its frozen local copy; the folder is removed however it ends."""
    staging = _staging(run)
    results: list[dict[str, Any]] = []
    try:
        by_snapshot: dict[int, list[Candidate]] = {}
        for item in sample:
            by_snapshot.setdefault(item.snapshot.pk, []).append(item)
        for number, items in enumerate(by_snapshot.values(), start=1):
            results += _one_snapshot(repo, staging, items, problems, progress)
            progress.percent(10 + 50 * number // len(by_snapshot), f"Restored from {number}/{len(by_snapshot)}")
    finally:
        files.remove_tree(staging)
    return results


def _staging(run: BackupRun) -> str:
    """``<root>/.drill/<run id>``, made afresh (0700, root's): no member can read what is restored."""
    top = posixpath.join(settings.STORAGE_ROOT, STAGING_FOLDER)
    os.makedirs(top, mode=0o700, exist_ok=True)
    os.chmod(top, 0o700)  # makedirs' mode does not apply to a folder that was already there
    staging = posixpath.join(top, str(run.pk))
    if os.path.lexists(staging):  # left by a worker that died mid-drill
        files.remove_tree(staging)
    os.mkdir(staging, 0o700)
    return staging


def _one_snapshot(
    repo: restic.Repository, staging: str, items: list[Candidate], problems: list[str], progress: runs.Progress
) -> list[dict[str, Any]]:
    """Restore one snapshot's share of the sample (``--verify`` reads each file back) and
    compare each file with its local copy."""
    row = items[0].snapshot
    target = posixpath.join(staging, str(row.pk))
    failed = ""
    try:
        with operation_keepalive(progress.operation_id):
            restic.restore(repo, row.snapshot_id, target, include=[item.path for item in items], verify=True)
    except HostOpsError as exc:
        failed = f"not restored: {exc}"
        problems.append(f"{row.source}: the restore from snapshot {row.short_id} failed: {exc}")
    results = []
    for item in items:
        restored, why_restored = ("", failed) if failed else _sha256(target, item.path.lstrip("/"))
        local, why_local = _local_sha256(item)
        entry = {"source": row.source, "path": item.relative, "size": item.size}
        entry |= {"sha256_restored": restored, "sha256_local": local, "match": bool(restored) and restored == local}
        if not entry["match"]:
            entry["problem"] = why_restored or why_local or "the checksums differ"
            if not failed:
                problems.append(f"{row.source}: {item.relative}: {entry['problem']}")
            progress.log(f"MISMATCH {row.source}: {item.relative}: {entry['problem']}")
        results.append(entry)
    return results


def _local_sha256(item: Candidate) -> tuple[str, str]:
    local = item.snapshot.local
    if local is None or local.deleted_at is not None:
        return "", "the local snapshot is gone"
    try:
        folder = snapshot_dir(local)
    except RestoreError as exc:
        return "", str(exc)
    return _sha256(folder, item.relative)


def _sha256(root: str, relative: str) -> tuple[str, str]:
    """The file's sha256 in hex and "", or "" and why it could not be read. Opened without
    following any link on the way: a member may have planted one before the snapshot."""
    try:
        fd, _size = safetree.open_file(root, relative)
    except HostOpsError as exc:
        return "", f"not read: {exc}"
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), ""


def _check(repo: restic.Repository, subset: str, problems: list[str], progress: runs.Progress) -> dict[str, Any]:
    try:
        # A twelfth of a Drive repository is a long download, and check --json reports nothing
        # until it ends: keep the job's row alive so the reaper does not take it for dead.
        with operation_keepalive(progress.operation_id):
            result = restic.check(repo, read_data_subset=subset)
    except HostOpsError as exc:
        problems.append(f"The check could not run: {exc}")
        return {"ok": False, "ran": False, "errors": [str(exc)]}
    words = {
        "ok": result.ok,
        "ran": True,
        "num_errors": result.num_errors,
        "broken_packs": list(result.broken_packs),
        "suggest_repair_index": result.suggest_repair_index,
        "suggest_prune": result.suggest_prune,
        "errors": list(result.errors[-20:]),
    }
    if not result.ok:
        said = "; ".join(result.errors[-3:]) or f"{len(result.broken_packs)} damaged packs"
        problems.append(f"The check found {_count(max(result.num_errors, 1), 'error')}: {said}")
    progress.log(f"check read {subset} of the data: {'no errors' if result.ok else 'ERRORS'}")
    return words


def _verdict(run: BackupRun, details: dict[str, Any], problems: list[str]) -> BackupRun:
    checked = details["files"]
    matched = sum(1 for item in checked if item["match"])
    size = format_size(details["bytes_read"])
    check = details["check"]
    check_words = "no errors" if check.get("ok") else "errors" if check.get("ran") else "it could not run"
    subset = details["subset"]
    if not problems and checked:
        summary = f"{_count(len(checked), 'file')}, {size} restored and matched; check read {subset} of the data: "
        return _finish(run, result=BackupRun.Result.SUCCEEDED, message=summary + check_words, details=details)
    if not checked:
        problems.insert(0, "No file could be sampled.")
    summary = (
        f"{matched} of {_count(len(checked), 'file')} restored and matched; "
        f"check read {subset} of the data: {check_words}."
    )
    return _finish(run, result=BackupRun.Result.FAILED, message="\n".join([summary, *problems]), details=details)


def _finish(run: BackupRun, *, result: str, message: str, details: dict[str, Any] | None = None) -> BackupRun:
    run.result, run.message, run.finished_at = result, message, timezone.now()
    if details is not None:
        run.details = details
        run.bytes_total = details.get("bytes_read", 0)
    run.save()
    if result == BackupRun.Result.FAILED:
        _alert(run)
    backup_run_finished(run)  # a drill that passes ends an overdue incident at once
    return run


def _alert(run: BackupRun) -> None:
    """Tell the admins of a failed drill, once. The words name sources, never a file: the alert
    also goes to the team's Slack channel, where members would read each other's file names."""
    lines = run.message.splitlines()
    files = run.details.get("files") or []
    bad = [item for item in files if not item.get("match")]
    words = [lines[0] if lines else "The drill failed."]
    if bad:
        sources = sorted({str(item["source"]) for item in bad})
        words.append(f"{_count(len(bad), 'file')} did not match or could not be restored, in {', '.join(sources)}.")
    check = run.details.get("check") or {}
    if check and not check.get("ok"):
        words.append("The repository check found errors." if check.get("ran") else "The repository check did not run.")
    notify_admins(
        title="Restore drill failed",
        body=" ".join([*words, "The run's page has the details."]),
        url=reverse("backups:history-run", args=[run.pk]),
        level=Notification.Level.ERROR,
    )
    logger.warning("restore drill %s failed: %s", run.pk, words[0])


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
