"""One sample of the host a minute: CPU, memory and swap, load, pressure and the filesystems of
MONITORING_DISK_PATHS, read through hostops.metrics and written as raw Sample rows in one
insert. Runs on the worker of the host it measures (Host.local()'s queue), reading the host's
/proc at HOST_PROC.

The CPU's percent busy is the change since the previous run's reading, which is kept in the
cache (Redis) between runs, so no run sleeps to measure. The first run, or one after more than
CPU_READING_TTL without a reading, stores its reading and writes no CPU figure. A figure the
host doesn't have (no swap, no /proc/pressure, a path not mounted) is no row.

With them goes "workspaces.running", how many workspaces the portal has running on the host:
its hourly averages are the workspace-hours the Cost page counts (monitoring/costs.py)."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from hostops import metrics
from hostops.metrics import CpuTimes, MetricsUnreadable
from monitoring.models import Sample, series_problem
from workspaces.models import Workspace

logger = logging.getLogger(__name__)

CPU_READING_KEY = "monitoring:host-cpu-times"
# A reading older than this makes a percent over too long a stretch to stamp on one minute.
CPU_READING_TTL = 600
RUNNING_SERIES = "workspaces.running"


def disk_name(path: str) -> str:
    """The series word of a filesystem's path: "/" is "root", "/srv/data" is "srv_data"."""
    word = re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
    return word[:40] or "root"


def _cpu(proc_root: str) -> dict[str, float]:
    current = metrics.read_cpu_times(proc_root)
    previous = cache.get(CPU_READING_KEY)
    cache.set(CPU_READING_KEY, [current.busy, current.total], timeout=CPU_READING_TTL)
    if not previous:
        return {}
    percent = metrics.cpu_percent(CpuTimes(*previous), current)
    return {} if percent is None else {"host.cpu.percent": percent}


def _memory(proc_root: str) -> dict[str, float]:
    memory = metrics.read_memory(proc_root)
    figures = {"host.mem.used_bytes": float(memory.used), "host.mem.total_bytes": float(memory.total)}
    if memory.swap_used is not None:
        figures.update({"host.swap.used_bytes": float(memory.swap_used), "host.swap.total_bytes": memory.swap_total})
    return figures


def _load(proc_root: str) -> dict[str, float]:
    load = metrics.read_load(proc_root)
    return {"host.load.1": load.one, "host.load.5": load.five, "host.load.15": load.fifteen}


def _pressure(proc_root: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    pressure = metrics.read_pressure(proc_root)
    for resource in metrics.PRESSURE_RESOURCES:
        reading = getattr(pressure, resource)
        if reading is None:
            continue
        figures[f"host.psi.{resource}.some10"] = reading.some10
        if reading.full10 is not None and resource != "cpu":  # cpu's full line is always 0 outside cgroups
            figures[f"host.psi.{resource}.full10"] = reading.full10
    return figures


def _disks(paths: list[str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for disk in metrics.read_disks(paths):
        name = disk_name(disk.path)
        if f"disk.{name}.used_bytes" in figures:
            continue  # two paths with the same word ("/a-b", "/a_b"): the first one is kept
        figures[f"disk.{name}.used_bytes"] = float(disk.used)
        figures[f"disk.{name}.total_bytes"] = float(disk.total)
    return figures


def host_figures(*, proc_root: str | None = None, disk_paths: list[str] | None = None) -> dict[str, float]:
    """Every figure the host has now, by series name. A reader that fails is logged and its
    figures left out; the others are still written."""
    proc = proc_root or str(settings.HOST_PROC)
    paths = list(settings.MONITORING_DISK_PATHS) if disk_paths is None else disk_paths
    figures: dict[str, float] = {}
    for reader in (_cpu, _memory, _load, _pressure):
        try:
            figures.update(reader(proc))
        except MetricsUnreadable as exc:
            logger.warning("host sample: %s", exc)
    figures.update(_disks(paths))
    return figures


def host_sample(
    *, now: datetime | None = None, proc_root: str | None = None, disk_paths: list[str] | None = None
) -> list[Sample]:
    """Read the host and write its figures as raw rows stamped ``now``, in one insert. A second
    run in the same instant writes nothing (the rows' unique key)."""
    at = now or timezone.now()
    rows = []
    figures = host_figures(proc_root=proc_root, disk_paths=disk_paths)
    # The local host by its name (Host.local), so the count stays one query.
    running = Workspace.objects.filter(host__name="local", state=Workspace.State.RUNNING).count()
    figures[RUNNING_SERIES] = float(running)
    for series, value in figures.items():
        problem = series_problem(series)
        if problem:  # only a programming error gets here: names come from this module
            raise ValueError(problem)
        rows.append(Sample(series=series, at=at, value=value))
    Sample.objects.bulk_create(rows, ignore_conflicts=True)
    return rows
