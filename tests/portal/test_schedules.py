"""The next start of a beat row, read in the row's own zone (the scrub's once read UTC)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from portal.schedules import next_run

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.django_db
def test_a_crontab_in_berlin_starts_at_its_own_two_oclock() -> None:
    cron = CrontabSchedule.objects.create(minute="0", hour="2", timezone="Europe/Berlin")
    task = PeriodicTask.objects.create(name="t", task="x", crontab=cron)
    now = datetime(2026, 12, 2, 12, 0, tzinfo=ZoneInfo("UTC"))
    assert next_run(task, now) == datetime(2026, 12, 3, 2, 0, tzinfo=BERLIN)
    task.enabled = False
    assert next_run(task, now) is None
