"""The retention planner (pure Python, no database).

* retention planner on 10,000 snapshots: ``backups.retention.plan`` on one group of 10,000
  hourly snapshots carrying Europe/Berlin's zone (across two DST changes, the slow case: each
  instant needs a zone lookup), with a policy using every kind of rule and a few pins; p50/p95
  over 50 runs. Baseline: sorting the same snapshots by instant, the least any planner does.
"""

from __future__ import annotations

import gc
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from backups.retention import Policy, Snapshot, plan

SNAPSHOTS = 10_000
RUNS = 50


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def retention_planner() -> list[dict[str, Any]]:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    snapshots = [
        Snapshot(
            id=f"{i:05d}",
            time=(start + timedelta(hours=i)).astimezone(berlin),
            pinned=i % 2500 == 0,
            pin_reason="bench",
        )
        for i in range(SNAPSHOTS)
    ]
    policy = Policy(
        keep_last=5,
        keep_hourly=24,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=12,
        keep_yearly=-1,
        keep_within="2d",
        keep_within_daily="30d",
    )
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    planned, bare = [], []
    kept = 0
    for _ in range(RUNS):
        gc.collect()
        t0 = time.perf_counter()
        result = plan(snapshots, policy)
        planned.append(time.perf_counter() - t0)
        kept = len(result.keep_ids)
        gc.collect()
        t0 = time.perf_counter()
        sorted(snapshots, key=lambda s: s.time - epoch, reverse=True)
        bare.append(time.perf_counter() - t0)
    p95, base = _p95(planned), _p95(bare)
    return [
        {
            "name": f"retention planner on {SNAPSHOTS:,} snapshots p95",
            "value": round(p95 * 1000, 1),
            "unit": "ms",
            "target": "<= 100 ms",
            "baseline": (
                f"p50 {statistics.median(planned) * 1000:.1f} ms; bare sort by instant p95 {base * 1000:.1f} ms "
                f"(x{p95 / base:.1f}); {kept} kept"
            ),
        }
    ]


def benchmarks() -> list[dict[str, Any]]:
    return retention_planner()
