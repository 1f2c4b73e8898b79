"""The backup tiers' policies as admins edit them: retention (restic's --keep-* counts), the
overdue threshold, and the schedule, a django-celery-beat row kept in step here (not an entry of
CELERY_BEAT_SCHEDULE, which beat copies into the database at each start and would undo an
admin's change). Also what the pages show of them: the next runs and the retention preview,
which is backups.retention.plan applied to the live Snapshot rows, so the page says what the next
prune would delete with restic's own reasons."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from backups import retention
from backups.models import KEEP_FIELDS, BackupPolicy, ResticSnapshot, Snapshot
from portal.audit import AuditContext, audit_record
from portal.models import User
from portal.schedules import crontab_point, next_run
from portal.services import apply_changes
from storage import ingestion
from storage.models import IngestionJob

# The beat row of each tier: (PeriodicTask name, task), made by backups/migrations/0002 and 0004.
TIER_SCHEDULES: dict[str, tuple[str, str]] = {
    BackupPolicy.Tier.SNAPSHOT: ("backups-snapshots", "backups.tasks.snapshot_run_task"),
    BackupPolicy.Tier.RESTIC: ("backups-offsite", "backups.offsite_tasks.offsite_run_task"),
}
SCHEDULE_PARTS = ("minute", "hour", "day_of_week")
MAX_AGE_HOURS = 24 * 60  # an overdue threshold of more than 60 days is no alert at all
MAX_UPLOAD_MBPS = 10_000
MAX_EXCLUDES = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
EMPTY_POLICY = (
    "Keep at least one rule: with every count at 0 the next prune would remove every snapshot. "
    "Use -1 to keep one snapshot of every period, or a count such as 24."
)


@dataclass(frozen=True)
class Schedule:
    """A beat row's crontab as the form shows it (minute, hour, day of week; cron syntax)."""

    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    zone: str = ""  # the crontab's time zone; a new one is TIME_ZONE's

    @property
    def words(self) -> str:
        return schedule_words(self)

    @property
    def cron(self) -> str:
        return f"{self.minute} {self.hour} * * {self.day_of_week}"

    def as_cron(self) -> str:
        """The crontab with its zone, as the audit row keeps it."""
        return f"{self.cron} ({self.zone})"


def schedule_words(schedule: Schedule) -> str:
    """ "every hour at :00", "daily at 06:00", "Monday-Friday at 04:00" (server time)."""
    if schedule.hour == "*" and schedule.minute.isdigit():
        when = f"every hour at :{int(schedule.minute):02d}"
        if schedule.day_of_week != "*":
            days = ingestion.schedule_words(
                IngestionJob(schedule_minute="0", schedule_hour="0", schedule_day_of_week=schedule.day_of_week)
            ).removesuffix(" at 00:00")
            when += f", {days}"
        return when
    job = IngestionJob(
        schedule_minute=schedule.minute, schedule_hour=schedule.hour, schedule_day_of_week=schedule.day_of_week
    )
    return ingestion.schedule_words(job)


def schedule_of(task: PeriodicTask | None) -> Schedule | None:
    """The crontab of a beat row (None: no row, or one that is not a crontab)."""
    if task is None or task.crontab is None:
        return None
    row = task.crontab
    return Schedule(minute=row.minute, hour=row.hour, day_of_week=row.day_of_week, zone=str(row.timezone))


def planner_policy(counts: Mapping[str, Any], *, keep_within: str | None = None) -> retention.Policy:
    """keep_* counts (a row's, or a form's) as the planner's Policy; PolicyError where empty."""
    return retention.Policy(
        keep_last=counts.get("keep_last"),
        keep_hourly=counts.get("keep_hourly"),
        keep_daily=counts.get("keep_daily"),
        keep_weekly=counts.get("keep_weekly"),
        keep_monthly=counts.get("keep_monthly"),
        keep_yearly=counts.get("keep_yearly"),
        keep_within=keep_within,
    )


def to_planner(policy: BackupPolicy) -> retention.Policy:
    """The row's counts as the planner's Policy (PolicyError where it is empty)."""
    return planner_policy(policy.keep())


