"""When beat next starts one of its database rows (django-celery-beat's PeriodicTask), for the
pages that show schedules: the monthly scrub, ingestion jobs, the backup tiers."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.utils import timezone
from django_celery_beat.models import PeriodicTask
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
