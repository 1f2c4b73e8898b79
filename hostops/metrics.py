"""The host's own figures from the kernel: CPU busy time, memory and swap, load, pressure stall
information and the use of a few filesystems. Plain files under /proc and statvfs, no command.

Each reader takes the /proc it should read (a worker in a container reads the host's at
HOST_PROC) and returns a dataclass; the parsers are pure functions of the files' text, so they
are tested on recorded text of other kernels. A source the kernel does not have (no
/proc/pressure before 4.20 or with psi=0, no swap, a path that is not there) comes back as None
or is left out, never as a zero that would read as "idle" or "empty"."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hostops.errors import HostOpsError

PRESSURE_RESOURCES = ("cpu", "memory", "io")


class MetricsUnreadable(HostOpsError):
    """A file under /proc that every Linux has could not be read or made no sense."""


# --- CPU --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuTimes:
    """All CPUs' time since boot, in clock ticks: busy (not idle, not waiting for I/O) and in
    all. One reading means nothing alone; the percent busy is the change between two."""

    busy: int
    total: int


def parse_cpu_times(text: str) -> CpuTimes:
    """The "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal [guest
    guest_nice]. Guest time is already counted in user and nice, so it is not added again."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            try:
                ticks = [int(value) for value in fields[1:9]]
            except ValueError as exc:
                raise MetricsUnreadable(f"/proc/stat: the cpu line is not numbers: {line!r}") from exc
            if len(ticks) < 4:
                raise MetricsUnreadable(f"/proc/stat: the cpu line is too short: {line!r}")
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            return CpuTimes(busy=sum(ticks) - idle, total=sum(ticks))
    raise MetricsUnreadable("/proc/stat has no cpu line")


def cpu_percent(before: CpuTimes, after: CpuTimes) -> float | None:
    """Percent of all CPUs busy between two readings; None when no time passed or the counters
    went back (a reboot between the readings)."""
    total = after.total - before.total
    busy = after.busy - before.busy
    if total <= 0 or busy < 0:
        return None
    return round(100.0 * busy / total, 2)


def read_cpu_times(proc_root: str = "/proc") -> CpuTimes:
    return parse_cpu_times(_read(proc_root, "stat"))


# --- memory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """Bytes. Used memory is what programs can't get back: total less MemAvailable (so the page
    cache does not count as used). ``swap_total`` 0: the host has no swap."""

    total: int
    available: int
    swap_total: int
    swap_free: int

    @property
    def used(self) -> int:
        return max(0, self.total - self.available)

    @property
    def swap_used(self) -> int | None:
        return max(0, self.swap_total - self.swap_free) if self.swap_total else None


def parse_meminfo(text: str) -> Memory:
    """/proc/meminfo's "Name:   123 kB" lines. MemAvailable exists since Linux 3.14."""
    kib: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            kib[name.strip()] = int(parts[0])
    missing = [name for name in ("MemTotal", "MemAvailable") if name not in kib]
    if missing:
        raise MetricsUnreadable(f"/proc/meminfo has no {' or '.join(missing)}")
    return Memory(
        total=kib["MemTotal"] * 1024,
        available=kib["MemAvailable"] * 1024,
        swap_total=kib.get("SwapTotal", 0) * 1024,
        swap_free=kib.get("SwapFree", 0) * 1024,
    )


def read_memory(proc_root: str = "/proc") -> Memory:
    return parse_meminfo(_read(proc_root, "meminfo"))


# --- load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """The run queue averaged over 1, 5 and 15 minutes, and the tasks running / in all now."""

    one: float
    five: float
    fifteen: float
    running: int
    tasks: int


def parse_loadavg(text: str) -> Load:
    """/proc/loadavg: "0.52 0.61 0.70 2/1234 56789"."""
    fields = text.split()
    try:
        running, tasks = fields[3].split("/")
        return Load(float(fields[0]), float(fields[1]), float(fields[2]), int(running), int(tasks))
    except (IndexError, ValueError) as exc:
        raise MetricsUnreadable(f"/proc/loadavg makes no sense: {text.strip()!r}") from exc


def read_load(proc_root: str = "/proc") -> Load:
    return parse_loadavg(_read(proc_root, "loadavg"))


# --- pressure stall information ---------------------------------------------------------


@dataclass(frozen=True)
class Pressure:
    """Percent of the last 10 seconds in which some task (``some``) or every non-idle task at
    once (``full``) waited for the resource. ``full`` is None where the file has no such line
    (cpu before Linux 5.13)."""

    some10: float
    full10: float | None


@dataclass(frozen=True)
class HostPressure:
    """Each resource's pressure; None where the kernel has no /proc/pressure (before 4.20, or
    booted with psi=0): not measured, which is not the same as no pressure."""

    cpu: Pressure | None
    memory: Pressure | None
    io: Pressure | None


def parse_pressure(text: str) -> Pressure:
    """A /proc/pressure/<resource> file: "some avg10=1.00 avg60=0.50 avg300=0.20 total=123"
    and, usually, a "full ..." line the same."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        pairs = dict(part.split("=", 1) for part in rest.split() if "=" in part)
        if kind in ("some", "full") and "avg10" in pairs:
            try:
                found[kind] = float(pairs["avg10"])
            except ValueError as exc:
                raise MetricsUnreadable(f"pressure: avg10 is not a number in {line!r}") from exc
    if "some" not in found:
        raise MetricsUnreadable(f"pressure: no some line in {text.strip()!r}")
    return Pressure(some10=found["some"], full10=found.get("full"))


def read_pressure(proc_root: str = "/proc") -> HostPressure:
    readings: dict[str, Pressure | None] = {}
    for resource in PRESSURE_RESOURCES:
        try:
            text = (Path(proc_root) / "pressure" / resource).read_text()
        except OSError:  # missing, or EOPNOTSUPP where the kernel has PSI built in but off
            readings[resource] = None
            continue
        readings[resource] = parse_pressure(text)
    return HostPressure(**readings)


# --- filesystems ------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskUsage:
    """One filesystem, found through a path on it, in bytes. ``used`` is what df shows as used
    (blocks not free); ``available`` is what an unprivileged writer may still use."""

    path: str
    device: int
    total: int
    used: int
    available: int


def read_disks(paths: list[str]) -> list[DiskUsage]:
    """The filesystem under each path, in the order given. A path that is not there is left
    out, and so is one on the same filesystem (device) as an earlier path, so a storage root
    that is only a folder on / is not counted twice."""
    found: list[DiskUsage] = []
    seen: set[int] = set()
    for path in paths:
        try:
            device = os.stat(path).st_dev
            stats = os.statvfs(path)
        except OSError:
            continue
        if device in seen or stats.f_blocks == 0:  # f_blocks 0: a pseudo filesystem (proc, sysfs)
            continue
        seen.add(device)
        size = stats.f_frsize
        found.append(
            DiskUsage(
                path=path,
                device=device,
                total=stats.f_blocks * size,
                used=(stats.f_blocks - stats.f_bfree) * size,
                available=stats.f_bavail * size,
            )
        )
    return found


def _read(proc_root: str, name: str) -> str:
    try:
        return (Path(proc_root) / name).read_text()
    except OSError as exc:
        raise MetricsUnreadable(f"{proc_root}/{name} could not be read: {exc.strerror or exc}") from exc
