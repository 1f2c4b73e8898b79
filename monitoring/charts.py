"""What the Server health page draws: the window's series shaped into Chart.js line charts
(labels, and datasets with their axis and colour), and the host's latest figures. Bucket means
only: a bucket with no rows stays None, which Chart.js draws as a gap."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from gpus.models import GPU
from monitoring.collect import disk_name
from monitoring.models import Resolution, Sample
from monitoring.series import Window, gpu_read
from portal.env import format_size

GIB = 1024**3
FRESH = timedelta(minutes=10)  # a latest figure older than this is not "now"
COLOURS = ["#2f6fde", "#d6452a", "#1d7a46", "#8e44ad", "#d69a14", "#1b8a9a", "#6b7280", "#b5337a"]
PRESSURE = [
    ("host.psi.cpu.some10", "CPU, some"),
    ("host.psi.memory.some10", "Memory, some"),
    ("host.psi.memory.full10", "Memory, full"),
    ("host.psi.io.some10", "I/O, some"),
    ("host.psi.io.full10", "I/O, full"),
]
Values = list[float | None]


@dataclass
class Chart:
    """One canvas: its datasets (label, data, colour, axis, dashed) and axes (title, max)."""

    key: str
    datasets: list[dict[str, Any]] = field(default_factory=list)
    axes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, label: str, data: Values, *, axis: str = "y", dashed: bool = False) -> None:
        colour = COLOURS[len(self.datasets) % len(COLOURS)]
        self.datasets.append({"label": label, "data": data, "colour": colour, "axis": axis, "dashed": dashed})

    @property
    def empty(self) -> bool:
        return not any(value is not None for dataset in self.datasets for value in dataset["data"])


def _scaled(values: Values, divisor: float, digits: int = 2) -> Values:
    return [None if value is None else round(value / divisor, digits) for value in values]


def _percent(used: Values, total: Values) -> Values:
    return [None if u is None or not t else round(100 * u / t, 2) for u, t in zip(used, total, strict=True)]


def _label(moment: datetime, window: Window) -> str:
    """Short enough for five ticks under a half-width chart; the tooltip shows it too."""
    local = timezone.localtime(moment)
    if window.width >= timedelta(days=1):
        return f"{local:%d %b %y}"
    if window.span.length <= timedelta(hours=6):
        return f"{local:%H:%M}"
    return f"{local:%a %H:%M}" if window.span.length <= timedelta(days=2) else f"{local:%d %b %H:%M}"


def disk_paths() -> dict[str, str]:
    """Each configured path by its series word, to label a filesystem by its path."""
    return {disk_name(path): path for path in reversed(settings.MONITORING_DISK_PATHS)}


def host_charts(window: Window, read: dict[str, Values]) -> dict[str, Chart]:
    """The CPU, memory, pressure and disk charts from the window's series."""
    none: Values = [None] * window.count

    def get(name: str) -> Values:
        return read.get(name, none)

    cpu = Chart("cpu", axes={"y": {"title": "% busy", "max": 100}, "y2": {"title": "load"}})
    cpu.add("CPU busy (%)", _scaled(get("host.cpu.percent"), 1, 1))
    cpu.add("Load, 1 min", _scaled(get("host.load.1"), 1), axis="y2")
    memory = Chart("memory", axes={"y": {"title": "GiB"}})
    memory.add("Memory used", _scaled(get("host.mem.used_bytes"), GIB))
    if "host.swap.used_bytes" in read:
        memory.add("Swap used", _scaled(get("host.swap.used_bytes"), GIB))
    memory.add("Memory installed", _scaled(get("host.mem.total_bytes"), GIB), dashed=True)
    pressure = Chart("pressure", axes={"y": {"title": "% of time stalled"}})
    for name, label in PRESSURE:
        if name in read:
            pressure.add(label, _scaled(get(name), 1))
    disks = Chart("disks", axes={"y": {"title": "% used", "max": 100}})
    paths = disk_paths()
    for name in sorted(series for series in read if series.startswith("disk.") and series.endswith(".used_bytes")):
        word = name.split(".")[1]
        disks.add(paths.get(word, word), _percent(get(name), get(f"disk.{word}.total_bytes")))
    return {chart.key: chart for chart in (cpu, memory, pressure, disks)}


