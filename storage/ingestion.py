"""Data ingestion through rclone: the jobs admins define (services), their beat schedule (a
django-celery-beat row kept in step with each job) and the worker side of one run.

A job copies (or syncs) from ``remote:path`` on a remote of RCLONE_REMOTES to a folder of the
shared datasets or to another remote, at a bandwidth limit, optionally checked afterwards.
Each run is an IngestionRun with an Operation (kind ``storage.ingestion``) the page polls.
The worker holds a PostgreSQL advisory lock on the job while rclone runs, so a second
delivery of the same message does nothing and a run whose worker died can be taken over.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from hostops import rclone
from hostops.errors import HostOpsError
from portal.audit import SYSTEM, AuditContext, audit_record
from portal.locks import advisory_lock
from portal.models import Host, Notification, Operation, User
from portal.operations import (
    QUEUE_DOWN,
    operation_claim,
    operation_create,
    operation_enqueue,
    operation_fail,
    operation_progress,
    operation_succeed,
    operation_takeover,
)
from portal.services import apply_changes, notify_admins
from storage.models import IngestionJob, IngestionRun
from storage.remotes import RemotesError, rclone_config, remote_names

logger = logging.getLogger(__name__)

KIND = "storage.ingestion"
RUN_TASK = "storage.ingestion_tasks.ingestion_run_task"
SCHEDULED_TASK = "storage.ingestion_tasks.ingestion_scheduled_task"
PERIODIC_PREFIX = "storage-ingestion-"
# One run may take most of a day (a first migration of terabytes); rclone is killed after this.
RUN_TIMEOUT_S = 20 * 3600
STATS_INTERVAL_S = 1.0  # how often rclone reports progress (and the Operation row is written)
LOCK_NAMESPACE = 0x494E  # "IN": ingestion jobs' advisory locks, apart from the workspaces' ("WS")
CHECK_LISTED = 5  # differences named in a failed check's message
DUPLICATE_WINDOW_S = 600  # a second beat message for a run it started this recently is a redelivery
HEARTBEAT_S = 60.0  # how often a silent step (the check) tells the Operation it is alive


class IngestionError(Exception):
    """A request the current state refuses (a run already going, say); the message says why."""


class IngestionBusy(IngestionError):
    """A run of the job is already going (``run``)."""

    def __init__(self, message: str, run: IngestionRun) -> None:
        super().__init__(message)
        self.run = run


class IngestionFailed(Exception):
    """A run failed; the message is what the admins read."""


# --- locations and schedule fields ----------------------------------------------------------

_DATASET_PATH = re.compile(r"[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)*")
_CRON_FIELD = re.compile(r"[0-9a-z*/,-]{1,64}")
_CRON_PARTS = {"minute": "0-59", "hour": "0-23", "day_of_week": "0-6 or mon-sun"}


def validate_source(value: str) -> str:
    """``remote:path`` on a configured remote (never a local path: ingestion brings data in)."""
    return _remote_location(value, what="source")


def validate_remote_target(value: str) -> str:
    """``remote:path`` on a configured remote, for a job that copies between remotes."""
    return _remote_location(value, what="target")


def _remote_location(value: str, *, what: str) -> str:
    value = (value or "").strip()
    if value.startswith("/"):
        raise ValidationError(f"The {what} must be remote:path on a configured remote, not a folder of this server.")
    try:
        rclone.validate_location(value)
    except HostOpsError as exc:
        raise ValidationError(str(exc)) from None
    name = value.partition(":")[0]
    try:
        known = remote_names()
    except RemotesError as exc:
        raise ValidationError(str(exc)) from None
    if name not in known:
        listed = ", ".join(known) if known else "none are configured"
        raise ValidationError(f"{name!r} is not a remote of RCLONE_REMOTES (configured: {listed}).")
    return value


def validate_dataset_path(value: str) -> str:
    """A folder under the datasets root: lowercase names of letters, digits, '-', '_' and '.',
    separated by '/'; no leading '/', no '..', no hidden names."""
    value = (value or "").strip()
    if value.startswith("/"):
        raise ValidationError("Give the dataset folder relative to the datasets folder, without a leading '/'.")
    if ".." in value.split("/"):
        raise ValidationError("A dataset folder can't climb out of the datasets folder with '..'.")
    if len(value) > 300 or not _DATASET_PATH.fullmatch(value):
        raise ValidationError(
            "Use lowercase names of letters, digits, '-', '_' and '.' separated by '/', "
            "each starting with a letter or digit (such as customer-data/daily)."
        )
    return value


def validate_cron_field(value: str, part: str) -> str:
    """One cron field (``part``: minute, hour or day_of_week) as celery's crontab reads it."""
    value = (value or "").strip().lower()
    allowed = _CRON_PARTS[part]
    problem = (
        f"{value!r} is not a cron {part.replace('_', ' ')}: use {allowed}, *, "
        "lists (1,3), ranges (1-5) or steps (*/15)."
    )
    if not _CRON_FIELD.fullmatch(value):
        raise ValidationError(problem)
    try:
        crontab(**{part: value})
    except ValueError:
        raise ValidationError(problem) from None
    return value


