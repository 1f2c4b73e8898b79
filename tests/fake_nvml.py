"""A stand-in for the ``pynvml`` module (there is no NVIDIA driver here or in CI), installed
into sys.modules at the edge. It answers like nvidia-ml-py 13: the same function names, the
same error classes (NVMLError subclasses chosen by code), NotSupported where a GPU does not
report a metric. The machines below carry what NVML reports on an RTX 5080 workstation
(no MIG) and an H200/H100 server (MIG supported, disabled)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

NOT_SUPPORTED = "not supported"  # a metric value that makes the fake raise NVMLError_NotSupported

NVML_SUCCESS, NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NO_PERMISSION = 0, 3, 4
NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_LIBRARY_NOT_FOUND, NVML_ERROR_UNKNOWN = 9, 12, 999
_MESSAGES = {
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """As in pynvml: NVMLError(code) builds the subclass for that code."""

    _classes: dict[int, type[NVMLError]] = {}

    def __new__(cls, value: int) -> NVMLError:
        return Exception.__new__(NVMLError._classes.get(value, cls))

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


def _error_class(name: str, code: int) -> type[NVMLError]:
    cls = type(name, (NVMLError,), {})
    NVMLError._classes[code] = cls
    return cls


NVMLError_NotSupported = _error_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_DriverNotLoaded = _error_class("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_Unknown = _error_class("NVMLError_Unknown", NVML_ERROR_UNKNOWN)


@dataclass
class FakeProcess:  # pynvml's c_nvmlProcessInfo_t as the bindings hand it out
    pid: int
    usedGpuMemory: int | None  # NVML's own field name


@dataclass
class FakeGpu:
    uuid: str
    name: str
    memory_total: int
    memory_used: Any = 0
    mig: Any = NOT_SUPPORTED  # (current, pending) or NOT_SUPPORTED
    utilization: Any = 0
    temperature: Any = 30
    power_mw: Any = NOT_SUPPORTED
    compute: list[FakeProcess] = field(default_factory=list)
    graphics: list[FakeProcess] = field(default_factory=list)


@dataclass
class FakeMachine:
    driver_version: str
    gpus: list[FakeGpu]
    init_error: int | None = None  # an NVML error code nvmlInit raises
    read_error: int | None = None  # an NVML error code nvmlDeviceGetCount raises
    calls: list[str] = field(default_factory=list)


MIB = 1024 * 1024

# nvidia-smi on an RTX 5080 workstation, driver 570: 16303 MiB, no MIG, a PyTorch job and Xorg.
RTX_5080_UUID = "GPU-8a1e3c52-7f0b-4d1e-9c39-2b6f5d0e4a17"


def rtx_5080_workstation() -> FakeMachine:
    return FakeMachine(
        driver_version="570.133.07",
        gpus=[
            FakeGpu(
                uuid=RTX_5080_UUID,
                name="NVIDIA GeForce RTX 5080",
                memory_total=16303 * MIB,
                memory_used=14210 * MIB,
                utilization=97,
                temperature=71,
                power_mw=301425,
                compute=[FakeProcess(pid=48213, usedGpuMemory=13862 * MIB)],
                # Xorg, and the job again (a CUDA/GL interop process is listed in both).
                graphics=[FakeProcess(pid=2112, usedGpuMemory=4 * MIB), FakeProcess(pid=48213, usedGpuMemory=None)],
            )
        ],
    )


# An HGX server, driver 575: an H200 (143771 MiB) and an H100 80GB (81559 MiB), MIG disabled;
# the H200's board reports no power reading through this NVML (NotSupported).
H200_UUID = "GPU-3f6c1b2e-5d4a-4e8f-a1b0-7c9d2e3f4a5b"
H100_UUID = "GPU-c0ffee12-3456-4789-abcd-ef0123456789"


def hgx_server() -> FakeMachine:
    return FakeMachine(
        driver_version="575.57.08",
        gpus=[
            FakeGpu(
                uuid=H200_UUID,
                name="NVIDIA H200",
                memory_total=143771 * MIB,
                memory_used=81200 * MIB,
                mig=(0, 0),
                utilization=64,
                temperature=48,
                power_mw=NOT_SUPPORTED,
                compute=[FakeProcess(pid=51007, usedGpuMemory=80640 * MIB)],
            ),
            FakeGpu(
                uuid=H100_UUID,
                name="NVIDIA H100 80GB HBM3",
                memory_total=81559 * MIB,
                memory_used=1 * MIB,
                mig=(0, 0),
                utilization=0,
                temperature=33,
                power_mw=71870,
            ),
        ],
    )


class _Memory:
    def __init__(self, total: int, used: int) -> None:
        self.total, self.used, self.free = total, used, total - used


class _Rates:
    def __init__(self, gpu: int) -> None:
        self.gpu, self.memory = gpu, 0


def build_module(machine: FakeMachine) -> types.ModuleType:
    """A module with pynvml's names, answering from ``machine``."""
    nv = types.ModuleType("pynvml")
    state = {"initialized": False}

    def check(value: Any) -> Any:
        if not state["initialized"]:
            raise NVMLError(1)  # NVML_ERROR_UNINITIALIZED
        if value == NOT_SUPPORTED:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return value

    def init() -> None:
        machine.calls.append("init")
        if machine.init_error is not None:
            raise NVMLError(machine.init_error)
        state["initialized"] = True

    def shutdown() -> None:
        machine.calls.append("shutdown")
        state["initialized"] = False

    def count() -> int:
        if machine.read_error is not None:
            raise NVMLError(machine.read_error)
        return check(len(machine.gpus))

    def memory(gpu: FakeGpu) -> _Memory:
        return _Memory(gpu.memory_total, check(gpu.memory_used))

    def temperature(gpu: FakeGpu, sensor: int) -> int:
        assert sensor == nv.NVML_TEMPERATURE_GPU
        return check(gpu.temperature)

    nv.__dict__.update(
        NVMLError=NVMLError,
        NVMLError_NotSupported=NVMLError_NotSupported,
        NVMLError_NoPermission=NVMLError_NoPermission,
        NVMLError_DriverNotLoaded=NVMLError_DriverNotLoaded,
        NVMLError_LibraryNotFound=NVMLError_LibraryNotFound,
        NVML_TEMPERATURE_GPU=0,
        NVML_DEVICE_MIG_DISABLE=0,
        NVML_DEVICE_MIG_ENABLE=1,
        nvmlInit=init,
        nvmlShutdown=shutdown,
        nvmlSystemGetDriverVersion=lambda: check(machine.driver_version),
        nvmlDeviceGetCount=count,
        nvmlDeviceGetHandleByIndex=lambda index: check(machine.gpus[index]),
        nvmlDeviceGetUUID=lambda gpu: check(gpu.uuid),
        nvmlDeviceGetName=lambda gpu: check(gpu.name),
        nvmlDeviceGetMemoryInfo=memory,
        nvmlDeviceGetMigMode=lambda gpu: list(check(gpu.mig)),
        nvmlDeviceGetUtilizationRates=lambda gpu: _Rates(check(gpu.utilization)),
        nvmlDeviceGetTemperature=temperature,
        nvmlDeviceGetPowerUsage=lambda gpu: check(gpu.power_mw),
        nvmlDeviceGetComputeRunningProcesses=lambda gpu: check(gpu.compute),
        nvmlDeviceGetGraphicsRunningProcesses=lambda gpu: check(gpu.graphics),
    )
    return nv


def install(monkeypatch: pytest.MonkeyPatch, machine: FakeMachine) -> FakeMachine:
    """Make ``import pynvml`` return the fake for this test."""
    monkeypatch.setitem(sys.modules, "pynvml", build_module(machine))
    return machine
