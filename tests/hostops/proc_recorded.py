"""Files of /proc recorded from real kernels, for the parsers' tests and for a stand-in /proc
(HOST_PROC) that the monitoring tests point the collector at."""

from __future__ import annotations

from pathlib import Path

# /proc/stat of a 6.8 kernel, 16 CPUs (the per-CPU lines cut to two).
STAT_6_8 = """\
cpu  4705196 2174 1236720 113385471 81931 0 44270 0 0 0
cpu0 295434 124 77542 7084733 5317 0 21830 0 0 0
cpu1 291380 139 76111 7090969 4946 0 3601 0 0 0
intr 297346331 0 9 0 0 0 0 0 0 0 0 0 0 0 0 0
ctxt 541318225
btime 1733120000
processes 2170843
procs_running 2
procs_blocked 0
"""
# A 2.6.24-era line: no guest_nice, no guest, no steal (seven fields).
STAT_OLD = "cpu  1000 0 500 8000 500 0 0\n"

MEMINFO_NO_SWAP = """\
MemTotal:       24683568 kB
MemFree:        20519392 kB
MemAvailable:   23693112 kB
Buffers:          115396 kB
Cached:          3130864 kB
SwapCached:            0 kB
SwapTotal:             0 kB
SwapFree:              0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""
MEMINFO_SWAP = """\
MemTotal:       263842132 kB
MemFree:         1520412 kB
MemAvailable:   104857600 kB
SwapTotal:      52428796 kB
SwapFree:       41943036 kB
"""
LOADAVG = "12.47 9.80 7.02 14/2311 918273\n"
PSI_MEMORY = (
    "some avg10=3.21 avg60=1.50 avg300=0.42 total=123456789\nfull avg10=1.05 avg60=0.80 avg300=0.10 total=23456789\n"
)
PSI_CPU_5_4 = "some avg10=27.35 avg60=20.10 avg300=15.00 total=987654321\n"  # cpu has no full line before 5.13
PSI_IO = "some avg10=0.50 avg60=0.20 avg300=0.05 total=4567\nfull avg10=0.25 avg60=0.10 avg300=0.02 total=2345\n"


def write_proc(root: Path, *, stat: str = STAT_6_8, meminfo: str = MEMINFO_SWAP, pressure: bool = True) -> Path:
    """A /proc with stat, meminfo and loadavg, and /proc/pressure only if ``pressure``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(stat)
    (root / "meminfo").write_text(meminfo)
    (root / "loadavg").write_text(LOADAVG)
    if pressure:
        (root / "pressure").mkdir(exist_ok=True)
        (root / "pressure" / "cpu").write_text(PSI_CPU_5_4)
        (root / "pressure" / "memory").write_text(PSI_MEMORY)
        (root / "pressure" / "io").write_text(PSI_IO)
    return root
