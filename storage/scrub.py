"""The scrub of the storage filesystem: BTRFS reads every block and checks it against its
checksum, repairing from the other copy where the profile keeps one (RAID1/10, DUP).

Who does what:

* ``scrub_start`` / ``scrub_cancel`` / ``scrub_schedule_update`` are the services (admins'
  buttons, and beat's monthly run through ``scrub_monthly``).
* ``scrub_execute`` is the worker side (``storage.scrub_tasks.scrub_task`` on the local host's
  queue): it starts the kernel's scrub in the background and follows it with ``scrub status``
  until it ends, so a worker that dies leaves the kernel's scrub running and the redelivered
  task picks it up instead of starting a second one.
* ``scrub_section_context`` feeds the section of the storage page.

Whether the storage root is on BTRFS is the worker's to say: in the compose stack only the
worker mounts it (the web process sees an empty /srv of its image). So the worker checks before
every scrub, and its answer is kept in the cache for a while, so a second click on a root that is
not BTRFS is refused at once instead of queueing another job that can only fail.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from hostops import btrfs
from hostops.btrfs import DeviceStats, ScrubStatus
from hostops.errors import HostOpsError, HostOpsTransient, NotFound
from portal.audit import SYSTEM, AuditContext, audit_record
from portal.env import format_size
from portal.locks import advisory_lock
from portal.models import Host, Notification, Operation, User
from portal.operations import (
    operation_claim,
    operation_create,
    operation_enqueue,
    operation_fail,
    operation_progress,
    operation_resend,
    operation_succeed,
    operation_takeover,
)
from portal.schedules import next_run
from portal.services import notify_admins
from storage.models import ScrubRun
from storage.scrub_forms import DAYS, ScrubScheduleForm

logger = logging.getLogger(__name__)

SCRUB_KIND = "storage.scrub"
SCRUB_TASK = "storage.scrub_tasks.scrub_task"
MONTHLY_TASK = "storage.scrub_tasks.scrub_monthly_task"
SCHEDULE_NAME = "storage-scrub"
# How often the worker asks the kernel how far the scrub is (tests make it fast).
POLL_SECONDS = 5.0
# Right after ``scrub start`` the status may still be the previous scrub's record, and after a
# cancel it takes a moment to say so; longer than this and something else is wrong.
START_GRACE_SECONDS = 60.0
HISTORY = 12
# The worker's last look at the storage root: {"root": path, "btrfs": bool, "at": iso time}.
ROOT_FACT_KEY = "storage:scrub:root-fs"
ROOT_FACT_SECONDS = 15 * 60
# A PostgreSQL session advisory lock held by the one worker following the scrub; it dies with
# the worker's connection, so "running, but the lock is free" means that worker is gone.
_LOCK = (0x5343, 1)  # "SC"
_COUNTERS = ("write_io_errs", "read_io_errs", "flush_io_errs", "corruption_errs", "generation_errs")

NOT_BTRFS = (
    "The storage root {root} is not on a BTRFS filesystem, so there is nothing to scrub "
    "(scrubbing checks BTRFS checksums). Put STORAGE_ROOT on the BTRFS pool."
)
ABANDONED_TOO_OFTEN = "Its worker stopped {attempts} times while following the scrub; the job was given up."


class ScrubError(Exception):
    """A refused request, in words for the admin."""


class ScrubBusy(HostOpsTransient):
    """Another worker is following a scrub right now; try again shortly."""


# --- services --------------------------------------------------------------------------------


def scrub_start(*, actor: User | None, context: AuditContext) -> Operation:
    """Record a scrub and send it to the local host's worker. Refused (ScrubError) while one is
    running, and when the worker found lately that the storage root is not on BTRFS. ``actor``
    None is beat's monthly run. A queue that does not take the task fails the Operation at once
    (its message says so) and the run is recorded as not run."""
    root = settings.STORAGE_ROOT
    with transaction.atomic():
        # Locking the host row makes two clicks at once take turns: the second sees the first.
        host = Host.objects.select_for_update().get(pk=Host.local().pk)
        _close_orphans()
        running = _running_run()
        if running is not None or Operation.objects.filter(kind=SCRUB_KIND).in_progress().exists():
            since = f" since {timezone.localtime(running.started_at):%Y-%m-%d %H:%M}" if running else ""
            raise ScrubError(f"A scrub of {root} is already running{since}. Wait for it to end, or cancel it first.")
        fact = root_fact()
        if fact is not None and not fact["btrfs"]:
            raise ScrubError(NOT_BTRFS.format(root=root))
        op = operation_create(kind=SCRUB_KIND, actor=actor, target=host, message=f"Waiting for the worker of {host}")
        run = ScrubRun.objects.create(operation=op, mount=root)
        audit_record(action="storage.scrub_start", actor=actor, target=run, context=context, mount=root)

        def unsent() -> None:
            _finish(run, result=ScrubRun.Result.FAILED, message="Not started: the job queue did not answer.")

        operation_enqueue(op, task=SCRUB_TASK, queue=host.queue, on_unsent=unsent)
    return op


def scrub_cancel(*, actor: User, context: AuditContext) -> ScrubRun:
    """Stop the running scrub. One still waiting for its worker ends at once; one under way (or
    waiting to retry) is cancelled by the worker following it at its next look (within
    POLL_SECONDS), which records what the scrub had read and found by then. The request is kept
    on the Operation's params, which only this and the worker write."""
    with transaction.atomic():
        run = ScrubRun.objects.select_for_update().filter(result=ScrubRun.Result.RUNNING).first()
        op = (
            Operation.objects.select_for_update().filter(pk=run.operation_id).first()
            if run and run.operation_id
            else None
        )
        if run is None or op is None or op.is_final:
            raise ScrubError("No scrub is running, so there is nothing to cancel.")
        audit_record(action="storage.scrub_cancel", actor=actor, target=run, context=context, mount=run.mount)
        if op.state == Operation.State.QUEUED:  # no worker has it: no kernel scrub either
            words = f"Cancelled by {actor.username} before it started."
            operation_fail(op.pk, message=words, error=words)
            _finish(run, result=ScrubRun.Result.CANCELLED, message=words)
            return run
        op.params = {**op.params, "cancel": actor.username}
        op.save(update_fields=["params"])
        operation_progress(op.pk, log=f"{actor.username} asked to cancel the scrub.")
    return run


