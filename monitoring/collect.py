"""One sample of the host a minute: CPU, memory and swap, load, pressure and the filesystems of
MONITORING_DISK_PATHS, read through hostops.metrics; the error counters of each BTRFS
filesystem among them and the storage root's (hostops.btrfs); the disks' SMART health
(hostops.smart), all written as raw Sample rows in one insert. Runs on the worker of the host
it measures (Host.local()'s queue), reading the host's /proc at HOST_PROC.

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

from hostops import btrfs, metrics, smart
from hostops.btrfs_parse import DeviceStats
from hostops.errors import HostOpsError
from hostops.metrics import CpuTimes, MetricsUnreadable
from monitoring.disk_alerts import smart_alerts
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


BTRFS_COUNTERS = ("write_io_errs", "read_io_errs", "flush_io_errs", "corruption_errs", "generation_errs")


def btrfs_figures(word: str, devices: list[DeviceStats]) -> dict[str, float]:
    """``btrfs.<word>.errors``, the sum over the filesystem's devices of all five counters, and
    each counter summed over the devices (``btrfs.<word>.corruption_errs``)."""
    figures = {f"btrfs.{word}.errors": float(sum(device.errors for device in devices))}
    for counter in BTRFS_COUNTERS:
        figures[f"btrfs.{word}.{counter}"] = float(sum(getattr(device, counter) for device in devices))
    return figures


def _btrfs(paths: list[str]) -> dict[str, float]:
    """Device error counters of each BTRFS filesystem among ``paths``, once per mount, named
    by the first path on it. A path that is not there or not BTRFS is no row."""
    figures: dict[str, float] = {}
    seen: set[str] = set()
    for path in paths:
        try:
            if not btrfs.is_btrfs(path):
                continue
            mount = btrfs.mount_point_of(path)
            if mount in seen:
                continue
            seen.add(mount)
            figures.update(btrfs_figures(disk_name(path), btrfs.device_stats(mount)))
        except HostOpsError as exc:
            logger.warning("host sample: no BTRFS error counters of %s: %s", path, exc)
    return figures


def smart_figures(reading: smart.SmartReading, word: str) -> dict[str, float]:
    """``smart.<disk>.failed`` (1.0 when the disk's verdict is FAILING, 0.0 when it passed),
    its temperature and the counters it reports."""
    figures: dict[str, float] = {}
    if reading.passed is not None:
        figures[f"smart.{word}.failed"] = 0.0 if reading.passed else 1.0
    for field in ("temperature_c", "reallocated_sectors", "pending_sectors", "media_errors", "percentage_used"):
        value = getattr(reading, field)
        if value is not None:
            figures[f"smart.{word}.{field}"] = float(value)
    return figures


def smart_devices() -> list[smart.SmartDevice]:
    """MONITORING_SMART_DEVICES, or what ``smartctl --scan`` finds when it is empty."""
    configured = settings.MONITORING_SMART_DEVICES
    if configured == ["off"]:
        return []
    if configured:
        return [smart.SmartDevice(name) for name in configured]
    return smart.scan()


def _smart() -> dict[str, float]:
    """Each disk's SMART figures; a disk without SMART (a loop or virtual disk) or asleep is no
    row, and no smartctl at all is no row either."""
    figures: dict[str, float] = {}
    try:
        devices = smart_devices()
    except HostOpsError as exc:
        logger.warning("host sample: smartctl --scan: %s", exc)
        return figures
    for device in devices:
        try:
            reading = smart.read_health(device)
        except HostOpsError as exc:
            logger.warning("host sample: no SMART reading of %s: %s", device.name, exc)
            continue
        if reading is not None:
            figures.update(smart_figures(reading, device.word))
    return figures


def host_figures(
    *, proc_root: str | None = None, disk_paths: list[str] | None = None, disks_health: bool = True
) -> dict[str, float]:
    """Every figure the host has now, by series name. A reader that fails is logged and its
    figures left out; the others are still written. ``disks_health``: the BTRFS counters and
    SMART too."""
    proc = proc_root or str(settings.HOST_PROC)
    paths = list(settings.MONITORING_DISK_PATHS) if disk_paths is None else disk_paths
    figures: dict[str, float] = {}
    for reader in (_cpu, _memory, _load, _pressure):
        try:
            figures.update(reader(proc))
        except MetricsUnreadable as exc:
            logger.warning("host sample: %s", exc)
    figures.update(_disks(paths))
    if disks_health:
        figures.update(_btrfs([*paths, settings.STORAGE_ROOT]))
        figures.update(_smart())
    return figures


def host_sample(
    *,
    now: datetime | None = None,
    proc_root: str | None = None,
    disk_paths: list[str] | None = None,
    disks_health: bool = True,
) -> list[Sample]:
    """Read the host and write its figures as raw rows stamped ``now``, in one insert. A second
    run in the same instant writes nothing (the rows' unique key)."""
    at = now or timezone.now()
    rows = []
    figures = host_figures(proc_root=proc_root, disk_paths=disk_paths, disks_health=disks_health)
    # The local host by its name (Host.local), so the count stays one query.
    running = Workspace.objects.filter(host__name="local", state=Workspace.State.RUNNING).count()
    figures[RUNNING_SERIES] = float(running)
    for series, value in figures.items():
        problem = series_problem(series)
        if problem:  # only a programming error gets here: names come from this module
            raise ValueError(problem)
        rows.append(Sample(series=series, at=at, value=value))
    smart_alerts(figures, at=at)
    Sample.objects.bulk_create(rows, ignore_conflicts=True)
    return rows