def dataset_folder(target: str) -> str:
    """The absolute folder of a dataset target on this server."""
    return f"{settings.WORKSPACE_DATASETS_PATH.rstrip('/')}/{validate_dataset_path(target)}"


def target_location(job: IngestionJob) -> str:
    """Where rclone writes: the dataset's folder, or the other remote's ``remote:path``."""
    if job.target_kind == IngestionJob.TargetKind.DATASET:
        return dataset_folder(job.target)
    return validate_remote_target(job.target)


def validate_job(job: IngestionJob) -> None:
    """Everything a job must be before it is saved (the form says the same field by field)."""
    job.full_clean(exclude=["periodic_task", "created_by"])
    errors: dict[str, list[str]] = {}
    checks: list[tuple[str, Any]] = [("source", lambda: validate_source(job.source))]
    if job.target_kind == IngestionJob.TargetKind.DATASET:
        checks.append(("target", lambda: validate_dataset_path(job.target)))
    else:
        checks.append(("target", lambda: validate_remote_target(job.target)))
    for part in ("minute", "hour", "day_of_week"):
        value = getattr(job, f"schedule_{part}")
        if value:
            checks.append((f"schedule_{part}", lambda value=value, part=part: validate_cron_field(value, part)))
    for field, check in checks:
        try:
            check()
        except ValidationError as exc:
            errors[field] = exc.messages
    if bool(job.schedule_minute) != bool(job.schedule_hour):
        errors.setdefault(
            "schedule_hour", ["Give both a minute and an hour, or leave both empty to run the job by hand only."]
        )
    if errors:
        raise ValidationError(errors)


# --- the schedule ---------------------------------------------------------------------------


def is_scheduled(job: IngestionJob) -> bool:
    """An empty minute or hour means the job runs by hand only."""
    return bool(job.schedule_minute and job.schedule_hour)


_WEEK = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_DAYS = {str(number): name for number, name in enumerate(_WEEK)}
_DAY_NAMES = {name[:3].lower(): name for name in _DAYS.values()}


def schedule_words(job: IngestionJob) -> str:
    """The schedule as an admin says it: "daily at 04:00", "Monday-Friday at 04:00", "by hand only"."""
    if not is_scheduled(job):
        return "by hand only"
    minute, hour, day = job.schedule_minute, job.schedule_hour, job.schedule_day_of_week or "*"
    if minute.isdigit() and hour.isdigit():
        when = f"at {int(hour):02d}:{int(minute):02d}"
    else:
        when = f"at minute {minute} of hour {hour}"
    if day == "*":
        days = "daily"
    elif "/" in day:
        days = f"on days of the week {day}"
    else:
        days = re.sub(r"[0-7]|[a-z]{3}", lambda m: _DAYS.get(m[0], _DAY_NAMES.get(m[0], m[0])), day.lower())
        days = days.replace("7", "Sunday").replace(",", ", ")
    return f"{days} {when}"