def scrub_schedule() -> PeriodicTask | None:
    return PeriodicTask.objects.select_related("crontab").filter(name=SCHEDULE_NAME).first()


@dataclass(frozen=True)
class Schedule:
    enabled: bool
    day_of_week: int  # 0 Sunday … 6 Saturday
    hour: int
    minute: int

    @property
    def words(self) -> str:
        return f"the first {DAYS[self.day_of_week]} of each month at {self.hour:02d}:{self.minute:02d}"


def schedule_of(task: PeriodicTask | None) -> Schedule:
    """The schedule as the form shows it: the migration's default (first Sunday, 01:00) where
    the crontab was edited by hand into something the form can't show; off without a row."""
    enabled = task.enabled if task is not None else False
    crontab = task.crontab if task is not None else None
    default = Schedule(enabled=enabled, day_of_week=0, hour=1, minute=0)
    if crontab is None:
        return default
    try:
        day, hour, minute = int(crontab.day_of_week), int(crontab.hour), int(crontab.minute)
    except ValueError:
        return default
    return Schedule(enabled=enabled, day_of_week=day % 7, hour=hour, minute=minute)


def scrub_schedule_update(
    *, enabled: bool, day_of_week: int, hour: int, minute: int, actor: User, context: AuditContext
) -> PeriodicTask:
    """Point beat's "storage-scrub" row at a crontab for the first ``day_of_week`` of the month
    at ``hour``:``minute`` in the server's time zone (TIME_ZONE), and switch it on or off.

    The crontab is day_of_month 1-7 *and* day_of_week: Celery's crontab requires both fields to
    match (unlike Vixie cron, which fires when either does), so beat sends the task on the first
    such weekday only; the task checks the date again (``scrub_monthly``) in case the row is
    edited by hand. Crontab rows may be shared by other tasks, so one is never changed in
    place: the task is pointed at a matching one."""
    if not (0 <= day_of_week <= 6 and 0 <= hour <= 23 and 0 <= minute <= 59):
        raise ScrubError("The day must be 0-6 (Sunday to Saturday), the hour 0-23 and the minute 0-59.")
    new = Schedule(enabled=enabled, day_of_week=day_of_week, hour=hour, minute=minute)
    with transaction.atomic():
        task = PeriodicTask.objects.select_for_update().filter(name=SCHEDULE_NAME).first()
        old = schedule_of(task) if task is not None else None
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=str(minute),
            hour=str(hour),
            day_of_month="1-7",
            month_of_year="*",
            day_of_week=str(day_of_week),
            timezone=settings.TIME_ZONE,
        )
        if task is None:
            task = PeriodicTask(name=SCHEDULE_NAME, task=MONTHLY_TASK, description=SCHEDULE_DESCRIPTION)
        task.crontab, task.interval, task.solar, task.clocked = crontab, None, None, None
        task.task, task.enabled = MONTHLY_TASK, enabled
        task.save()  # save(), not update(): django-celery-beat tells beat about the change
        audit_record(
            action="storage.scrub_schedule",
            actor=actor,
            target=task,
            context=context,
            old=old.words + ("" if old.enabled else " (off)") if old else None,
            new=new.words + ("" if enabled else " (off)"),
        )
    return task


