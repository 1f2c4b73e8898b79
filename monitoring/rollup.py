"""Rollups and pruning of the host's samples, every 5 minutes (monitoring.tasks).

A rollup averages the raw rows of each finished bucket into one row per series: 5-minute rows
(kept 30 days) and hourly rows (kept a year), both from the raw rows (kept 48 hours). It starts
after the newest bucket it already wrote, so a worker that was down catches up on its next
run; and the rows' unique key with ON CONFLICT DO NOTHING makes any bucket written twice, by a
rerun or two workers at once, a single row. A bucket is rolled up only once SETTLE has passed
after its end, so a sample being written as the bucket closes is in it."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Avg, Max, Min, Q
from django.utils import timezone

from monitoring.bins import Bin, floor
from monitoring.models import KEEP, Resolution, Sample

SETTLE = timedelta(seconds=90)
ROLLED = (Resolution.FIVE_MINUTES, Resolution.HOUR)


def rollup_buckets(resolution: Resolution, *, start: datetime, end: datetime) -> int:
    """Write the mean of the raw rows of each series in each bucket from ``start`` to ``end``
    (both bucket boundaries); returns how many rows were new."""
    rows = (
        Sample.objects.filter(resolution=Resolution.RAW, at__gte=start, at__lt=end)
        .annotate(bucket=Bin("at", resolution.step))
        .values("series", "bucket")
        .annotate(mean=Avg("value"))
        .values_list("series", "bucket", "mean")
    )
    rolled = [Sample(series=series, resolution=resolution, at=bucket, value=mean) for series, bucket, mean in rows]
    if not rolled:
        return 0
    written = Sample.objects.filter(resolution=resolution, at__gte=start, at__lt=end)
    before = written.count()
    Sample.objects.bulk_create(rolled, ignore_conflicts=True, batch_size=2000)
    return written.count() - before


def _pending(resolution: Resolution, *, now: datetime) -> tuple[datetime, datetime] | None:
    """The buckets still to roll up: after the newest written one (or from the oldest raw row),
    no further back than raw rows are kept, up to the last settled bucket."""
    step = resolution.step
    end = floor(now - SETTLE, step)
    newest = Sample.objects.filter(resolution=resolution).aggregate(at=Max("at"))["at"]
    if newest is not None:
        start = newest + step
    else:
        oldest = Sample.objects.filter(resolution=Resolution.RAW).aggregate(at=Min("at"))["at"]
        if oldest is None:
            return None
        start = floor(oldest, step)
    start = max(start, floor(now - KEEP[Resolution.RAW], step))
    return (start, end) if start < end else None


def samples_rollup(*, now: datetime | None = None) -> dict[Resolution, int]:
    """Roll every pending bucket of each resolution up; how many rows each got."""
    moment = now or timezone.now()
    written: dict[Resolution, int] = {}
    for resolution in ROLLED:
        pending = _pending(resolution, now=moment)
        written[resolution] = rollup_buckets(resolution, start=pending[0], end=pending[1]) if pending else 0
    return written


def samples_prune(*, now: datetime | None = None) -> int:
    """Delete each resolution's rows older than it is kept; returns how many."""
    moment = now or timezone.now()
    old = Q()
    for resolution, keep in KEEP.items():
        old |= Q(resolution=resolution, at__lt=moment - keep)
    deleted, _ = Sample.objects.filter(old).delete()
    return deleted
