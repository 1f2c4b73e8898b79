"""When beat next starts one of its database rows (django-celery-beat's PeriodicTask), for the
pages that show schedules: the monthly scrub, ingestion jobs, the backup tiers."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.tzcrontab import TzAwareCrontab


def next_run(task: PeriodicTask | None, now: datetime | None = None) -> datetime | None:
    """When beat next starts ``task`` after ``now`` (None: switched off or not a crontab), by
    the same schedule object beat uses (TzAwareCrontab in the row's zone). A plain celery
    crontab would read the fields in Celery's own zone (UTC), an hour or more off for a crontab
    in another TIME_ZONE."""
    if task is None or not task.enabled or task.crontab is None:
        return None
    row = task.crontab
    zone = ZoneInfo(str(row.timezone))
    here = (now or timezone.now()).astimezone(zone)
    schedule = TzAwareCrontab(
        minute=row.minute,
        hour=row.hour,
        day_of_week=row.day_of_week,
        day_of_month=row.day_of_month,
        month_of_year=row.month_of_year,
        tz=zone,
    )
    schedule.nowfun = lambda: here
    return here + schedule.remaining_estimate(here)


def crontab_point(
    task: PeriodicTask, *, minute: str, hour: str, day_of_week: str = "*", day_of_month: str = "*"
) -> PeriodicTask:
    """Point beat row ``task`` at the crontab with these fields in the server's time zone (beat
    reads TIME_ZONE's clock) and save it. Crontab rows may be shared by several tasks, so one is
    never changed in place: the task is pointed at a matching one, and one left unused goes."""
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        month_of_year="*",
        timezone=ZoneInfo(settings.TIME_ZONE),
    )
    old = task.crontab
    task.crontab, task.interval, task.solar, task.clocked = crontab, None, None, None
    task.save()  # save(), not update(): django-celery-beat tells beat about the change
    if old is not None and old.pk != crontab.pk and not PeriodicTask.objects.filter(crontab=old).exists():
        old.delete()
    return task