SCHEDULE_DESCRIPTION = (
    "The monthly scrub of the storage filesystem (storage/scrub.py). Admins change it on the storage page."
)


def scrub_monthly(*, today: date | None = None) -> Operation | None:
    """Beat's monthly run: a scrub on the first week's day the schedule names. Beat fires only
    then (see scrub_schedule_update); this skips any other day, and a second run in the same
    month, so a schedule edited by hand to fire more often still scrubs once a month. Refusals
    (one running, not BTRFS) are logged: beat has nobody to tell."""
    today = today or timezone.localdate()
    if today.day > 7:
        logger.info("monthly scrub skipped: %s is not in the first week of the month", today)
        return None
    month_start = datetime(today.year, today.month, 1, tzinfo=timezone.get_current_timezone())
    already = ScrubRun.objects.filter(started_at__gte=month_start, operation__actor=None).exclude(
        result=ScrubRun.Result.FAILED
    )
    if already.exists():
        logger.info("monthly scrub skipped: this month's scheduled scrub already ran")
        return None
    try:
        return scrub_start(actor=None, context=SYSTEM)
    except ScrubError as exc:
        logger.warning("monthly scrub not started: %s", exc)
        return None


# --- what the page shows ---------------------------------------------------------------------


def root_fact() -> dict[str, Any] | None:
    """The worker's last look at the storage root (None: not looked lately, or another root)."""
    fact = cache.get(ROOT_FACT_KEY)
    if isinstance(fact, dict) and fact.get("root") == settings.STORAGE_ROOT:
        return fact
    return None


def _remember_root(root: str, *, is_btrfs: bool) -> None:
    cache.set(ROOT_FACT_KEY, {"root": root, "btrfs": is_btrfs, "at": timezone.now().isoformat()}, ROOT_FACT_SECONDS)


_PILLS: dict[str, str] = {
    ScrubRun.Result.RUNNING: "pill-info",
    ScrubRun.Result.CLEAN: "pill-ok",
    ScrubRun.Result.CORRECTED: "pill-warn",
    ScrubRun.Result.UNCORRECTABLE: "pill-bad",
    ScrubRun.Result.FAILED: "pill-bad",
    ScrubRun.Result.CANCELLED: "",
}


