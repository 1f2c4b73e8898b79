"""The restore drill's schedule as admins edit it: beat's "backups-drill" row (made by
backups/migrations/0004_offsite_schedules.py, the 1st of each month at 12:00 server time),
pointed at another crontab by portal.schedules.crontab_point, as the tiers' rows are."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from portal.audit import AuditContext, audit_record
from portal.models import User
from portal.schedules import crontab_point

SCHEDULE_NAME = "backups-drill"
DRILL_TASK = "backups.drill_tasks.drill_run_task"
DESCRIPTION = "The monthly restore drill of the offsite tier (backups/drill.py). Admins change it on the Backups page."
LAST_DAY = 28  # every month has it


@dataclass(frozen=True)
class DrillSchedule:
    """The drill's crontab as the form shows it: a day of the month, a time, on or off."""

    enabled: bool
    day_of_month: int
    hour: int
    minute: int

    @property
    def words(self) -> str:
        return f"the {ordinal(self.day_of_month)} of each month at {self.hour:02d}:{self.minute:02d}"


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def drill_beat_row() -> PeriodicTask | None:
    return PeriodicTask.objects.select_related("crontab").filter(name=SCHEDULE_NAME).first()


def schedule_of(task: PeriodicTask | None) -> DrillSchedule:
    """The row's schedule; the migration's default (the 1st at 12:00) where the crontab was
    edited by hand into something the form can't show; off without a row."""
    enabled = task.enabled if task is not None else False
    default = DrillSchedule(enabled=enabled, day_of_month=1, hour=12, minute=0)
    crontab = task.crontab if task is not None else None
    if crontab is None:
        return default
    try:
        day, hour, minute = int(crontab.day_of_month), int(crontab.hour), int(crontab.minute)
    except ValueError:
        return default
    return DrillSchedule(enabled=enabled, day_of_month=day, hour=hour, minute=minute)


def _validate(day_of_month: object, hour: object, minute: object) -> None:
    """What the form checks, again: a service is not trusted to be called by the form."""
    errors: dict[str, list[str]] = {}
    for name, value, low, high in (("day_of_month", day_of_month, 1, LAST_DAY), ("hour", hour, 0, 23)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[name] = [f"The {name.replace('_', ' ')} is a whole number from {low} to {high}."]
    if isinstance(minute, bool) or not isinstance(minute, int) or not 0 <= minute <= 59:
        errors["minute"] = ["The minute is a whole number from 0 to 59."]
    if "day_of_month" in errors:
        errors["day_of_month"] = [f"The day is a whole number from 1 to {LAST_DAY}, so that every month has it."]
    if errors:
        raise ValidationError(errors)


def drill_schedule_update(
    *, enabled: bool, day_of_month: int, hour: int, minute: int, actor: User, context: AuditContext
) -> PeriodicTask:
    """Point beat's "backups-drill" row at the ``day_of_month`` of each month at
    ``hour``:``minute`` (server time) and switch it on or off. One audit row with the old and
    new schedule; nothing is written when nothing changed, nothing at all on bad values
    (ValidationError by field)."""
    _validate(day_of_month, hour, minute)
    new = DrillSchedule(enabled=bool(enabled), day_of_month=day_of_month, hour=hour, minute=minute)
    with transaction.atomic():
        task = PeriodicTask.objects.select_for_update().filter(name=SCHEDULE_NAME).first()
        old = schedule_of(task) if task is not None else None
        if task is not None and old == new and _exactly(task, new):
            return task
        if task is None:
            task = PeriodicTask(name=SCHEDULE_NAME, task=DRILL_TASK, description=DESCRIPTION)
        task.task, task.enabled = DRILL_TASK, new.enabled
        crontab_point(task, minute=str(minute), hour=str(hour), day_of_month=str(day_of_month))
        audit_record(
            action="backups.drill_schedule",
            actor=actor,
            target=task,
            context=context,
            old=_described(old),
            new=_described(new),
        )
    return task


def _exactly(task: PeriodicTask, schedule: DrillSchedule) -> bool:
    """Whether the row's crontab is this schedule's, not a hand-edited one read as the default."""
    row = task.crontab
    fields = (row.minute, row.hour, row.day_of_month, row.day_of_week, row.month_of_year) if row else None
    return fields == (str(schedule.minute), str(schedule.hour), str(schedule.day_of_month), "*", "*")


def _described(schedule: DrillSchedule | None) -> str | None:
    if schedule is None:
        return None
    return schedule.words + ("" if schedule.enabled else " (off)")