def retention_words(policy: BackupPolicy) -> str:
    """ "24 hourly, 7 daily and 4 weekly" in the order restic applies the rules."""
    parts = []
    for name in KEEP_FIELDS:
        count = getattr(policy, name)
        rule = name.removeprefix("keep_")
        if count == -1:
            parts.append(f"every {rule}" if rule != "last" else "every snapshot")
        elif count:
            parts.append(f"the last {count}" if rule == "last" else f"{count} {rule}")
    if not parts:
        return "nothing (an empty policy: every snapshot would go)"
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def policy_values(policy: BackupPolicy) -> dict[str, Any]:
    """The row's values as the form and backup_policy_update take them."""
    schedule = schedule_of(policy.periodic_task) or Schedule()
    values = {
        **policy.keep(),
        "max_age_hours": policy.max_age_hours,
        "enabled": policy.enabled,
        "minute": schedule.minute,
        "hour": schedule.hour,
        "day_of_week": schedule.day_of_week,
    }
    if policy.tier == BackupPolicy.Tier.RESTIC:
        values["upload_limit_mbps"] = policy.upload_limit_mbps
        values["excludes"] = list(policy.excludes)
    return values


def parse_excludes(text: str | list[str]) -> list[str]:
    """The offsite tier's exclude patterns, one a line (blank lines dropped, duplicates once).
    ValueError with words for a pattern restic would misread or that would name the backup's
    own mount path."""
    lines = text if isinstance(text, list) else text.splitlines()
    patterns: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if not isinstance(raw, str):
            raise ValueError(f"Line {number} is not text.")
        line = raw.strip()
        if not line:
            continue
        if _CONTROL.search(line) or len(line) > 200:
            raise ValueError(f"Line {number} is not a pattern: one line of at most 200 characters.")
        if line.startswith("/"):
            raise ValueError(
                f"Line {number} ({line}) starts with /: patterns match anywhere in each home and dataset, "
                "so leave the slash out (such as .cache or projects/tmp)."
            )
        if line not in patterns:
            patterns.append(line)
    if len(patterns) > MAX_EXCLUDES:
        raise ValueError(f"At most {MAX_EXCLUDES} patterns; there are {len(patterns)}.")
    return patterns


# --- the service ------------------------------------------------------------------------------


def _validate(values: dict[str, Any], tier: str) -> tuple[dict[str, Any], Schedule]:
    """Everything the form checks, again: a service is not trusted to be called by the form."""
    errors: dict[str, list[str]] = {}
    extra: dict[str, Any] = {}
    if tier == BackupPolicy.Tier.RESTIC:
        limit = values.get("upload_limit_mbps")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_UPLOAD_MBPS:
            errors["upload_limit_mbps"] = [f"The upload limit is a whole number of Mbit/s from 1 to {MAX_UPLOAD_MBPS}."]
        try:
            extra["excludes"] = parse_excludes(values.get("excludes") or [])
        except ValueError as exc:
            errors["excludes"] = [str(exc)]
        extra["upload_limit_mbps"] = limit
    counts: dict[str, Any] = {}
    for name in KEEP_FIELDS:
        value = values.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= 100_000:
            errors[name] = ["A whole number from -1 (keep every period) to 100000; 0 turns the rule off."]
        counts[name] = value
    if not errors:
        try:
            planner_policy(counts)
        except retention.PolicyError as exc:
            errors[exc.field or NON_FIELD_ERRORS] = [EMPTY_POLICY if not exc.field else exc.message]
    age = values.get("max_age_hours")
    if isinstance(age, bool) or not isinstance(age, int) or not 1 <= age <= MAX_AGE_HOURS:
        errors["max_age_hours"] = [f"The overdue threshold is a whole number of hours from 1 to {MAX_AGE_HOURS}."]
    parts: dict[str, str] = {}
    for part in SCHEDULE_PARTS:
        try:
            parts[part] = ingestion.validate_cron_field(str(values.get(part) or ""), part)
        except ValidationError as exc:
            errors[part] = exc.messages
    if errors:
        raise ValidationError(errors)
    fields = {**counts, "max_age_hours": age, "enabled": bool(values.get("enabled")), **extra}
    return fields, Schedule(**parts, zone=settings.TIME_ZONE)