@dataclass(frozen=True)
class ScrubRow:
    """One line of the history, with what the template can't compute."""

    run: ScrubRun

    @property
    def duration(self) -> str:
        taken = self.run.duration
        return _duration(int(taken.total_seconds())) if taken is not None else ""

    @property
    def pill(self) -> str:
        return _PILLS.get(self.run.result, "")

    @property
    def by(self) -> str:
        op = self.run.operation
        if op is None:
            return ""
        return "schedule" if op.actor_id is None else (op.actor.username if op.actor else "")


def scrub_section_context(*, form: Any = None) -> dict[str, Any]:
    """The scrub section of the storage page: the last runs, the one running with its
    Operation, the schedule and its form (``form``: a bound one that failed, to show again)."""
    runs = [ScrubRow(run) for run in ScrubRun.objects.select_related("operation__actor")[:HISTORY]]
    running = next((row.run for row in runs if row.run.result == ScrubRun.Result.RUNNING), None)
    task = scrub_schedule()
    schedule = schedule_of(task)
    if form is None:
        form = ScrubScheduleForm(initial=schedule.__dict__)
    fact = root_fact()
    return {
        "scrub_runs": runs,
        "scrub_running": running,
        "scrub_op": running.operation if running else None,
        "scrub_schedule": schedule if task is not None else None,
        "scrub_next": next_run(task),
        "scrub_form": form,
        "scrub_root": settings.STORAGE_ROOT,
        "scrub_not_btrfs": fact is not None and not fact["btrfs"],
        "scrub_time_zone": settings.TIME_ZONE,
        "scrub_max_hours": settings.STORAGE_SCRUB_MAX_HOURS,
    }


# --- the worker side -------------------------------------------------------------------------


def _scrub_lock() -> AbstractContextManager[bool]:
    """Try to become the one worker following the scrub; yields whether it succeeded."""
    return advisory_lock(*_LOCK)


def scrub_watch() -> bool:
    """Beat, every minute: a scrub job "running" whose worker is gone (nobody holds the lock:
    it died with that worker's database session) is sent again at once, so a live worker takes
    it over and follows the kernel's scrub, which goes on without it. Redis alone would hand
    the unacked message out again only after its visibility timeout (an hour), after the
    reaper had failed the row. True when it sent one."""
    op = Operation.objects.filter(kind=SCRUB_KIND, state=Operation.State.RUNNING).first()
    if op is None:
        return False
    with _scrub_lock() as free:
        if not free or connection.vendor != "postgresql":
            return False
    op.refresh_from_db()
    if op.state != Operation.State.RUNNING:  # it ended meanwhile
        return False
    note = "The worker following the scrub is gone; sent the job again."
    return operation_resend(op, task=SCRUB_TASK, queue=Host.local().queue, note=note)


def scrub_execute(operation_id: int) -> None:
    """Run (or take over) the scrub of Operation ``operation_id``. Safe to run twice: a second
    delivery while the first works finds the lock taken and the row running, and returns.
    Transient host errors propagate (the task retries); others end the run as FAILED."""
    op = Operation.objects.filter(pk=operation_id, kind=SCRUB_KIND).first()
    if op is None:
        return
    run = ScrubRun.objects.filter(operation_id=op.pk).first()
    if run is None:
        operation_fail(op.pk, error="This scrub's record is gone; nothing was started.")
        return
    with _scrub_lock() as mine:
        if not mine:
            if op.state in Operation.CLAIMABLE_STATES:
                raise ScrubBusy("another worker is following a scrub")
            return
        if not _claim(op):
            return
        op.refresh_from_db()
        try:
            _follow(op, run)
        except HostOpsTransient:
            raise
        except (HostOpsError, ValueError) as exc:
            scrub_give_up(op.pk, exc)


