"""hostops.metrics: the parsers on text recorded from real kernels (a 6.x with pressure, a
4.19 without /proc/pressure, one with swap), and the readers on this machine's own /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostops import metrics
from hostops.metrics import CpuTimes, MetricsUnreadable
from tests.hostops.proc_recorded import (
    LOADAVG,
    MEMINFO_NO_SWAP,
    MEMINFO_SWAP,
    PSI_CPU_5_4,
    PSI_MEMORY,
    STAT_6_8,
    STAT_OLD,
)


def test_cpu_times_count_everything_but_idle_and_iowait_as_busy() -> None:
    times = metrics.parse_cpu_times(STAT_6_8)
    assert times == CpuTimes(
        busy=4705196 + 2174 + 1236720 + 44270, total=4705196 + 2174 + 1236720 + 113385471 + 81931 + 44270
    )


def test_cpu_times_of_an_old_kernel_without_steal_or_guest() -> None:
    assert metrics.parse_cpu_times(STAT_OLD) == CpuTimes(busy=1500, total=10000)


def test_the_percent_busy_is_the_change_between_two_readings() -> None:
    before, after = CpuTimes(busy=1000, total=10000), CpuTimes(busy=1250, total=11000)
    assert metrics.cpu_percent(before, after) == 25.0


def test_no_percent_when_no_time_passed_or_the_counters_went_back_at_a_reboot() -> None:
    reading = CpuTimes(busy=1000, total=10000)
    assert metrics.cpu_percent(reading, reading) is None
    assert metrics.cpu_percent(reading, CpuTimes(busy=10, total=200)) is None


@pytest.mark.parametrize("text", ["intr 1 2 3\n", "cpu  12 x 4 5\n", "cpu  1 2\n", ""])
def test_a_stat_file_without_a_sensible_cpu_line_is_refused_in_words(text: str) -> None:
    with pytest.raises(MetricsUnreadable, match="/proc/stat"):
        metrics.parse_cpu_times(text)


def test_memory_used_is_total_less_available_and_no_swap_is_none_not_zero() -> None:
    memory = metrics.parse_meminfo(MEMINFO_NO_SWAP)
    assert memory.total == 24683568 * 1024
    assert memory.used == (24683568 - 23693112) * 1024
    assert memory.swap_total == 0
    assert memory.swap_used is None


def test_swap_used_is_total_less_free() -> None:
    memory = metrics.parse_meminfo(MEMINFO_SWAP)
    assert memory.swap_used == (52428796 - 41943036) * 1024
    assert memory.used == (263842132 - 104857600) * 1024


def test_a_meminfo_without_memavailable_is_refused() -> None:
    with pytest.raises(MetricsUnreadable, match="MemAvailable"):
        metrics.parse_meminfo("MemTotal:  1024 kB\nMemFree:  512 kB\n")


def test_load_averages_and_tasks() -> None:
    load = metrics.parse_loadavg(LOADAVG)
    assert (load.one, load.five, load.fifteen, load.running, load.tasks) == (12.47, 9.80, 7.02, 14, 2311)
    with pytest.raises(MetricsUnreadable, match="loadavg"):
        metrics.parse_loadavg("12.47 9.80\n")


def test_pressure_reads_the_ten_second_averages() -> None:
    assert metrics.parse_pressure(PSI_MEMORY) == metrics.Pressure(some10=3.21, full10=1.05)


def test_cpu_pressure_of_a_kernel_before_5_13_has_no_full_line() -> None:
    assert metrics.parse_pressure(PSI_CPU_5_4) == metrics.Pressure(some10=27.35, full10=None)


def test_a_kernel_without_proc_pressure_reads_as_not_measured_never_zero(tmp_path: Path) -> None:
    """A 4.19 kernel's /proc: stat, meminfo and loadavg, and no pressure folder at all."""
    (tmp_path / "stat").write_text(STAT_6_8)
    (tmp_path / "meminfo").write_text(MEMINFO_SWAP)
    (tmp_path / "loadavg").write_text(LOADAVG)
    assert metrics.read_pressure(str(tmp_path)) == metrics.HostPressure(cpu=None, memory=None, io=None)
    assert metrics.read_memory(str(tmp_path)).swap_used is not None
    assert metrics.read_load(str(tmp_path)).tasks == 2311


def test_one_missing_pressure_file_leaves_only_that_resource_unmeasured(tmp_path: Path) -> None:
    (tmp_path / "pressure").mkdir()
    (tmp_path / "pressure" / "cpu").write_text(PSI_CPU_5_4)
    (tmp_path / "pressure" / "memory").write_text(PSI_MEMORY)
    pressure = metrics.read_pressure(str(tmp_path))
    assert pressure.cpu == metrics.Pressure(27.35, None)
    assert pressure.memory == metrics.Pressure(3.21, 1.05)
    assert pressure.io is None


def test_a_missing_proc_file_is_refused_in_words(tmp_path: Path) -> None:
    with pytest.raises(MetricsUnreadable, match="meminfo could not be read"):
        metrics.read_memory(str(tmp_path))


# --- this machine's own /proc and filesystems ---------------------------------------------


def test_this_machines_cpu_times_grow_between_two_readings() -> None:
    before = metrics.read_cpu_times()
    sum(i * i for i in range(200_000))  # a little work, so some ticks pass
    after = metrics.read_cpu_times()
    assert 0 < before.busy <= after.busy
    assert before.total <= after.total
    percent = metrics.cpu_percent(before, after)
    assert percent is None or 0.0 <= percent <= 100.0


def test_this_machines_memory_and_load_agree_with_the_kernel() -> None:
    memory = metrics.read_memory()
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert memory.total == pytest.approx(pages, rel=0.05)
    assert 0 < memory.used < memory.total
    load = metrics.read_load()
    assert load.tasks >= load.running >= 1
    assert os.getloadavg()[0] == pytest.approx(load.one, abs=1.0)


def test_this_machines_pressure_is_read_where_the_kernel_has_it() -> None:
    pressure = metrics.read_pressure()
    if not Path("/proc/pressure").exists():
        assert pressure == metrics.HostPressure(None, None, None)
        return
    assert pressure.memory is not None
    assert pressure.io is not None
    assert pressure.cpu is not None
    assert 0.0 <= pressure.memory.some10 <= 100.0
    assert pressure.memory.full10 is not None


def test_disks_are_read_once_per_filesystem_and_missing_paths_are_left_out(tmp_path: Path) -> None:
    disks = metrics.read_disks(["/", str(tmp_path / "not-there"), "/", "/proc"])
    assert [disk.path for disk in disks] == ["/"]
    root = disks[0]
    stats = os.statvfs("/")
    assert root.total == stats.f_blocks * stats.f_frsize
    assert 0 < root.used < root.total
    assert 0 <= root.available <= root.total - root.used
