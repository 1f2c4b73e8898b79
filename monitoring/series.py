"""Reading series for a chart over a span of time (6 hours to a year), never more than
MAX_POINTS points a series, bucketed in the database.

A span gets the narrowest bucket width that keeps it under MAX_POINTS, and reads the coarsest
resolution that is no wider than a bucket and kept for the whole span: 6 hours read raw rows in
2-minute buckets, 48 hours the 5-minute averages in 10-minute buckets, 30 days and a year the
hourly averages in 3-hour and 2-day buckets. Whatever the rollups have not reached yet (the
last minutes, or longer while the worker is down) is read from the raw rows, so every span ends
now. Each row counts for the time it stands for (a raw row a minute, an hourly row sixty), so a
bucket that mixes them is still the mean over its time.

A bucket with no row at all comes back as None: the chart shows a gap, not a zero."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Avg, F, FloatField, Max, Q, Sum
from django.db.models.functions import Cast

from gpus.models import GpuSample
from monitoring.bins import Bin, floor
from monitoring.models import Resolution, Sample

MAX_POINTS = 300
WIDTHS = [timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30)] + [
    timedelta(hours=h) for h in (1, 2, 3, 6, 12, 24, 48, 72, 168)
]


@dataclass(frozen=True)
class Span:
    key: str
    label: str
    length: timedelta


SPANS = {
    span.key: span
    for span in (
        Span("6h", "6 hours", timedelta(hours=6)),
        Span("48h", "48 hours", timedelta(hours=48)),
        Span("30d", "30 days", timedelta(days=30)),
        Span("1y", "365 days", timedelta(days=365)),
    )
}
DEFAULT_SPAN = "48h"


def bucket_width(length: timedelta) -> timedelta:
    """The narrowest width that cuts ``length`` into fewer than MAX_POINTS buckets (one more
    bucket holds the span's ragged start)."""
    for width in WIDTHS:
        if length / width < MAX_POINTS:
            return width
    raise ValueError(f"{length} is longer than the charts go")


def source_resolution(length: timedelta, width: timedelta) -> Resolution:
    """The coarsest resolution no wider than a bucket whose rows are kept for the whole span."""
    for resolution in sorted(Resolution, key=lambda r: r.value, reverse=True):
        if resolution.step <= width and resolution.keep >= length:
            return resolution
    return Resolution.RAW


@dataclass(frozen=True)
class Window:
    """The buckets of one chart: from ``start`` (the bucket holding now - span) to ``end``
    (the end of the bucket holding now), ``width`` each, read from ``resolution``."""

    span: Span
    start: datetime
    end: datetime
    width: timedelta
    resolution: Resolution

    @property
    def width_label(self) -> str:
        """ "2 minutes", "3 hours", "2 days": how long one point of the chart stands for."""
        minutes = int(self.width.total_seconds() // 60)
        for unit, size in (("day", 1440), ("hour", 60), ("minute", 1)):
            if minutes % size == 0:
                count = minutes // size
                return f"{count} {unit}{'s' if count != 1 else ''}"
        return str(self.width)

    @property
    def count(self) -> int:
        return (self.end - self.start) // self.width

    def buckets(self) -> list[datetime]:
        return [self.start + i * self.width for i in range(self.count)]

    def index(self, bucket: datetime) -> int | None:
        position = (bucket - self.start) // self.width
        return position if 0 <= position < self.count else None


def window_for(span: Span, *, now: datetime) -> Window:
    width = bucket_width(span.length)
    end = floor(now, width) + width
    return Window(span, floor(now - span.length, width), end, width, source_resolution(span.length, width))


def _rolled_until(window: Window) -> datetime:
    """Where the window's resolution stops and raw rows take over: after its newest row."""
    if window.resolution == Resolution.RAW:
        return window.end
    newest = Sample.objects.filter(resolution=window.resolution, at__gte=window.start).aggregate(newest=Max("at"))
    return window.start if newest["newest"] is None else newest["newest"] + window.resolution.step


def series_rows(window: Window, prefixes: Iterable[str]) -> list[tuple[str, datetime, float]]:
    """(series, bucket start, mean) for every series starting with one of ``prefixes``, only
    buckets that have rows: at most window.count rows a series, from one query (and one more
    for where the rollups stand)."""
    until = _rolled_until(window)
    named = Q()
    for prefix in prefixes:
        named |= Q(series__startswith=prefix)
    rolled = Q(resolution=window.resolution, at__gte=window.start, at__lt=until)
    raw = Q(resolution=Resolution.RAW, at__gte=max(until, window.start), at__lt=window.end)
    rows = (
        Sample.objects.filter(named, rolled | raw)
        .annotate(bucket=Bin("at", window.width))
        .values("series", "bucket")
        .annotate(weighted=Sum(F("value") * Cast("resolution", FloatField())), weight=Sum("resolution"))
        .values_list("series", "bucket", "weighted", "weight")
    )
    return [(series, bucket, weighted / weight) for series, bucket, weighted, weight in rows if weight]


def series_read(window: Window, prefixes: Iterable[str]) -> dict[str, list[float | None]]:
    """Each series found, as one value (or None) per bucket of the window, in order."""
    found: dict[str, list[float | None]] = {}
    for series, bucket, value in series_rows(window, prefixes):
        position = window.index(bucket)
        if position is not None:
            found.setdefault(series, [None] * window.count)[position] = value
    return found


@dataclass(frozen=True)
class GpuLine:
    """One GPU over the window, a bucket's means: utilisation (percent), memory used (bytes),
    temperature (°C) and power (W); the last two are None where NVML did not give them."""

    gpu_id: int
    utilization: list[float | None]
    memory_used: list[float | None]
    temperature: list[float | None]
    power: list[float | None]


def gpu_read(window: Window) -> dict[int, GpuLine]:
    """The gpus app's minute samples (it keeps them GPU_SAMPLE_DAYS), bucketed the same way,
    per GPU id. One query."""
    rows = (
        GpuSample.objects.filter(at__gte=window.start, at__lt=window.end)
        .annotate(bucket=Bin("at", window.width))
        .values("gpu_id", "bucket")
        .annotate(
            utilization=Avg("utilization"),
            memory=Avg("memory_used"),
            temperature=Avg("temperature"),
            power=Avg("power_watts"),
        )
        .values_list("gpu_id", "bucket", "utilization", "memory", "temperature", "power")
        .order_by()
    )
    lines: dict[int, GpuLine] = {}
    for gpu_id, bucket, utilization, memory, temperature, power in rows:
        position = window.index(bucket)
        if position is None:
            continue
        if gpu_id not in lines:
            empty: list[list[float | None]] = [[None] * window.count for _ in range(4)]
            lines[gpu_id] = GpuLine(gpu_id, *empty)
        line = lines[gpu_id]
        line.utilization[position] = float(utilization)
        line.memory_used[position] = float(memory)
        line.temperature[position] = None if temperature is None else float(temperature)
        line.power[position] = None if power is None else float(power)
    return lines