def scrub_give_up(operation_id: int, exc: Exception) -> None:
    """End the run as FAILED with the host's words (also after the last retry of a transient
    error)."""
    run = ScrubRun.objects.filter(operation_id=operation_id, result=ScrubRun.Result.RUNNING).first()
    words = f"The scrub could not run: {exc}"
    with transaction.atomic():
        operation_fail(operation_id, message=words, error=f"{type(exc).__name__}: {exc}")
        if run is not None:
            _finish(run, result=ScrubRun.Result.FAILED, message=words)
            # The monthly run has nobody watching it: say so, or a failing scrub goes unseen.
            notify_admins(
                title=f"Scrub of {run.mount} could not run",
                body=words,
                url=reverse("storage:overview"),
                level=Notification.Level.WARNING,
            )


def _claim(op: Operation) -> bool:
    """Claim the row; with the lock held, a row already "running" lost its worker, so this
    delivery takes it over (a few times at most)."""
    if operation_claim(op.pk):
        return True
    op.refresh_from_db(fields=["state", "attempts"])
    if op.state != Operation.State.RUNNING:
        return False
    if operation_takeover(op.pk):
        operation_progress(op.pk, log="The previous worker stopped; taking over the scrub.")
        return True
    words = ABANDONED_TOO_OFTEN.format(attempts=op.attempts)
    with transaction.atomic():
        operation_fail(op.pk, error=words)
        ScrubRun.objects.filter(operation_id=op.pk, result=ScrubRun.Result.RUNNING).update(
            result=ScrubRun.Result.FAILED, finished_at=timezone.now(), message=words
        )
    return False


def _follow(op: Operation, run: ScrubRun) -> None:
    root = run.mount
    try:
        is_btrfs = btrfs.is_btrfs(root)
    except NotFound as exc:
        raise HostOpsError(f"the storage root {root} does not exist on this server") from exc
    _remember_root(root, is_btrfs=is_btrfs)
    if not is_btrfs:
        words = NOT_BTRFS.format(root=root)
        with transaction.atomic():
            operation_fail(op.pk, message=words, error=words)
            _finish(run, result=ScrubRun.Result.FAILED, message=words)
        return
    before = _stats_before(op, root)
    # The run's own start (the click), not the claim: a retry claims the row again.
    started = run.started_at
    prior = btrfs.scrub_status(root)
    # A scrub found ended after the click is this job's only when an earlier attempt started it.
    resumed = op.attempts > 1
    started_now = False
    if prior.running:
        operation_progress(
            op.pk, message="Following the scrub under way", log=f"A scrub of {root} is running; following it."
        )
    elif resumed and _is_ours(prior, started) and prior.status in ("finished", "aborted"):
        operation_progress(op.pk, log=f"The scrub of {root} ended while no worker followed it; recording it.")
    else:
        if resumed and _is_ours(prior, started):  # interrupted: its btrfs process died with the worker
            operation_progress(op.pk, log=f"The scrub of {root} was interrupted with its worker; starting it again.")
        started_now = btrfs.scrub_start(root)
        if started_now:
            operation_progress(op.pk, message="Scrub started", log=f"Started the scrub of {root}.")
        else:
            operation_progress(op.pk, log=f"A scrub of {root} was already running; following it.")
    status = btrfs.scrub_status(root) if started_now or not prior.running else prior
    total = btrfs.filesystem_usage(root).used
    deadline = started + timedelta(hours=settings.STORAGE_SCRUB_MAX_HOURS)
    cancelled_by = ""
    overdue = False
    stop_asked: float | None = None  # when the kernel was asked to cancel
    stale_since: float | None = None  # since when the status still shows the scrub before ours
    # Under way: running; or no figures yet (btrfs writes them every few seconds, and the kernel
    # has them per block group); or, just after the start, still the previous scrub's record.
    while status.running or status.status == "" or (started_now and status == prior):
        now = time.monotonic()
        if status == prior and not status.running and status.status:
            stale_since = stale_since or now
            if now - stale_since > START_GRACE_SECONDS:
                break  # the same record again: a scrub as quick as the one before, in the same second
        if stop_asked is not None and now - stop_asked > START_GRACE_SECONDS:
            break
        _report(op, status, total)
        if stop_asked is None:
            asked = Operation.objects.filter(pk=op.pk).values_list("params", flat=True).first() or {}
            if asked.get("cancel"):
                cancelled_by = str(asked["cancel"])
            overdue = not cancelled_by and timezone.now() >= deadline
            if cancelled_by or overdue:
                btrfs.scrub_cancel(root)
                stop_asked = now
        _pause()
        status = btrfs.scrub_status(root)
    after = btrfs.device_stats(root)
    scrub_record(run, op, status, before=before, after=after, cancelled_by=cancelled_by, overdue=overdue)


