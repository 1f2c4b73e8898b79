"""Plain data passed between the portal and hostops. No Django."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Mount:
    """A bind mount or named volume. ``source`` is a host path (absolute) or a volume name."""

    source: str
    target: str
    read_only: bool = False
    kind: str = "bind"  # "bind" or "volume"


@dataclass(frozen=True)
class GpuRequest:
    """GPUs by UUID (preferred) or index; empty means none."""

    device_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one workspace container, built by a pure function.

    Two equal specs describe the same container: ``spec_hash`` is stored as a label, so
    ensure_container can tell "already as asked" from "must be recreated".
    """

    name: str
    image: str
    hostname: str
    labels: dict[str, str]
    environment: dict[str, str]
    user_uid: int
    user_gid: int
    mem_reservation: int  # bytes
    mem_limit: int  # bytes
    memswap_limit: int  # bytes: memory + swap, as Docker counts it
    cpuset_cpus: str  # "" = all
    pids_limit: int
    gpus: GpuRequest
    mounts: tuple[Mount, ...]
    ports: dict[str, int]  # "22/tcp" -> host port
    network: str | None = None
    restart_policy: str = "unless-stopped"
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    extra_hosts: dict[str, str] = field(default_factory=dict)
    shm_size: int | None = None
    command: tuple[str, ...] = ()  # empty = the image's CMD
    runtime: str | None = None  # an OCI runtime of the engine ("sysbox-runc"); None = its default


@dataclass(frozen=True)
class ContainerStats:
    """One stats sample of a running container: CPU percent (100 = one core) over the engine's
    own interval (its precpu fields), memory in use (page cache excluded) and its limit, and the
    bytes received and sent on all its interfaces since it started (counters)."""

    cpu_percent: float
    mem_used: int
    mem_limit: int
    net_rx_bytes: int
    net_tx_bytes: int


@dataclass(frozen=True)
class ContainerState:
    """A container as the engine reports it.

    States from ``list_by_label`` come from the engine's summary list: they leave
    ``started_at`` None, ``oom_killed`` False and ``error`` empty (only ``inspect`` knows them).
    """

    id: str
    name: str
    status: str  # created, running, paused, restarting, removing, exited, dead
    running: bool
    started_at: datetime | None
    exit_code: int | None
    health: str | None  # starting, healthy, unhealthy; None without a HEALTHCHECK
    labels: dict[str, str]
    ports: dict[str, int]  # "22/tcp" -> host port, published ports only
    oom_killed: bool = False
    error: str = ""


@dataclass(frozen=True)
class NetworkState:
    """A Docker network: its name, id, labels and first IPv4 subnet ("" when it has none)."""

    name: str
    id: str
    subnet: str
    labels: dict[str, str]


@dataclass(frozen=True)
class EngineInfo:
    """What a Docker engine offers: CPUs, memory in bytes, and its version."""

    cpus: int
    memory_bytes: int
    server_version: str


@dataclass(frozen=True)
class ImageInfo:
    """A local image: its id, tags, labels and size in bytes."""

    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    size: int
    created: str