def _schedule_sync(job: IngestionJob) -> None:
    """Make the job's beat row match it: none for a job run by hand, a disabled one for a
    disabled job, else the crontab in the server's time zone (beat reads TIME_ZONE's clock)."""
    task = job.periodic_task
    if not is_scheduled(job):
        if task is not None:
            job.periodic_task = None
            job.save(update_fields=["periodic_task"])
            _periodic_delete(task)
        return
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=job.schedule_minute,
        hour=job.schedule_hour,
        day_of_week=job.schedule_day_of_week or "*",
        day_of_month="*",
        month_of_year="*",
        timezone=ZoneInfo(settings.TIME_ZONE),
    )
    values = {
        "name": f"{PERIODIC_PREFIX}{job.name}",
        "task": SCHEDULED_TASK,
        "crontab": schedule,
        "interval": None,
        "args": json.dumps([job.pk]),
        "kwargs": "{}",
        "enabled": job.enabled,
        "description": f"Ingestion job {job.name} (storage: ingestion), kept in step by storage.ingestion.",
    }
    old_schedule = task.crontab if task is not None else None
    if task is None:
        PeriodicTask.objects.filter(name=values["name"]).delete()  # a row left by hand under this name
        task = PeriodicTask.objects.create(**values)
        job.periodic_task = task
        job.save(update_fields=["periodic_task"])
    else:
        for field, value in values.items():
            setattr(task, field, value)
        task.save()
    if old_schedule is not None and old_schedule.pk != schedule.pk:
        _crontab_forget(old_schedule)


def _periodic_delete(task: PeriodicTask) -> None:
    schedule = task.crontab
    task.delete()
    if schedule is not None:
        _crontab_forget(schedule)


def _crontab_forget(schedule: CrontabSchedule) -> None:
    """Delete a crontab no beat row uses any more, so edits leave no litter behind."""
    if not PeriodicTask.objects.filter(crontab=schedule).exists():
        schedule.delete()


# --- jobs -----------------------------------------------------------------------------------

JOB_FIELDS = (
    "name",
    "description",
    "source",
    "target_kind",
    "target",
    "mode",
    "bwlimit_mbps",
    "check_after",
    "enabled",
    "schedule_minute",
    "schedule_hour",
    "schedule_day_of_week",
)


@transaction.atomic
def ingestion_job_create(*, values: dict[str, Any], actor: User | None, context: AuditContext) -> IngestionJob:
    """A new job (values as IngestionJobForm cleaned them) and its beat row."""
    job = IngestionJob(**{field: values[field] for field in JOB_FIELDS if field in values}, created_by=actor)
    validate_job(job)
    job.save()
    _schedule_sync(job)
    audit_record(
        action="storage.ingestion_job_create",
        actor=actor,
        target=job,
        context=context,
        settings={field: getattr(job, field) for field in JOB_FIELDS},
    )
    return job


@transaction.atomic
def ingestion_job_update(
    *, job: IngestionJob, values: dict[str, Any], actor: User | None, context: AuditContext
) -> IngestionJob:
    """Save changed fields; the beat row follows (a run already going keeps its settings)."""
    job = IngestionJob.objects.select_for_update().get(pk=job.pk)
    changed = apply_changes(job, {field: values[field] for field in JOB_FIELDS if field in values})
    if not changed:
        return job
    validate_job(job)
    job.save()
    _schedule_sync(job)
    audit_record(action="storage.ingestion_job_update", actor=actor, target=job, context=context, changes=changed)
    return job


@transaction.atomic
def ingestion_job_delete(*, job: IngestionJob, actor: User | None, context: AuditContext) -> None:
    """Delete a job with its history and beat row; refused while a run is going."""
    job = IngestionJob.objects.select_for_update().get(pk=job.pk)
    running = _running_run(job)
    if running is not None:
        raise IngestionBusy(
            f"{job.name} is running (since {timezone.localtime(running.started_at):%H:%M}); "
            "delete it once the run has finished.",
            running,
        )
    audit_record(action="storage.ingestion_job_delete", actor=actor, target=job, context=context, source=job.source)
    task = job.periodic_task
    job.delete()
    if task is not None:
        _periodic_delete(task)