def backup_policy_update(
    *, policy: BackupPolicy, values: dict[str, Any], actor: User, context: AuditContext
) -> BackupPolicy:
    """Save a tier's retention, overdue threshold, schedule and switch (values as
    BackupPolicyForm cleaned them: keep_*, max_age_hours, enabled, minute, hour, day_of_week;
    for the offsite tier also upload_limit_mbps and excludes)
    and point its beat row at the matching crontab, enabled with the tier. One audit row with
    old and new; nothing is written when nothing changed, and nothing at all on bad values
    (ValidationError by field)."""
    fields, schedule = _validate(values, policy.tier)
    with transaction.atomic():
        # Locked, so two admins saving at once take turns (the beat row is read after the lock).
        row = BackupPolicy.objects.select_for_update().get(pk=policy.pk)
        old_schedule = schedule_of(row.periodic_task)
        old_task_enabled = row.periodic_task.enabled if row.periodic_task else None
        changed = apply_changes(row, fields)
        row.full_clean(exclude=["periodic_task"])
        task = _schedule_sync(row, schedule)
        if old_schedule != schedule:
            changed["schedule"] = [old_schedule.as_cron() if old_schedule else None, schedule.as_cron()]
        if changed or old_task_enabled != task.enabled:
            row.save()
        if changed:
            audit_record(
                action="backups.policy_update",
                actor=actor,
                target=row,
                context=context,
                changes=changed,
                time_zone=settings.TIME_ZONE,
            )
    return row


def _schedule_sync(policy: BackupPolicy, schedule: Schedule) -> PeriodicTask:
    """The tier's beat row on ``schedule`` in the server's time zone (beat reads TIME_ZONE's
    clock), enabled with the tier. Crontab rows may be shared: one is never changed in place,
    the task is pointed at a matching one, and one left unused is deleted."""
    task = policy.periodic_task
    if task is None:
        if policy.tier not in TIER_SCHEDULES:
            raise ValidationError({NON_FIELD_ERRORS: [f"{policy} has no schedule on this portal yet."]})
        name, task_name = TIER_SCHEDULES[policy.tier]
        task = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name, task=task_name)
    task.enabled = policy.enabled
    task.description = f"{policy} (backups), kept in step with its policy by backups.policies."
    crontab_point(task, minute=schedule.minute, hour=schedule.hour, day_of_week=schedule.day_of_week)
    if policy.periodic_task_id != task.pk:
        policy.periodic_task = task
    return task


# --- what the pages show ----------------------------------------------------------------------


def next_runs(*, now: datetime | None = None) -> list[tuple[str, datetime | None]]:
    """Each tier's next start by beat after ``now``, read from its beat row by Celery's own
    reading of the crontab (None: switched off or no schedule)."""
    policies = BackupPolicy.in_order(BackupPolicy.objects.select_related("periodic_task__crontab"))
    return [(str(policy), next_run(policy.periodic_task, now)) for policy in policies]


@dataclass(frozen=True)
class PlanRow:
    """One snapshot on the preview's timeline, newest first: kept with its reasons, or removed."""

    label: str
    time: datetime
    keep: bool
    reasons: tuple[str, ...] = ()
    pinned: str = ""


@dataclass(frozen=True)
class RemovedRun:
    """Consecutive snapshots the plan removes, shown as one struck-out line (newest first)."""

    rows: tuple[PlanRow, ...]

    keep = False

    @property
    def newest(self) -> PlanRow:
        return self.rows[0]

    @property
    def oldest(self) -> PlanRow:
        return self.rows[-1]


def compact(rows: list[PlanRow], *, shortest: int = 3) -> list[PlanRow | RemovedRun]:
    """The timeline with each stretch of at least ``shortest`` removed snapshots folded into a
    RemovedRun: ten days of hourly snapshots are a page, not 240 lines."""
    out: list[PlanRow | RemovedRun] = []
    stretch: list[PlanRow] = []

    def flush() -> None:
        if len(stretch) >= shortest:
            out.append(RemovedRun(tuple(stretch)))
        else:
            out.extend(stretch)
        stretch.clear()

    for row in rows:
        if row.keep:
            flush()
            out.append(row)
        else:
            stretch.append(row)
    flush()
    return out