def _pause() -> None:
    time.sleep(POLL_SECONDS)


def _is_ours(status: ScrubStatus, asked: datetime) -> bool:
    """Whether the kernel's last scrub began after this run was asked for (btrfs prints whole
    seconds, hence the second of slack)."""
    return status.started is not None and status.started >= asked - timedelta(seconds=1)


def _stats_before(op: Operation, root: str) -> dict[str, dict[str, int]]:
    """The device counters when the job began, kept on the row so a worker taking over compares
    against the same figures."""
    kept = op.params.get("device_stats_before")
    if isinstance(kept, dict):
        return kept
    figures = _figures(btrfs.device_stats(root))
    with transaction.atomic():
        row = Operation.objects.select_for_update().get(pk=op.pk)
        row.params = {**row.params, "device_stats_before": figures}
        row.save(update_fields=["params"])
    return figures


def _figures(stats: list[DeviceStats]) -> dict[str, dict[str, int]]:
    return {item.device: {name: getattr(item, name) for name in _COUNTERS} for item in stats}


def _report(op: Operation, status: ScrubStatus, total: int) -> None:
    done = status.bytes_scrubbed
    percent = min(99, int(100 * done / total)) if total else 0
    errors = f", {status.errors} error{'s' if status.errors != 1 else ''} so far" if status.errors else ""
    operation_progress(op.pk, percent=percent, message=f"Scrubbed {format_size(done)} of {format_size(total)}{errors}")


@dataclass(frozen=True)
class Grown:
    device: str
    counter: str
    before: int
    after: int


def _grown(before: dict[str, dict[str, int]], after: list[DeviceStats]) -> list[Grown]:
    found = []
    for item in after:
        old = before.get(item.device, {})
        for name in _COUNTERS:
            was, now = old.get(name, 0), getattr(item, name)
            if now > was:
                found.append(Grown(item.device, name, was, now))
    return found


def scrub_record(
    run: ScrubRun,
    op: Operation,
    status: ScrubStatus,
    *,
    before: dict[str, dict[str, int]],
    after: list[DeviceStats],
    cancelled_by: str = "",
    overdue: bool = False,
) -> ScrubRun:
    """Write what the scrub read and found on its run, end its Operation, and tell the admins
    (and Slack) about any error: the scrub's own counters, and device counters that grew."""
    corrected = status.counters.get("corrected_errors", 0)
    uncorrectable = status.uncorrectable_errors
    grown = _grown(before, after)
    max_hours = settings.STORAGE_SCRUB_MAX_HOURS
    if overdue:
        result, words = ScrubRun.Result.CANCELLED, f"Cancelled: still running after the limit of {max_hours:g} h."
    elif cancelled_by:
        result, words = ScrubRun.Result.CANCELLED, f"Cancelled by {cancelled_by}."
    elif status.status == "aborted":
        result, words = ScrubRun.Result.CANCELLED, "Cancelled outside the portal (btrfs scrub cancel)."
    elif status.status != "finished":
        result = ScrubRun.Result.FAILED
        words = f"The scrub stopped before the end (btrfs says {status.status or 'nothing'}): an unmount or reboot?"
    elif uncorrectable:
        result, words = ScrubRun.Result.UNCORRECTABLE, _count(uncorrectable, "uncorrectable error") + "."
    elif corrected or status.errors:
        result, words = ScrubRun.Result.CORRECTED, _count(max(corrected, status.errors), "error") + " corrected."
    else:
        result, words = ScrubRun.Result.CLEAN, "No errors."
    if grown and result == ScrubRun.Result.CLEAN:
        words = "No errors in the scrub, but device error counters grew."
    started = status.started or run.started_at
    with transaction.atomic():
        run.started_at = started
        run.bytes_scrubbed = status.bytes_scrubbed
        run.corrected_errors = corrected
        run.uncorrectable_errors = uncorrectable
        _finish(run, result=result, message=words, finished_at=started + timedelta(seconds=status.duration_s))
        summary = f"{words} Read {format_size(status.bytes_scrubbed)} in {_duration(status.duration_s)}."
        if result in (ScrubRun.Result.CLEAN, ScrubRun.Result.CORRECTED, ScrubRun.Result.UNCORRECTABLE):
            operation_succeed(op.pk, message=summary)
        else:
            operation_fail(op.pk, message=summary, error=words)
        if uncorrectable or corrected or status.errors or grown:
            _tell_admins(run, status, grown)
        elif result == ScrubRun.Result.FAILED:
            notify_admins(
                title=f"Scrub of {run.mount} stopped before the end",
                body=words,
                url=reverse("storage:overview"),
                level=Notification.Level.WARNING,
            )
    return run


