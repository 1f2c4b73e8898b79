"""Pure functions that turn the Docker engine's JSON (inspect, list, stats) into hostops
dataclasses and numbers. No I/O, so they are easy to reason about and to test."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hostops.types import ContainerState, ContainerStats

EXITED = frozenset({"exited", "dead"})
_EXIT_RE = re.compile(r"^Exited \((-?\d+)\)")
_HEALTH_RE = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def cpu_percent(raw: Mapping[str, Any]) -> float:
    """The docker CLI's formula: container CPU time over system CPU time, times online CPUs."""
    now, before = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    used = now.get("cpu_usage", {}).get("total_usage", 0) - before.get("cpu_usage", {}).get("total_usage", 0)
    system = now.get("system_cpu_usage", 0) - before.get("system_cpu_usage", 0)
    cpus = now.get("online_cpus") or len(now.get("cpu_usage", {}).get("percpu_usage") or ()) or 1
    return used / system * cpus * 100.0 if used > 0 and system > 0 else 0.0


def memory_used(memory: Mapping[str, Any]) -> int:
    """Usage minus inactive page cache, as ``docker stats`` shows it (cgroup v1 and v2 keys)."""
    usage = int(memory.get("usage", 0))
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return usage - cache if 0 < cache < usage else usage


def stats_from_raw(raw: Mapping[str, Any]) -> ContainerStats | None:
    """A stats sample from the engine's JSON; None for a container that is not running (the
    engine answers for a stopped one too, with no pids and a zero "read" time)."""
    if not (raw.get("pids_stats") or {}).get("current") or str(raw.get("read", "")).startswith("0001-"):
        return None
    memory = raw.get("memory_stats") or {}
    networks = (raw.get("networks") or {}).values()
    return ContainerStats(
        cpu_percent=cpu_percent(raw),
        mem_used=memory_used(memory),
        mem_limit=int(memory.get("limit", 0)),
        net_rx_bytes=sum(int(interface.get("rx_bytes", 0)) for interface in networks),
        net_tx_bytes=sum(int(interface.get("tx_bytes", 0)) for interface in networks),
    )


def state_from_inspect(attrs: Mapping[str, Any]) -> ContainerState:
    """A ContainerState from the engine's full inspect document."""
    state = attrs["State"]
    status = state["Status"]
    return ContainerState(
        id=attrs["Id"],
        name=attrs["Name"].lstrip("/"),
        status=status,
        running=bool(state["Running"]),
        started_at=parse_time(state.get("StartedAt")),
        exit_code=int(state.get("ExitCode", 0)) if status in EXITED else None,
        health=(state.get("Health") or {}).get("Status"),
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        ports=_bound_ports(attrs),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or "",
    )


def _bound_ports(attrs: Mapping[str, Any]) -> dict[str, int]:
    """Published ports: the live bindings of a running container, else the configured ones."""
    live = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    configured = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    ports: dict[str, int] = {}
    for port, bindings in (live or configured).items():
        # HostPort "0" (or "") in the configuration means "any free port", known once running.
        host_ports = [int(b["HostPort"]) for b in bindings or () if (b.get("HostPort") or "0") != "0"]
        if host_ports:
            ports[port] = host_ports[0]
    return ports


def state_from_summary(summary: Mapping[str, Any]) -> ContainerState:
    """A ContainerState from one entry of the engine's container list."""
    text = summary.get("Status") or ""
    exited, health = _EXIT_RE.match(text), _HEALTH_RE.search(text)
    ports = {
        f"{p['PrivatePort']}/{p['Type']}": int(p["PublicPort"])
        for p in summary.get("Ports") or ()
        if p.get("PublicPort")
    }
    return ContainerState(
        id=summary["Id"],
        name=(summary.get("Names") or ["/"])[0].lstrip("/"),
        status=summary["State"],
        running=summary["State"] == "running",
        started_at=None,
        exit_code=int(exited.group(1)) if exited else None,
        health=health.group(1).removeprefix("health: ") if health else None,
        labels=dict(summary.get("Labels") or {}),
        ports=ports,
    )


def parse_time(value: str | None) -> datetime | None:
    """The engine's RFC 3339 timestamp as an aware datetime (3.11 parses "Z" and nanoseconds,
    dropping digits past microseconds); the zero time means "never" -> None."""
    if not value or value.startswith("0001-"):
        return None
    return datetime.fromisoformat(value)
