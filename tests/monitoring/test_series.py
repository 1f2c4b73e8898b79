"""Reading a series over a span on real PostgreSQL: the resolution and bucket each span gets, at
most 300 points for a year of data, gaps as None, the newest minutes from raw rows where the
rollups have not reached, and the gpus app's samples bucketed the same way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from gpus.models import GPU, GpuSample
from monitoring.bins import floor
from monitoring.models import Resolution
from monitoring.series import MAX_POINTS, SPANS, Window, gpu_read, series_read, series_rows, window_for
from portal.models import Host
from tests.monitoring.conftest import Rows, minutes

NOW = floor(timezone.now(), timedelta(minutes=1)) + timedelta(seconds=20)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("span", "resolution", "width"),
    [
        ("6h", Resolution.RAW, minutes(2)),
        ("48h", Resolution.FIVE_MINUTES, minutes(10)),
        ("30d", Resolution.HOUR, 3 * HOUR),
        ("1y", Resolution.HOUR, 48 * HOUR),
    ],
)
def test_each_span_reads_the_coarsest_kept_resolution_in_buckets_under_the_cap(
    span: str, resolution: Resolution, width: timedelta
) -> None:
    window = window_for(SPANS[span], now=NOW)
    assert (window.resolution, window.width) == (resolution, width)
    assert window.count <= MAX_POINTS
    assert window.start <= NOW - SPANS[span].length
    assert window.end > NOW
    assert window.count == len(window.buckets())


def _year_of(rows: Rows, series: str) -> None:
    """What a year of minute samples leaves after the rollups and pruning: hourly rows for a
    year, 5-minute rows for 30 days, raw rows for 48 hours."""
    end = floor(NOW, Resolution.RAW.step)
    for resolution, keep in ((Resolution.HOUR, 365), (Resolution.FIVE_MINUTES, 30)):
        start = floor(NOW - timedelta(days=keep), resolution.step)
        rows(series, start=start, end=floor(NOW, resolution.step), resolution=resolution, value=lambda at: 40.0)
    rows(series, start=end - timedelta(hours=48), end=end + minutes(1), value=lambda at: 40.0)


@pytest.mark.django_db
@pytest.mark.parametrize("span", list(SPANS))
def test_a_year_of_data_never_sends_more_than_300_points(rows: Rows, span: str) -> None:
    _year_of(rows, "host.cpu.percent")
    window = window_for(SPANS[span], now=NOW)
    found = series_rows(window, ["host."])
    assert len(found) <= MAX_POINTS
    # The whole span is covered, to its last bucket: only the ragged first one may be empty.
    assert len(found) >= window.count - 1
    assert {round(value, 6) for _series, _bucket, value in found} == {40.0}
    assert len(series_read(window, ["host."])["host.cpu.percent"]) == window.count


@pytest.mark.django_db
def test_a_bucket_without_rows_is_none_not_zero(rows: Rows) -> None:
    start = NOW - timedelta(hours=6)
    rows(
        "host.load.1",
        start=floor(start, minutes(1)),
        end=NOW,
        value=lambda at: None if NOW - 3 * HOUR <= at < NOW - 2 * HOUR else 2.0,
    )
    window = window_for(SPANS["6h"], now=NOW)
    values = series_read(window, ["host."])["host.load.1"]
    gap = [i for i, value in enumerate(values) if value is None]
    assert 29 <= len(gap) <= 31  # an hour of 2-minute buckets, and maybe the ragged first one
    assert 0.0 not in values
    assert {value for value in values if value is not None} == {2.0}


@pytest.mark.django_db
def test_the_minutes_the_rollups_have_not_reached_come_from_raw_rows_weighted_by_their_time(rows: Rows) -> None:
    now = floor(NOW, 3 * HOUR) + timedelta(hours=2, minutes=10, seconds=20)
    window = window_for(SPANS["30d"], now=now)  # hourly rows in 3-hour buckets
    last = window.buckets()[-1]
    # Hourly rows up to the last bucket's first hour only; raw rows after it, another value.
    rows("host.cpu.percent", start=window.start, end=last + HOUR, resolution=Resolution.HOUR, value=lambda at: 10.0)
    rows("host.cpu.percent", start=last + HOUR, end=now, value=lambda at: 70.0)
    values = series_read(window, ["host."])["host.cpu.percent"]
    raw_minutes = 71  # 1 hour 10 minutes of them, and the minute now is in
    expected = (10.0 * 60 + 70.0 * raw_minutes) / (60 + raw_minutes)
    assert values[-1] == pytest.approx(expected)
    assert values[-2] == pytest.approx(10.0)


@pytest.mark.django_db
def test_a_fresh_install_without_rollups_reads_every_span_from_raw_rows(rows: Rows) -> None:
    rows("disk.root.used_bytes", start=NOW - HOUR, end=NOW + minutes(1), value=lambda at: 5e11)  # one at NOW
    for span in SPANS.values():
        values = series_read(window_for(span, now=NOW), ["disk."])["disk.root.used_bytes"]
        assert values[-1] == pytest.approx(5e11)


@pytest.mark.django_db
def test_only_the_series_asked_for_are_read(rows: Rows) -> None:
    for series in ("host.cpu.percent", "disk.root.used_bytes", "other.thing"):
        rows(series, start=NOW - HOUR, end=NOW)
    assert set(series_read(window_for(SPANS["6h"], now=NOW), ["host.", "disk."])) == {
        "host.cpu.percent",
        "disk.root.used_bytes",
    }


@pytest.mark.django_db
def test_gpu_samples_are_bucketed_per_gpu_the_same_way() -> None:
    host = Host.local()
    gpus = [GPU.objects.create(host=host, index=i, name="RTX 5080", memory_bytes=16 * 1024**3) for i in range(2)]
    start = floor(NOW - HOUR, minutes(2))
    GpuSample.objects.bulk_create(
        GpuSample(gpu=gpu, at=start + minutes(m), utilization=20 * (gpu.index + 1) + m % 2, memory_used=1024**3)
        for gpu in gpus
        for m in range(60)
        if not (gpu.index == 1 and m >= 30)  # GPU 1's samples stop half-way
    )
    window: Window = window_for(SPANS["6h"], now=NOW)
    lines = gpu_read(window)
    first = window.index(start)
    assert first is not None
    assert lines[gpus[0].pk].utilization[first : first + 30] == [20.5] * 30
    assert lines[gpus[1].pk].utilization[first : first + 15] == [40.5] * 15
    assert lines[gpus[1].pk].utilization[first + 15 : first + 30] == [None] * 15
    assert lines[gpus[0].pk].memory_used[first] == 1024**3
    assert lines[gpus[0].pk].utilization[first - 1] is None