# --- starting a run -------------------------------------------------------------------------


def _running_run(job: IngestionJob) -> IngestionRun | None:
    """The job's run that is really going. A run whose Operation is final (its worker died and
    the reaper gave it up) is closed here with the Operation's words, so it blocks nothing."""
    for run in job.runs.filter(result=IngestionRun.Result.RUNNING).select_related("operation"):
        op = run.operation
        if op is not None and not op.is_final:
            return run
        run.result = IngestionRun.Result.FAILED
        run.finished_at = (op.finished if op else None) or timezone.now()
        run.message = (op.message if op else "") or "Its job ended without a word from the worker."
        run.save(update_fields=["result", "finished_at", "message"])
    return None


@transaction.atomic
def ingestion_run_start(*, job: IngestionJob, actor: User | None, context: AuditContext) -> Operation:
    """Start a run now (Run now, or beat): an IngestionRun and its Operation, the task sent to
    this server's queue after commit. Refused while a run of the job is going."""
    job = IngestionJob.objects.select_for_update().get(pk=job.pk)
    running = _running_run(job)
    if running is not None:
        raise IngestionBusy(
            f"{job.name} is already running (started {timezone.localtime(running.started_at):%Y-%m-%d %H:%M}); "
            "wait for it to finish.",
            running,
        )
    run = IngestionRun.objects.create(job=job)
    op = operation_create(kind=KIND, actor=actor, target=job, message="Waiting for the worker")
    run.operation = op
    run.save(update_fields=["operation"])
    audit_record(action="storage.ingestion_run_start", actor=actor, target=job, context=context, run=run.pk)

    def unsent() -> None:
        IngestionRun.objects.filter(pk=run.pk).update(
            result=IngestionRun.Result.FAILED, finished_at=timezone.now(), message=QUEUE_DOWN
        )

    operation_enqueue(op, task=RUN_TASK, queue=Host.local().queue, on_unsent=unsent)
    return op


def ingestion_scheduled(job_id: int) -> None:
    """Beat's start of a job. A job deleted or disabled since does nothing; one still going
    from its last run is skipped, and the admins are told."""
    job = IngestionJob.objects.filter(pk=job_id).first()
    if job is None or not job.enabled or not is_scheduled(job):
        return
    try:
        ingestion_run_start(job=job, actor=None, context=SYSTEM)
    except IngestionBusy as exc:
        if (
            exc.run.operation is not None
            and exc.run.operation.actor_id is None
            and exc.run.started_at > (timezone.now() - timedelta(seconds=DUPLICATE_WINDOW_S))
        ):
            logger.info("ingestion %s: beat's start delivered twice; the first started the run", job.name)
            return
        notify_admins(
            title=f"Ingestion {job.name}: the scheduled run was skipped",
            body=str(exc),
            url=reverse("storage:ingestion"),
            level=Notification.Level.WARNING,
        )


# --- the worker side ------------------------------------------------------------------------


def _job_lock(job_id: int) -> AbstractContextManager[bool]:
    """Try to become the one worker running ``job_id``; the lock dies with the connection."""
    return advisory_lock(LOCK_NAMESPACE, job_id)


def _claim(operation_id: int) -> bool:
    """Claim the row; with the job's lock held, a row already running lost its worker, so this
    delivery takes it over (rclone copies only what is still missing)."""
    if operation_claim(operation_id):
        return True
    state = Operation.objects.filter(pk=operation_id).values_list("state", flat=True).first()
    if state == Operation.State.RUNNING and operation_takeover(operation_id):
        operation_progress(operation_id, log="The previous worker stopped mid-run; starting rclone again.")
        return True
    return False


