"""The host's NVIDIA GPUs through NVML (the library nvidia-smi uses), and the inventory an
admin configures where no driver is present. ``pynvml`` (package nvidia-ml-py) is imported
inside the functions, so a host without it still imports this module."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from hostops.errors import NvmlUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str  # "" when unknown (a configured GPU without one)
    name: str
    memory_total: int | None  # bytes
    mig_mode: str = ""  # "enabled", "disabled", or "" where MIG is not supported


@dataclass(frozen=True)
class Inventory:
    driver_version: str
    gpus: list[GpuInfo] = field(default_factory=list)


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory: int | None  # bytes; None where NVML can't tell (Windows WDDM, some MIG setups)


@dataclass(frozen=True)
class GpuReading:
    """One moment of one GPU. A metric the GPU does not report is None, never 0."""

    index: int
    uuid: str
    utilization: int | None  # percent of the last sample period with a kernel running
    memory_used: int | None  # bytes
    temperature: int | None  # °C
    power_watts: int | None
    processes: list[GpuProcess] = field(default_factory=list)


# --- NVML --------------------------------------------------------------------------------


@contextmanager
def _nvml() -> Iterator[ModuleType]:
    """nvmlInit … nvmlShutdown around one read; every failure becomes NvmlUnavailable."""
    try:
        import pynvml  # lazily: only hosts with GPUs need the bindings
    except ImportError as exc:
        raise NvmlUnavailable("The NVML bindings are not installed (Python package nvidia-ml-py).") from exc
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(_explain(pynvml, exc)) from exc
    try:
        yield pynvml
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(_explain(pynvml, exc)) from exc
    finally:
        # The read is done; a failed shutdown changes nothing for the caller.
        with suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _explain(nv: ModuleType, exc: Exception) -> str:
    if isinstance(exc, nv.NVMLError_LibraryNotFound):
        return "No NVIDIA driver on this host: NVML's library (libnvidia-ml.so.1) was not found."
    if isinstance(exc, nv.NVMLError_DriverNotLoaded):
        return "The NVIDIA driver is installed but not loaded (nvidia-smi says the same); reboot or load the module."
    if isinstance(exc, nv.NVMLError_NoPermission):
        return "NVML refused access to the GPUs (no permission on /dev/nvidia*)."
    return f"NVML failed: {exc}."


def _text(value: str | bytes) -> str:
    """Older bindings return bytes, newer ones str."""
    return value.decode() if isinstance(value, bytes) else value


def _optional(nv: ModuleType, read: Callable[..., T], *args: Any) -> T | None:
    """A metric this GPU does not report (NotSupported) is None, not an error."""
    try:
        return read(*args)
    except nv.NVMLError_NotSupported:
        return None


def _mig_mode(nv: ModuleType, handle: Any) -> str:
    modes = _optional(nv, nv.nvmlDeviceGetMigMode, handle)
    if modes is None:
        return ""
    return "enabled" if modes[0] == nv.NVML_DEVICE_MIG_ENABLE else "disabled"


def read_inventory() -> Inventory:
    """The driver's version and every GPU NVML sees, in NVML's index order."""
    with _nvml() as nv:
        driver = _text(nv.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            memory = _optional(nv, nv.nvmlDeviceGetMemoryInfo, handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    uuid=_text(nv.nvmlDeviceGetUUID(handle)),
                    name=_text(nv.nvmlDeviceGetName(handle)),
                    memory_total=None if memory is None else int(memory.total),
                    mig_mode=_mig_mode(nv, handle),
                )
            )
    return Inventory(driver_version=driver, gpus=gpus)


def _processes(nv: ModuleType, handle: Any) -> list[GpuProcess]:
    """Compute and graphics processes, once per PID (a process may be both)."""
    found: dict[int, GpuProcess] = {}
    for read in (nv.nvmlDeviceGetComputeRunningProcesses, nv.nvmlDeviceGetGraphicsRunningProcesses):
        for proc in _optional(nv, read, handle) or []:
            used = getattr(proc, "usedGpuMemory", None)
            if proc.pid not in found or found[proc.pid].used_memory is None:
                found[int(proc.pid)] = GpuProcess(pid=int(proc.pid), used_memory=None if used is None else int(used))
    return list(found.values())


def _reading(nv: ModuleType, index: int) -> GpuReading:
    handle = nv.nvmlDeviceGetHandleByIndex(index)
    rates = _optional(nv, nv.nvmlDeviceGetUtilizationRates, handle)
    memory = _optional(nv, nv.nvmlDeviceGetMemoryInfo, handle)
    milliwatts = _optional(nv, nv.nvmlDeviceGetPowerUsage, handle)
    temperature = _optional(nv, nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
    return GpuReading(
        index=index,
        uuid=_text(nv.nvmlDeviceGetUUID(handle)),
        utilization=None if rates is None else int(rates.gpu),
        memory_used=None if memory is None else int(memory.used),
        temperature=None if temperature is None else int(temperature),
        power_watts=None if milliwatts is None else round(milliwatts / 1000),
        processes=_processes(nv, handle),
    )


def read_readings() -> list[GpuReading]:
    """What every GPU is doing now: utilisation, memory, temperature, power, processes."""
    with _nvml() as nv:
        return [_reading(nv, index) for index in range(nv.nvmlDeviceGetCount())]


# --- the configured inventory (GPU_INVENTORY) ----------------------------------------------

_INDEX = re.compile(r"\d{1,3}")
_SIZE = re.compile(r"(\d{1,9})\s*([KMGT])(?:i?B)?", re.IGNORECASE)
_UUID = re.compile(r"GPU-[0-9a-f-]+")
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _size(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a memory size (16G, 80GiB, 24576M)")
    return int(match[1]) * _UNITS[match[2].upper()]


def _config_entry(entry: str) -> GpuInfo:
    fields = [part.strip() for part in entry.split(":")]
    if len(fields) not in (3, 4):
        raise ValueError(f"GPU entry {entry!r} must be index:name:memory or index:name:memory:GPU-uuid")
    index, name, memory = fields[:3]
    uuid = fields[3] if len(fields) == 4 else ""
    if not _INDEX.fullmatch(index):
        raise ValueError(f"GPU entry {entry!r}: the index {index!r} must be a number such as 0")
    if not name or not name.isprintable() or len(name) > 100:
        raise ValueError(f"GPU entry {entry!r}: the name must be 1-100 printable characters")
    try:
        memory_total = _size(memory)
    except ValueError as exc:
        raise ValueError(f"GPU entry {entry!r}: {exc}") from exc
    if uuid and not _UUID.fullmatch(uuid):
        raise ValueError(f"GPU entry {entry!r}: {uuid!r} is not a GPU UUID (GPU-8a1e…, as nvidia-smi -L shows)")
    return GpuInfo(index=int(index), uuid=uuid, name=name, memory_total=memory_total)


def parse_inventory_config(text: str) -> list[GpuInfo]:
    """``"0:RTX 5080:16G, 1:RTX 5080:16G:GPU-8a1e…"`` (commas or semicolons between GPUs) ->
    GpuInfo per GPU. Raises ValueError naming the bad entry; an empty text is no GPUs."""
    if not text.strip():
        return []
    gpus = [_config_entry(entry) for entry in re.split(r"[,;]", text)]
    for attribute in ("index", "uuid"):
        values = [getattr(gpu, attribute) for gpu in gpus if getattr(gpu, attribute) != ""]
        duplicates = sorted({str(value) for value in values if values.count(value) > 1})
        if duplicates:
            raise ValueError(f"GPU {attribute} {', '.join(duplicates)} is given twice")
    return gpus


# --- which container a process belongs to ---------------------------------------------------

# A container's 64-hex id as a cgroup path segment: /docker/<id> (cgroup v1),
# docker-<id>.scope (systemd, cgroup v2), cri-containerd-<id>.scope, /kubepods/…/<id>. With a
# private cgroup namespace the path starts with /../.., which this matches the same way.
_CONTAINER = re.compile(r"(?:^|/)(?:docker-|cri-containerd-|crio-|libpod-)?([0-9a-f]{64})(?:\.scope)?(?=/|$)")


def container_of_pid(pid: int, proc_root: str | Path = "/proc") -> str | None:
    """The id of the container the process runs in, from ``<proc_root>/<pid>/cgroup``; the
    outermost one when containers nest (the one the host's engine knows). None for a host
    process, or when the file can't be read (the process ended, another PID namespace)."""
    if pid <= 0:
        return None
    try:
        text = (Path(proc_root) / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        match = _CONTAINER.search(path)
        if match:
            return match[1]
    return None
