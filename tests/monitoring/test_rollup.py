"""Rollups (5-minute and hourly means of the raw rows) on real PostgreSQL: correct averages,
nothing written twice however often they run, only settled buckets, catching up after the
worker was down; and pruning each resolution by its own age."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from monitoring import tasks
from monitoring.bins import floor
from monitoring.models import Resolution, Sample
from monitoring.rollup import SETTLE, rollup_buckets, samples_prune, samples_rollup
from tests.monitoring.conftest import Rows, minutes

pytestmark = pytest.mark.django_db

T0 = floor(timezone.now() - timedelta(hours=3), timedelta(hours=1))  # a whole hour, 3 to 4 hours ago


def _rolled(resolution: Resolution, series: str = "host.cpu.percent") -> dict[datetime, float]:
    rows = Sample.objects.filter(series=series, resolution=resolution).order_by("at")
    return {row.at: round(row.value, 6) for row in rows}


def test_five_minute_and_hourly_rows_are_the_means_of_their_raw_rows(rows: Rows) -> None:
    # Two hours of a minute each: the CPU's value is the minute of the hour; memory constant.
    rows("host.cpu.percent", start=T0, end=T0 + timedelta(hours=2), value=lambda at: float(at.minute))
    rows("host.mem.used_bytes", start=T0, end=T0 + timedelta(hours=2), value=lambda at: 8e9)
    written = samples_rollup(now=T0 + timedelta(hours=2) + SETTLE)
    assert written == {Resolution.FIVE_MINUTES: 2 * 24, Resolution.HOUR: 2 * 2}
    five = _rolled(Resolution.FIVE_MINUTES)
    assert len(five) == 24
    assert five[T0] == 2.0  # minutes 0..4
    assert five[T0 + minutes(55)] == 57.0
    assert five[T0 + timedelta(hours=1, minutes=5)] == 7.0
    assert _rolled(Resolution.HOUR) == {T0: 29.5, T0 + timedelta(hours=1): 29.5}
    assert set(_rolled(Resolution.HOUR, "host.mem.used_bytes").values()) == {8e9}


def test_a_gap_in_the_raw_rows_is_no_rolled_row_and_the_mean_is_of_the_rows_there(rows: Rows) -> None:
    # The worker was down from minute 12 to minute 30 of the hour.
    rows("host.load.1", start=T0, end=T0 + timedelta(hours=1), value=lambda at: None if 12 <= at.minute <= 30 else 4.0)
    samples_rollup(now=T0 + timedelta(hours=1) + SETTLE)
    five = _rolled(Resolution.FIVE_MINUTES, "host.load.1")
    assert T0 + minutes(15) not in five
    assert T0 + minutes(25) not in five
    assert five[T0 + minutes(10)] == 4.0  # 10:10 and 10:11 only
    assert _rolled(Resolution.HOUR, "host.load.1") == {T0: 4.0}


def test_running_a_rollup_again_writes_nothing_twice(rows: Rows) -> None:
    rows("host.cpu.percent", start=T0, end=T0 + timedelta(hours=1), value=lambda at: 10.0)
    now = T0 + timedelta(hours=1) + SETTLE
    samples_rollup(now=now)
    count = Sample.objects.count()
    assert samples_rollup(now=now) == {Resolution.FIVE_MINUTES: 0, Resolution.HOUR: 0}
    # The same buckets asked for outright: the unique key turns every row away.
    assert rollup_buckets(Resolution.FIVE_MINUTES, start=T0, end=T0 + timedelta(hours=1)) == 0
    assert rollup_buckets(Resolution.HOUR, start=T0, end=T0 + timedelta(hours=1)) == 0
    assert Sample.objects.count() == count
    tasks.samples_rollup_task()  # the beat task, on today's clock: these rows are old, nothing to do
    assert Sample.objects.count() == count


def test_only_buckets_settled_after_their_end_are_rolled_up(rows: Rows) -> None:
    rows("host.cpu.percent", start=T0, end=T0 + minutes(12), value=lambda at: 1.0)
    samples_rollup(now=T0 + minutes(10) + SETTLE - timedelta(seconds=1))
    assert list(_rolled(Resolution.FIVE_MINUTES)) == [T0]  # 10:05-10:10 may still get a sample
    assert _rolled(Resolution.HOUR) == {}
    samples_rollup(now=T0 + minutes(10) + SETTLE)
    assert list(_rolled(Resolution.FIVE_MINUTES)) == [T0, T0 + minutes(5)]


def test_a_worker_down_for_hours_catches_up_from_the_newest_rolled_bucket(rows: Rows) -> None:
    rows("host.cpu.percent", start=T0, end=T0 + minutes(30), value=lambda at: 5.0)
    samples_rollup(now=T0 + minutes(30) + SETTLE)
    assert len(_rolled(Resolution.FIVE_MINUTES)) == 6
    # Raw rows kept coming for five hours while the rollups did not run.
    rows("host.cpu.percent", start=T0 + minutes(30), end=T0 + timedelta(hours=5, minutes=30), value=lambda at: 7.0)
    written = samples_rollup(now=T0 + timedelta(hours=5, minutes=30) + SETTLE)
    assert written == {Resolution.FIVE_MINUTES: 60, Resolution.HOUR: 5}
    hourly = _rolled(Resolution.HOUR)
    assert hourly[T0] == 6.0
    assert set(list(hourly.values())[1:]) == {7.0}


def test_nothing_is_rolled_up_before_any_sample() -> None:
    assert samples_rollup(now=T0) == {Resolution.FIVE_MINUTES: 0, Resolution.HOUR: 0}


def test_pruning_drops_each_resolution_past_its_own_keeping(rows: Rows) -> None:
    now = T0 + timedelta(days=400)
    kept_for = {Resolution.RAW: timedelta(hours=48), Resolution.FIVE_MINUTES: timedelta(days=30)}
    kept_for[Resolution.HOUR] = timedelta(days=365)
    for resolution, keep in kept_for.items():
        for age in (keep + resolution.step, keep - resolution.step):
            Sample.objects.create(series="host.load.1", resolution=resolution, at=now - age, value=1.0)
    assert samples_prune(now=now) == 3
    left = Sample.objects.values_list("resolution", "at")
    assert sorted(left) == sorted((r, now - keep + r.step) for r, keep in kept_for.items())
    assert samples_prune(now=now) == 0