def ingestion_execute(operation_id: int) -> None:
    """Run the ingestion of this Operation. Safe to call twice: the second finds the job locked
    or the row claimed, and returns. Every failure ends the run as failed, with words."""
    run = IngestionRun.objects.select_related("job").filter(operation_id=operation_id).first()
    if run is None:
        operation_fail(operation_id, error="This ingestion run no longer exists (its job was deleted).")
        return
    with _job_lock(run.job_id) as mine:
        if not mine or run.result != IngestionRun.Result.RUNNING or not _claim(operation_id):
            return
        try:
            summary = _transfer(run, operation_id)
        except (IngestionFailed, HostOpsError, RemotesError, ValidationError) as exc:
            _fail(run, operation_id, _words(exc))
        except Exception as exc:  # never leave a run "running": say what broke, then let Celery log it
            _fail(run, operation_id, f"The run stopped on an unexpected error: {type(exc).__name__}: {exc}")
            raise
        else:
            run.result, run.finished_at, run.message = IngestionRun.Result.SUCCEEDED, timezone.now(), summary
            run.save(update_fields=["result", "finished_at", "message"])
            operation_succeed(operation_id, message=summary)


def _words(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def _transfer(run: IngestionRun, operation_id: int) -> str:
    """rclone copy or sync (then check, if asked); what it did in words, or IngestionFailed."""
    job = run.job
    config = rclone_config()
    source = validate_source(job.source)
    target = target_location(job)
    if job.target_kind == IngestionJob.TargetKind.DATASET and not Path(settings.WORKSPACE_DATASETS_PATH).is_dir():
        raise IngestionFailed(
            f"The datasets folder {settings.WORKSPACE_DATASETS_PATH} does not exist on this server; "
            "nothing was copied (set up the storage first)."
        )
    bwlimit = rclone.bwlimit_from_mbps(job.bwlimit_mbps)
    argv = rclone.transfer_argv(job.mode, source, target, bwlimit=bwlimit, stats_interval=STATS_INTERVAL_S)
    run.argv = argv
    run.save(update_fields=["argv"])
    operation_progress(
        operation_id,
        percent=0,
        message=f"rclone {job.mode} at {job.bwlimit_mbps} Mbit/s (--bwlimit {bwlimit})",
        log="$ " + " ".join(argv),
    )

    def on_progress(progress: rclone.Progress) -> None:
        percent = None if progress.percent is None else int(progress.percent)
        operation_progress(operation_id, percent=percent, message=progress_words(progress))
        IngestionRun.objects.filter(pk=run.pk).update(
            bytes=progress.bytes, files=progress.transfers, errors=progress.errors
        )
        ingestion_overrun_check(run, eta_s=progress.eta_s)

    def on_error(line: str) -> None:
        operation_progress(operation_id, log=line)

    transfer = rclone.sync if job.mode == IngestionJob.Mode.SYNC else rclone.copy
    result = transfer(
        source,
        target,
        timeout=RUN_TIMEOUT_S,
        config=config,
        bwlimit=bwlimit,
        on_progress=on_progress,
        on_error=on_error,
        stats_interval=STATS_INTERVAL_S,
    )
    run.files, run.bytes, run.errors = result.transfers, result.bytes, result.errors
    run.save(update_fields=["files", "bytes", "errors"])
    if not result.ok:
        raise IngestionFailed(result.error_message)
    done = (
        f"{'Synced' if job.mode == IngestionJob.Mode.SYNC else 'Copied'} {result.transfers} "
        f"file{'s' if result.transfers != 1 else ''} ({size_words(result.bytes)}) in {duration_words(result.elapsed_s)}"
    )
    if not job.check_after:
        return done + "."
    report = _checking(run, operation_id, lambda: rclone.check(source, target, config=config, timeout=RUN_TIMEOUT_S))
    if not report.ok:
        raise IngestionFailed(f"{done}, but the check found differences: {check_words(report)}")
    return f"{done}; checked: all {report.matching} file{'s' if report.matching != 1 else ''} match."


def _checking(run: IngestionRun, operation_id: int, check: Callable[[], rclone.CheckResult]) -> rclone.CheckResult:
    """Run the check (silent for as long as hashing takes: hours, on terabytes) in a thread while
    this one writes a heartbeat to the Operation, so the reaper never takes it for dead; the
    overrun alert keeps watching too."""
    started = timezone.now()
    operation_progress(operation_id, message="Checking the target against the source (sizes and hashes)")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rclone-check") as pool:
        future = pool.submit(check)
        while True:
            try:
                return future.result(timeout=HEARTBEAT_S)
            except TimeoutError:
                took = duration_words((timezone.now() - started).total_seconds())
                operation_progress(operation_id, message=f"Checking the target against the source ({took} so far)")
                ingestion_overrun_check(run, eta_s=None)


def check_words(report: rclone.CheckResult) -> str:
    """A failed check in a sentence, naming a few of the files."""
    parts = []
    for label, paths in (
        ("differ", report.differing),
        ("missing from the target", report.missing_on_dest),
        ("could not be compared", report.errors),
    ):
        if paths:
            more = len(paths) - CHECK_LISTED
            named = ", ".join(paths[:CHECK_LISTED]) + (f" and {more} more" if more > 0 else "")
            parts.append(f"{len(paths)} file{'s' if len(paths) != 1 else ''} {label} ({named})")
    return "; ".join(parts) + "."


def _fail(run: IngestionRun, operation_id: int, message: str) -> None:
    """End the run as failed with rclone's words and tell the admins (portal and Slack)."""
    run.result, run.finished_at, run.message = IngestionRun.Result.FAILED, timezone.now(), message
    run.save(update_fields=["result", "finished_at", "message"])
    operation_fail(operation_id, message=message[:300], error=message)
    notify_admins(
        title=f"Ingestion {run.job.name} failed",
        body=message,
        url=reverse("storage:ingestion-run-detail", args=[run.pk]),
        level=Notification.Level.ERROR,
    )


# --- the overrun alert ----------------------------------------------------------------------


def next_backup_after(moment: datetime) -> datetime:
    """The first BACKUP_START_HOUR:00 (server time) after ``moment``."""
    zone = ZoneInfo(settings.TIME_ZONE)
    local = moment.astimezone(zone)
    start = datetime.combine(local.date(), time(settings.BACKUP_START_HOUR), tzinfo=zone)
    return start if start > local else datetime.combine(local.date() + timedelta(days=1), start.timetz())


def ingestion_overrun_check(run: IngestionRun, *, eta_s: int | None, now: datetime | None = None) -> bool:
    """Alert the admins, once per run, that it would still be going at the backup's start:
    rclone's estimate ends past it, or the run simply is still going when it comes."""
    now = now or timezone.now()
    backup = next_backup_after(run.started_at)
    if now < backup and (eta_s is None or now + timedelta(seconds=eta_s) <= backup):
        return False
    if not IngestionRun.objects.filter(pk=run.pk, overrun_warned=False).update(overrun_warned=True):
        return False  # warned already
    run.overrun_warned = True
    at = f"{settings.BACKUP_START_HOUR:02d}:00"
    if now >= backup:
        body = f"It started at {timezone.localtime(run.started_at):%H:%M} and is still going at {at}."
    else:
        end = timezone.localtime(now + timedelta(seconds=eta_s or 0))
        body = f"rclone expects it to end at {end:%H:%M}, after the {at} backup starts."
    notify_admins(
        title=f"Ingestion {run.job.name} would still be going at the {at} backup",
        body=body + " Lower the data, raise the bandwidth limit, or start it earlier.",
        url=reverse("storage:ingestion-run-detail", args=[run.pk]),
        level=Notification.Level.WARNING,
    )
    return True


# --- words ----------------------------------------------------------------------------------


def size_words(num_bytes: float) -> str:
    """Bytes the way rclone's users read them, in decimal units: "1.2 GB"."""
    value = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def duration_words(seconds: float) -> str:
    """ "40 s", "4 min", "2 h 5 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def progress_words(progress: rclone.Progress) -> str:
    """ "1.2 GB of 3.4 GB at 11.9 MB/s, 4 min left"."""
    done = size_words(progress.bytes)
    if progress.total_bytes:
        done += f" of {size_words(progress.total_bytes)}"
    text = f"{done} at {size_words(progress.speed_bps)}/s"
    if progress.eta_s is not None and progress.total_bytes:
        text += f", {duration_words(progress.eta_s)} left"
    return text
