"""The engine's stats JSON (API 1.41+, cgroup v2, as `docker stats` reads it) turned into a
ContainerStats: CPU from the sample's own precpu fields, memory without inactive page cache,
network summed over the interfaces; a stopped container's empty answer is no sample."""

from __future__ import annotations

from typing import Any

from hostops.docker.parse import stats_from_raw
from hostops.types import ContainerStats

MIB = 1024**2

# A container on two networks (its member's bridge and Traefik's), 2 online CPUs; trimmed to
# the fields the engine always sends.
RUNNING: dict[str, Any] = {
    "read": "2026-12-03T10:21:04.518290176Z",
    "preread": "2026-12-03T10:21:03.512006412Z",
    "pids_stats": {"current": 23, "limit": 4096},
    "cpu_stats": {
        "cpu_usage": {"total_usage": 912_004_000_000, "usage_in_kernelmode": 80_000_000, "usage_in_usermode": 900_000},
        "system_cpu_usage": 4_000_002_000_000_000,
        "online_cpus": 2,
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 911_004_000_000},
        "system_cpu_usage": 4_000_000_000_000_000,
        "online_cpus": 2,
    },
    "memory_stats": {"usage": 900 * MIB, "stats": {"inactive_file": 200 * MIB, "anon": 650 * MIB}, "limit": 4096 * MIB},
    "networks": {
        "eth0": {"rx_bytes": 123_456_789, "tx_bytes": 9_876_543, "rx_packets": 100, "tx_packets": 90},
        "eth1": {"rx_bytes": 1_000, "tx_bytes": 2_000, "rx_packets": 10, "tx_packets": 20},
    },
}
STOPPED: dict[str, Any] = {
    "read": "0001-01-01T00:00:00Z",
    "preread": "0001-01-01T00:00:00Z",
    "pids_stats": {},
    "cpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
    "precpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
    "memory_stats": {},
    "networks": None,
}


def test_a_running_containers_sample_has_cpu_from_precpu_memory_without_cache_and_summed_network() -> None:
    assert stats_from_raw(RUNNING) == ContainerStats(
        cpu_percent=100.0,  # a second of CPU over two CPUs' two seconds, times two CPUs: one core
        mem_used=700 * MIB,
        mem_limit=4096 * MIB,
        net_rx_bytes=123_457_789,
        net_tx_bytes=9_878_543,
    )


def test_a_stopped_containers_empty_answer_is_no_sample() -> None:
    assert stats_from_raw(STOPPED) is None


def test_a_container_with_no_network_has_zero_counters() -> None:
    sample = stats_from_raw({**RUNNING, "networks": None})
    assert sample is not None
    assert (sample.net_rx_bytes, sample.net_tx_bytes) == (0, 0)