def _tell_admins(run: ScrubRun, status: ScrubStatus, grown: list[Grown]) -> None:
    uncorrectable = status.uncorrectable_errors
    corrected = status.counters.get("corrected_errors", 0)
    if uncorrectable:
        title = f"Scrub of {run.mount}: {_count(uncorrectable, 'uncorrectable error')}"
    elif corrected or status.errors:
        title = f"Scrub of {run.mount}: {_count(max(corrected, status.errors), 'error')} corrected"
    else:
        title = f"Scrub of {run.mount}: device error counters grew"
    found = ", ".join(
        f"{name.replace('_', ' ')} {status.counters[name]}"
        for name in ("csum_errors", "read_errors", "verify_errors", "super_errors", "corrected_errors")
        if status.counters.get(name)
    )
    lines = [f"The scrub found: {found or 'nothing itself'}."]
    lines += [f"{item.device}: {item.counter} {item.before} → {item.after}" for item in grown]
    if uncorrectable:
        lines.append(
            "Data with uncorrectable errors is lost on this filesystem: the kernel log names the files "
            "(dmesg | grep 'checksum error'); restore them from the backup, and check the disk named above."
        )
    elif grown:
        lines.append("A disk whose counters grow is failing: check its SMART data and plan its replacement.")
    level = Notification.Level.ERROR if uncorrectable else Notification.Level.WARNING
    # notify_admins posts the same title and body to Slack (slack_post_later) after the commit.
    notify_admins(title=title, body="\n".join(lines), url=reverse("storage:overview"), level=level)


def _finish(run: ScrubRun, *, result: str, message: str, finished_at: datetime | None = None) -> None:
    run.result = result
    run.message = message
    run.finished_at = finished_at or timezone.now()
    run.save()


def _close_orphans() -> None:
    """Runs left "running" by a job that ended without recording them (reaped after its worker
    vanished): recorded as failed, so they neither block the next scrub nor linger."""
    words = (
        "Its job ended without a result (the worker was lost). "
        "A scrub still running in the kernel is followed by the next one."
    )
    orphans = ScrubRun.objects.filter(result=ScrubRun.Result.RUNNING).filter(
        Q(operation=None) | Q(operation__state__in=Operation.FINAL_STATES)
    )
    orphans.update(result=ScrubRun.Result.FAILED, finished_at=timezone.now(), message=words)


def _running_run() -> ScrubRun | None:
    return ScrubRun.objects.filter(result=ScrubRun.Result.RUNNING).first()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{rest // 60} min {rest % 60} s" if rest >= 60 else f"{rest} s"
