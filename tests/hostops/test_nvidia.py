"""NVML reads through a stand-in pynvml (no driver here), the configured inventory, and the
container a GPU process belongs to from recorded cgroup files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hostops import nvidia
from hostops.errors import NvmlUnavailable
from hostops.nvidia import GpuInfo, GpuProcess
from tests import cgroups, fake_nvml
from tests.fake_nvml import MIB

# --- inventory ---------------------------------------------------------------------------


def test_it_reads_the_inventory_of_an_rtx_5080_without_mig(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = fake_nvml.install(monkeypatch, fake_nvml.rtx_5080_workstation())
    inventory = nvidia.read_inventory()
    assert inventory.driver_version == "570.133.07"
    assert inventory.gpus == [
        GpuInfo(
            index=0, uuid=fake_nvml.RTX_5080_UUID, name="NVIDIA GeForce RTX 5080", memory_total=16303 * MIB, mig_mode=""
        )
    ]
    assert machine.calls == ["init", "shutdown"]


def test_it_reads_mig_disabled_on_an_hgx_server(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml.install(monkeypatch, fake_nvml.hgx_server())
    gpus = nvidia.read_inventory().gpus
    assert [(g.index, g.name, g.memory_total, g.mig_mode) for g in gpus] == [
        (0, "NVIDIA H200", 143771 * MIB, "disabled"),
        (1, "NVIDIA H100 80GB HBM3", 81559 * MIB, "disabled"),
    ]
    assert [g.uuid for g in gpus] == [fake_nvml.H200_UUID, fake_nvml.H100_UUID]


def test_it_reports_mig_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = fake_nvml.hgx_server()
    machine.gpus[1].mig = (1, 1)
    fake_nvml.install(monkeypatch, machine)
    assert [g.mig_mode for g in nvidia.read_inventory().gpus] == ["disabled", "enabled"]


def test_bytes_from_older_bindings_are_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = fake_nvml.rtx_5080_workstation()
    machine.driver_version = b"550.54.14"  # type: ignore[assignment]
    machine.gpus[0].name = b"NVIDIA GeForce RTX 5080"  # type: ignore[assignment]
    fake_nvml.install(monkeypatch, machine)
    inventory = nvidia.read_inventory()
    assert (inventory.driver_version, inventory.gpus[0].name) == ("550.54.14", "NVIDIA GeForce RTX 5080")


# --- readings ----------------------------------------------------------------------------


def test_it_reads_use_power_and_processes_once_per_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = fake_nvml.install(monkeypatch, fake_nvml.rtx_5080_workstation())
    (reading,) = nvidia.read_readings()
    assert (reading.index, reading.uuid) == (0, fake_nvml.RTX_5080_UUID)
    assert (reading.utilization, reading.memory_used, reading.temperature) == (97, 14210 * MIB, 71)
    assert reading.power_watts == 301  # 301425 mW
    # The job is both a compute and a graphics process: listed once, with its memory.
    assert reading.processes == [
        GpuProcess(pid=48213, used_memory=13862 * MIB),
        GpuProcess(pid=2112, used_memory=4 * MIB),
    ]
    assert machine.calls == ["init", "shutdown"]


def test_a_metric_the_gpu_does_not_report_is_none_not_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml.install(monkeypatch, fake_nvml.hgx_server())
    h200, h100 = nvidia.read_readings()
    assert h200.power_watts is None
    assert (h200.utilization, h200.temperature, h200.processes) == (64, 48, [GpuProcess(51007, 80640 * MIB)])
    assert (h100.power_watts, h100.utilization, h100.processes) == (72, 0, [])


def test_unsupported_utilisation_and_process_lists_are_none_and_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = fake_nvml.hgx_server()
    gpu = machine.gpus[0]
    gpu.mig, gpu.utilization, gpu.temperature = (1, 1), fake_nvml.NOT_SUPPORTED, fake_nvml.NOT_SUPPORTED
    gpu.compute = gpu.graphics = fake_nvml.NOT_SUPPORTED  # type: ignore[assignment]
    fake_nvml.install(monkeypatch, machine)
    reading = nvidia.read_readings()[0]
    assert (reading.utilization, reading.temperature, reading.processes) == (None, None, [])
    assert reading.memory_used == 81200 * MIB


# --- no driver -----------------------------------------------------------------------------


def test_the_real_bindings_without_a_driver_say_so() -> None:
    """This machine has nvidia-ml-py but no driver: the real pynvml, no stand-in."""
    with pytest.raises(NvmlUnavailable, match=r"No NVIDIA driver on this host.*libnvidia-ml\.so\.1"):
        nvidia.read_inventory()
    with pytest.raises(NvmlUnavailable, match="No NVIDIA driver"):
        nvidia.read_readings()


def test_missing_bindings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with pytest.raises(NvmlUnavailable, match="nvidia-ml-py"):
        nvidia.read_inventory()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED, "driver is installed but not loaded"),
        (fake_nvml.NVML_ERROR_NO_PERMISSION, "refused access"),
        (fake_nvml.NVML_ERROR_UNKNOWN, "NVML failed: Unknown Error."),
    ],
)
def test_an_init_failure_is_a_readable_error(monkeypatch: pytest.MonkeyPatch, code: int, message: str) -> None:
    machine = fake_nvml.rtx_5080_workstation()
    machine.init_error = code
    fake_nvml.install(monkeypatch, machine)
    with pytest.raises(NvmlUnavailable, match=message):
        nvidia.read_inventory()
    assert machine.calls == ["init"]  # nothing to shut down


def test_a_failure_mid_read_still_shuts_nvml_down(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = fake_nvml.hgx_server()
    machine.read_error = fake_nvml.NVML_ERROR_UNKNOWN  # the GPU fell off the bus
    fake_nvml.install(monkeypatch, machine)
    with pytest.raises(NvmlUnavailable, match="Unknown Error"):
        nvidia.read_readings()
    assert machine.calls == ["init", "shutdown"]


# --- the configured inventory ----------------------------------------------------------------


def test_a_configured_gpu_needs_index_name_and_memory() -> None:
    assert nvidia.parse_inventory_config("0:RTX 5080:16G") == [
        GpuInfo(index=0, uuid="", name="RTX 5080", memory_total=16 * 1024**3)
    ]


def test_several_gpus_with_either_separator_units_and_uuids() -> None:
    gpus = nvidia.parse_inventory_config(
        f" 0:NVIDIA H200:141GiB:{fake_nvml.H200_UUID} ; 1 : H100 : 80GiB ,2:RTX 4090:24576M"
    )
    assert [(g.index, g.name, g.memory_total, g.uuid) for g in gpus] == [
        (0, "NVIDIA H200", 141 * 1024**3, fake_nvml.H200_UUID),
        (1, "H100", 80 * 1024**3, ""),
        (2, "RTX 4090", 24576 * MIB, ""),
    ]


def test_an_empty_inventory_is_no_gpus() -> None:
    assert nvidia.parse_inventory_config("  ") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RTX 5080:16G", r"'RTX 5080:16G' must be index:name:memory"),
        ("0:RTX 5080:16G:GPU-abc:extra", "must be index:name:memory"),
        ("x:RTX 5080:16G", r"the index 'x' must be a number"),
        ("-1:RTX 5080:16G", "the index '-1' must be a number"),
        ("0::16G", "the name must be 1-100 printable characters"),
        ("0:RTX\x1b[31m:16G", "printable"),
        ("0:RTX 5080:16", r"'16' is not a memory size"),
        ("0:RTX 5080:lots", "is not a memory size"),
        ("0:RTX 5080:16G:8a1e3c52", r"'8a1e3c52' is not a GPU UUID"),
        ("0:RTX 5080:16G:GPU-8A1E;", "is not a GPU UUID"),
        ("0:RTX 5080:16G,", r"GPU entry '' must be index:name:memory"),
        ("0:A:16G;0:B:16G", "GPU index 0 is given twice"),
        (f"0:A:16G:{fake_nvml.H200_UUID},1:B:16G:{fake_nvml.H200_UUID}", "GPU uuid GPU-3f6c.* is given twice"),
    ],
)
def test_a_bad_configured_inventory_is_refused_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nvidia.parse_inventory_config(text)


# --- the container of a GPU process ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "container"),
    [
        (cgroups.V2_DOCKER, cgroups.CONTAINER_A),
        (cgroups.V1_DOCKER, cgroups.CONTAINER_B),
        (cgroups.V2_PRIVATE_NAMESPACE, cgroups.CONTAINER_A),
        (cgroups.V2_NESTED, cgroups.CONTAINER_A),
        (cgroups.KUBEPODS_V1, cgroups.CONTAINER_B),
        (cgroups.CONTAINERD_V2, cgroups.CONTAINER_A),
        (cgroups.HOST_SESSION_V2, None),
        (cgroups.HOST_SERVICE_V1, None),
        ("", None),
    ],
)
def test_it_finds_the_container_of_a_process(tmp_path: Path, text: str, container: str | None) -> None:
    proc = cgroups.write_proc(tmp_path, {4242: text})
    assert nvidia.container_of_pid(4242, proc_root=proc) == container


def test_a_process_that_is_gone_or_unreadable_has_no_container(tmp_path: Path) -> None:
    proc = cgroups.write_proc(tmp_path, {7: cgroups.V2_DOCKER})
    (proc / "8" / "cgroup").mkdir(parents=True)  # unreadable as a file, even for root
    assert nvidia.container_of_pid(7, proc_root=proc) == cgroups.CONTAINER_A
    assert nvidia.container_of_pid(8, proc_root=proc) is None
    assert nvidia.container_of_pid(4242, proc_root=proc) is None  # no such pid
    assert nvidia.container_of_pid(0, proc_root=proc) is None