@dataclass
class SourcePreview:
    source: str
    owner: str
    rows: list[PlanRow] = field(default_factory=list)

    @property
    def entries(self) -> list[PlanRow | RemovedRun]:
        return compact(self.rows)

    @property
    def kept(self) -> int:
        return sum(1 for row in self.rows if row.keep)

    @property
    def removed(self) -> int:
        return sum(1 for row in self.rows if not row.keep)

    @property
    def pinned(self) -> int:
        return sum(1 for row in self.rows if row.pinned)


def timeline(group: retention.GroupPlan, labels: dict[str, str], pins: dict[str, str]) -> list[PlanRow]:
    """A group's plan as one list, newest first, kept and removed interleaved as they were taken."""
    rows = [
        PlanRow(labels[k.snapshot.id], k.snapshot.time, True, k.reasons, pins.get(k.snapshot.id, ""))
        for k in group.keep
    ]
    rows += [PlanRow(labels[s.id], s.time, False, (), "") for s in group.remove]
    rows.sort(key=lambda row: row.time.timestamp(), reverse=True)
    return rows


def planner_snapshots(rows: Iterable[Snapshot]) -> list[retention.Snapshot]:
    """Snapshot rows as the planner sees them, one group per source, each at the server's wall
    clock (TIME_ZONE), which decides what "daily" means, as restic uses the clock of the machine
    that took a snapshot. The prune of the snapshot tier must plan with this same function."""
    zone = ZoneInfo(settings.TIME_ZONE)
    return [
        retention.Snapshot(
            id=str(row.pk),
            time=row.taken_at.astimezone(zone),
            group=row.source,
            pinned=bool(row.pinned),
            pin_reason=row.pinned,
        )
        for row in rows
    ]


def planner_offsite(rows: Iterable[ResticSnapshot]) -> list[retention.Snapshot]:
    """The offsite tier's rows as the planner sees them: one group per source (restic forget
    groups by host and path, and each source has its own fixed path), each at the server's wall
    clock (the backup's --time carries TIME_ZONE's offset, which restic's buckets read)."""
    zone = ZoneInfo(settings.TIME_ZONE)
    return [retention.Snapshot(id=str(row.pk), time=row.taken_at.astimezone(zone), group=row.source) for row in rows]


def retention_preview(policy: BackupPolicy, *, now: datetime | None = None) -> list[SourcePreview]:
    """Per source, what the policy keeps of its live snapshots (with restic's reasons) and what
    the next prune (tier 1) or restic forget (tier 2) would remove; pins marked with why.
    PolicyError for an empty policy."""
    planner_policy = to_planner(policy)
    rows: list[Any]
    if policy.tier == BackupPolicy.Tier.SNAPSHOT:
        rows = list(Snapshot.objects.filter(deleted_at=None).select_related("owner").order_by("source", "-taken_at"))
        planned = planner_snapshots(rows)
    else:
        rows = list(
            ResticSnapshot.objects.filter(forgotten_at=None).select_related("owner").order_by("source", "-taken_at")
        )
        planned = planner_offsite(rows)
    if not rows:
        return []
    result = retention.plan(planned, planner_policy, now=now or timezone.now())
    by_id = {str(row.pk): row for row in rows}
    zone = ZoneInfo(settings.TIME_ZONE)
    labels = {pk: f"{row.taken_at.astimezone(zone):%Y-%m-%d %H:%M}" for pk, row in by_id.items()}
    pins = {pk: row.pinned for pk, row in by_id.items() if getattr(row, "pinned", "")}
    previews = []
    for group in sorted(result.groups, key=lambda g: str(g.group)):
        first = by_id[group.keep[0].snapshot.id if group.keep else group.remove[0].id]
        owner = first.owner.username if first.owner else ""
        previews.append(SourcePreview(str(group.group), owner, timeline(group, labels, pins)))
    return previews


def simulate(
    times: list[tuple[int, str, datetime]], policy: retention.Policy, *, now: datetime | None = None
) -> list[PlanRow]:
    """The prune simulator: pasted times (as backups.retention_io.parse_lines reads them) planned
    as one group, exactly as ``manage.py retention_plan`` does."""
    snapshots = [retention.Snapshot(id=str(number), time=when) for number, _, when in times]
    result = retention.plan(snapshots, policy, now=now or timezone.now())
    labels = {str(number): raw for number, raw, _ in times}
    return [row for group in result.groups for row in timeline(group, labels, {})]
