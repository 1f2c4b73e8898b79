"""Members' use from their workspaces' series (monitoring/workspace_stats.py) and the GPU
booking's accounting: each member's CPU and memory over a window, summed over their
workspaces, for the admins' Server health page; and one workspace's own figures as sparklines,
for the member's workspace card. A fixed number of queries whatever the span or the team."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gpus import accounting
from monitoring.charts import GIB, Chart, Values
from monitoring.series import Window, series_read
from portal.env import format_size
from workspaces.models import Workspace

_SUMMED = (".cpu.percent", ".mem.used_bytes")
REMOVED = "removed workspaces"  # rows of a workspace deleted since: its owner is not known


def _add(total: Values, values: Values) -> None:
    for i, value in enumerate(values):
        if value is not None:
            total[i] = (total[i] or 0.0) + value


def _mean(values: Values) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


@dataclass
class MemberUse:
    """One member over the window: per bucket CPU (100 = one core) and memory (bytes), summed
    over their workspaces, and GPU-hours from the booking's accounting."""

    name: str
    member_id: int | None
    cpu: Values
    memory: Values
    gpu_used: float | None = None  # GPU-hours with a process on a GPU (None: not measured)
    gpu_booked: float = 0.0

    @property
    def cpu_mean(self) -> float | None:
        return _mean(self.cpu)

    @property
    def memory_peak(self) -> float | None:
        present = [value for value in self.memory if value is not None]
        return max(present) if present else None


@dataclass
class MembersUse:
    members: list[MemberUse] = field(default_factory=list)
    charts: dict[str, Chart] = field(default_factory=dict)
    gpus_measured: bool = False


def _owners(read: dict[str, Values]) -> dict[int, tuple[int, str]]:
    """Workspace id -> (owner id, username) for the workspaces the series name."""
    ids = {int(series.split(".")[1]) for series in read}
    if not ids:
        return {}
    rows = Workspace.objects.filter(pk__in=ids).values_list("pk", "owner_id", "owner__username")
    return {pk: (owner, username) for pk, owner, username in rows}


def members_use(window: Window, read: dict[str, Values], *, gpus_measured: bool) -> MembersUse:
    """Each member's CPU and memory over ``window`` from the page's series (``read``, holding
    the ``ws.`` ones), one query for the workspaces' owners, and their GPU-hours over it (the
    accounting's own queries, none without a member)."""
    read = {name: values for name, values in read.items() if name.startswith("ws.") and name.endswith(_SUMMED)}
    owners = _owners(read)
    by_name: dict[str, MemberUse] = {}
    for series, values in sorted(read.items()):
        workspace_id = int(series.split(".")[1])
        owner_id, username = owners.get(workspace_id, (None, REMOVED))
        use = by_name.setdefault(username, MemberUse(username, owner_id, [None] * window.count, [None] * window.count))
        _add(use.cpu if series.endswith(".cpu.percent") else use.memory, values)
    result = MembersUse(members=sorted(by_name.values(), key=lambda use: (use.member_id is None, use.name)))
    ids = [use.member_id for use in result.members if use.member_id is not None]
    result.gpus_measured = gpus_measured
    for member_id, (figures,) in accounting.usage(ids, [(window.start, window.end)]).items():
        use = next(use for use in result.members if use.member_id == member_id)
        use.gpu_used, use.gpu_booked = figures.used, figures.booked
    if result.members:
        cpu = Chart("member_cpu", axes={"y": {"title": "% of one core"}})
        memory = Chart("member_mem", axes={"y": {"title": "GiB"}})
        for use in result.members:
            cpu.add(use.name, [None if v is None else round(v, 1) for v in use.cpu])
            memory.add(use.name, [None if v is None else round(v / GIB, 2) for v in use.memory])
        result.charts = {"member_cpu": cpu, "member_mem": memory}
    return result


@dataclass(frozen=True)
class Sparkline:
    """One figure of a workspace over the window as an SVG path, its newest value and the top
    of its scale, worded ("12%", "1.5G", "40K/s")."""

    label: str
    path: str
    now: str
    top: str


def _worded(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "%":
        return f"{value:.0f}%"
    return format_size(int(value)) + ("/s" if unit == "/s" else "")


WIDTH, HEIGHT = 240, 36


def spark_path(values: Values, top: float) -> str:
    """An SVG path over WIDTH x HEIGHT: a line through the values, broken at each gap."""
    if not values or top <= 0:
        return ""
    step = WIDTH / max(1, len(values) - 1)
    parts: list[str] = []
    pen_down = False
    for i, value in enumerate(values):
        if value is None:
            pen_down = False
            continue
        y = HEIGHT - min(value, top) / top * (HEIGHT - 2) - 1
        parts.append(f"{'L' if pen_down else 'M'}{i * step:.1f} {y:.1f}")
        pen_down = True
    return " ".join(parts)


def _latest(values: Values) -> float | None:
    return next((value for value in reversed(values) if value is not None), None)


def workspace_sparklines(workspace: Workspace, window: Window) -> list[Sparkline]:
    """CPU, memory and network of one workspace over ``window``; empty without any figure.
    One query."""
    read = series_read(window, (f"ws.{workspace.pk}.",))
    if not read:
        return []
    none: Values = [None] * window.count
    prefix = f"ws.{workspace.pk}."
    cpu, memory = read.get(f"{prefix}cpu.percent", none), read.get(f"{prefix}mem.used_bytes", none)
    limit = _latest(read.get(f"{prefix}mem.limit_bytes", none)) or max((v for v in memory if v), default=0.0)
    rx, tx = read.get(f"{prefix}net.rx_bytes", none), read.get(f"{prefix}net.tx_bytes", none)
    net = [None if a is None and b is None else (a or 0.0) + (b or 0.0) for a, b in zip(rx, tx, strict=True)]
    cpu_top = 100.0 * max(1, math.ceil(max((v or 0.0 for v in cpu), default=0.0) / 100))  # whole cores
    lines = [
        Sparkline("CPU", spark_path(cpu, cpu_top), _worded(_latest(cpu), "%"), _worded(cpu_top, "%")),
        Sparkline("Memory", spark_path(memory, limit), _worded(_latest(memory), "B"), _worded(limit, "B")),
    ]
    if any(value is not None for value in net):
        top = max(1024.0, *(v or 0.0 for v in net))
        lines.append(Sparkline("Network", spark_path(net, top), _worded(_latest(net), "/s"), _worded(top, "/s")))
    return lines
