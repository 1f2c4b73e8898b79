"""Plain data passed between the portal and hostops. No Django."""

from __future__ import annotations

from dataclasses import dataclass, field


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
