"""Rows of the host's series, written as the worker and the rollups would, for the monitoring tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import pytest
from django.core.cache import cache

from monitoring.collect import CPU_READING_KEY
from monitoring.models import Resolution, Sample

Rows = Callable[..., list[Sample]]


def make_rows(
    series: str,
    *,
    start: datetime,
    end: datetime,
    resolution: Resolution = Resolution.RAW,
    value: Callable[[datetime], float | None] = lambda at: 1.0,
) -> list[Sample]:
    """One row of ``series`` per ``resolution`` step from ``start`` to before ``end``; where
    ``value`` gives None there is no row (a gap), in one insert."""
    rows = []
    at = start
    while at < end:
        figure = value(at)
        if figure is not None:
            rows.append(Sample(series=series, resolution=resolution, at=at, value=figure))
        at += resolution.step
    return Sample.objects.bulk_create(rows, batch_size=5000)


@pytest.fixture
def rows(db: None) -> Rows:
    return make_rows


@pytest.fixture
def no_cpu_reading() -> Iterable[None]:
    """Start without the previous run's CPU reading, and leave none behind."""
    cache.delete(CPU_READING_KEY)
    yield
    cache.delete(CPU_READING_KEY)


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)
