"""Members' workspaces as series: the workspaces app reads each running container's stats once
a minute on its host's worker (workspaces/activity.py, for the idle policy) and hands the same
reading here (WORKSPACE_STATS_RECEIVERS), so the engine is asked once.

Series, by workspace id: ``ws.<id>.cpu.percent`` (100 = one core, from the engine's own
precpu interval), ``ws.<id>.mem.used_bytes`` (page cache excluded), ``ws.<id>.mem.limit_bytes``,
and ``ws.<id>.net.rx_bytes`` / ``tx_bytes``, which are rates in bytes per second: the engine
gives counters since the container started, and the rate is the change since the previous
minute's counters, kept in the cache. The first reading, one after a restart (counters went
back) or after more than NET_READING_TTL has no network row. Rows of a removed workspace age
out with every other series (monitoring.rollup.samples_prune)."""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache

from hostops.types import ContainerStats
from monitoring.models import Sample, series_problem

NET_READING_TTL = 600  # seconds: an older reading makes a rate over too long a stretch


def _net_key(workspace_id: int) -> str:
    return f"monitoring:ws-net:{workspace_id}"


def _rates(readings: dict[int, ContainerStats], at: datetime) -> dict[int, tuple[float, float]]:
    """Bytes per second received and sent since the previous reading, per workspace that has one."""
    previous = cache.get_many([_net_key(pk) for pk in readings])
    now = at.timestamp()
    cache.set_many(
        {_net_key(pk): (now, s.net_rx_bytes, s.net_tx_bytes) for pk, s in readings.items()}, timeout=NET_READING_TTL
    )
    rates = {}
    for pk, sample in readings.items():
        before = previous.get(_net_key(pk))
        if not before:
            continue
        elapsed, rx, tx = now - before[0], sample.net_rx_bytes - before[1], sample.net_tx_bytes - before[2]
        if 0 < elapsed <= NET_READING_TTL and rx >= 0 and tx >= 0:
            rates[pk] = (rx / elapsed, tx / elapsed)
    return rates


def workspace_figures_of(readings: dict[int, ContainerStats], at: datetime) -> dict[str, float]:
    """Every figure of the reading by series name."""
    figures: dict[str, float] = {}
    for pk, sample in readings.items():
        figures[f"ws.{pk}.cpu.percent"] = round(sample.cpu_percent, 2)
        figures[f"ws.{pk}.mem.used_bytes"] = float(sample.mem_used)
        if sample.mem_limit:
            figures[f"ws.{pk}.mem.limit_bytes"] = float(sample.mem_limit)
    for pk, (rx, tx) in _rates(readings, at).items():
        figures[f"ws.{pk}.net.rx_bytes"] = round(rx, 1)
        figures[f"ws.{pk}.net.tx_bytes"] = round(tx, 1)
    return figures


def workspace_stats_record(*, readings: dict[int, ContainerStats], at: datetime) -> list[Sample]:
    """Write the reading as raw rows stamped ``at``, in one insert (a second run in the same
    instant writes nothing: the rows' unique key)."""
    rows = []
    for series, value in workspace_figures_of(readings, at).items():
        problem = series_problem(series)
        if problem:  # names come from this module: only a programming error gets here
            raise ValueError(problem)
        rows.append(Sample(series=series, at=at, value=value))
    Sample.objects.bulk_create(rows, ignore_conflicts=True)
    return rows