def gpu_charts(window: Window) -> dict[str, Chart] | None:
    """Utilisation and memory of each GPU from the gpus app's samples; None without any."""
    lines = gpu_read(window)
    if not lines:
        return None
    gpus = GPU.objects.filter(pk__in=lines).select_related("host").order_by("host__name", "index")
    utilization = Chart("gpu_util", axes={"y": {"title": "% utilisation", "max": 100}})
    memory = Chart("gpu_mem", axes={"y": {"title": "GiB"}})
    temperature = Chart("gpu_temp", axes={"y": {"title": "°C"}})
    power = Chart("gpu_power", axes={"y": {"title": "W"}})
    for gpu in gpus:
        label = f"GPU {gpu.index} ({gpu.name})" if gpu.host.name == "local" else f"{gpu.host.name} GPU {gpu.index}"
        line = lines[gpu.pk]
        utilization.add(label, _scaled(line.utilization, 1, 1))
        memory.add(label, _scaled(line.memory_used, GIB))
        temperature.add(label, _scaled(line.temperature, 1, 1))
        power.add(label, _scaled(line.power, 1, 1))
    return {"gpu_util": utilization, "gpu_mem": memory, "gpu_temp": temperature, "gpu_power": power}


def chart_data(window: Window, charts: dict[str, Chart]) -> dict[str, Any]:
    """What monitoring/overview.js reads from the page (json_script)."""
    return {
        "labels": [_label(bucket, window) for bucket in window.buckets()],
        "charts": {key: {"datasets": chart.datasets, "axes": chart.axes} for key, chart in charts.items()},
    }


@dataclass(frozen=True)
class Latest:
    at: datetime | None
    figures: list[tuple[str, str]]


def latest(*, now: datetime) -> Latest:
    """The host's newest raw figures, worded ("CPU", "12 %"), if any came in the last FRESH."""
    host = Q()
    for prefix in ("host.", "disk.", "btrfs.", "smart."):  # the host's own, not the workspaces'
        host |= Q(series__startswith=prefix)
    rows = list(Sample.objects.filter(host, resolution=Resolution.RAW, at__gte=now - FRESH).order_by("at"))
    if not rows:
        return Latest(None, [])
    value = {row.series: row.value for row in rows}
    figures: list[tuple[str, str]] = []
    if "host.cpu.percent" in value:
        figures.append(("CPU busy", f"{value['host.cpu.percent']:.0f} %"))
    if "host.load.1" in value:
        figures.append(("Load", " / ".join(f"{value.get(f'host.load.{m}', 0):.2f}" for m in (1, 5, 15))))
    if "host.mem.used_bytes" in value:
        total = format_size(int(value.get("host.mem.total_bytes", 0))) or "?"
        figures.append(("Memory", f"{format_size(int(value['host.mem.used_bytes']))} of {total}"))
    figures.append(_swap(value))
    paths = disk_paths()
    for name in sorted(series for series in value if series.startswith("disk.") and series.endswith(".used_bytes")):
        word = name.split(".")[1]
        total_bytes = value.get(f"disk.{word}.total_bytes") or 0
        share = f"{100 * value[name] / total_bytes:.0f} % of {format_size(int(total_bytes))}" if total_bytes else "?"
        figures.append((paths.get(word, word), share))
    figures += disk_health(value)
    return Latest(rows[-1].at, figures)


def disk_health(value: dict[str, float]) -> list[tuple[str, str]]:
    """Each BTRFS filesystem's device errors and each disk's SMART verdict, worded."""
    figures: list[tuple[str, str]] = []
    paths = disk_paths()
    for name in sorted(series for series in value if series.startswith("btrfs.") and series.endswith(".errors")):
        word, errors = name.split(".")[1], int(value[name])
        worded = "no errors" if errors == 0 else f"{errors} error{'s' if errors != 1 else ''} (btrfs device stats)"
        figures.append((f"BTRFS {paths.get(word, word)}", worded))
    for name in sorted(series for series in value if series.startswith("smart.") and series.endswith(".failed")):
        disk = name.split(".")[1]
        verdict = "FAILING" if value[name] else "passed"
        temperature = value.get(f"smart.{disk}.temperature_c")
        reallocated = value.get(f"smart.{disk}.reallocated_sectors")
        words = [verdict]
        if temperature is not None:
            words.append(f"{temperature:.0f} °C")
        if reallocated:
            words.append(f"{reallocated:.0f} reallocated sectors")
        figures.append((f"SMART {disk}", ", ".join(words)))
    return figures


def _swap(value: dict[str, float]) -> tuple[str, str]:
    if "host.swap.used_bytes" not in value:
        return ("Swap", "none")
    total = format_size(int(value.get("host.swap.total_bytes", 0)))
    return ("Swap", f"{format_size(int(value['host.swap.used_bytes']))} of {total}")
