"""The container spec of a workspace, built by one pure function: everything comes in as
arguments (no database, no settings lookups, no I/O), so the same inputs always give an
equal ContainerSpec and ensure_container can compare specs by their hash."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from django.conf import settings

from hostops.types import ContainerSpec, GpuRequest, Mount
from portal.models import Quota
from workspaces.models import Workspace, container_name, member_network, service_hosts, workspace_slug

SSH_CONTAINER_PORT = "22/tcp"
CODE_SERVER_PORT = 8080
JUPYTER_PORT = 8888
FILEBROWSER_PORT = 8090
# GPUs are named by index ("0") or by NVML UUID ("GPU-…", MIG instances "MIG-…").
_GPU_ID_RE = re.compile(r"^(\d{1,3}|GPU-[0-9a-fA-F-]{8,64}|MIG-[0-9a-zA-Z/-]{8,80})$")
_DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
# Traefik references: "name@provider"; no backticks or spaces may reach a rule or a list.
_TRAEFIK_REF_RE = re.compile(r"^[A-Za-z0-9_.-]+(@[a-z]+)?$")
_NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CPUSET_RE = re.compile(r"^$|^\d+(-\d+)?(,\d+(-\d+)?)*$")
_FORBIDDEN_PATH_PARTS = ("docker.sock", "containerd.sock")


@dataclass(frozen=True)
class SpecConfig:
    """The settings build_spec depends on, passed in so the function stays pure."""

    domain: str
    home_root: str
    scratch_root: str
    datasets_path: str
    network_prefix: str
    docker_runtime: str  # "" = none: Docker inside workspaces is not available
    pids_limit: int
    shm_size: int
    traefik_entrypoint: str
    traefik_middleware: str

    @classmethod
    def from_settings(cls) -> SpecConfig:
        return cls(
            domain=settings.PORTAL_DOMAIN,
            home_root=settings.WORKSPACE_HOME_ROOT,
            scratch_root=settings.WORKSPACE_SCRATCH_ROOT,
            datasets_path=settings.WORKSPACE_DATASETS_PATH,
            network_prefix=settings.WORKSPACE_NETWORK_PREFIX,
            docker_runtime=settings.WORKSPACE_DOCKER_RUNTIME,
            pids_limit=settings.WORKSPACE_PIDS_LIMIT,
            shm_size=settings.WORKSPACE_SHM_SIZE,
            traefik_entrypoint=settings.TRAEFIK_ENTRYPOINT,
            traefik_middleware=settings.TRAEFIK_AUTH_MIDDLEWARE,
        )


def build_spec(
    *,
    workspace: Workspace,
    quota: Quota,
    gpu_ids: tuple[str, ...],
    authorized_keys: list[str],
    desktop_password: str,
    config: SpecConfig,
) -> ContainerSpec:
    """The container for ``workspace`` (its ``owner`` and ``host`` must be loaded).

    Safety rules kept here, in one place:
    - mounts are the member's home (``<home_root>/<username>``, shared by all their
      workspaces so files follow the member), their scratch and the datasets read-only;
      a source outside the configured roots, with '..', or a Docker/containerd socket
      raises ValueError. The host's Docker socket is never mounted.
    - ``NVIDIA_VISIBLE_DEVICES`` is always set: the granted GPUs, or ``void`` when none,
      because CUDA images otherwise default to every GPU of the host.
    - ``can_docker`` takes effect only with ``config.docker_runtime`` (Sysbox): the container
      then runs under that runtime, which gives it its own user namespace, and
      ``PORTAL_DOCKER=1`` makes the image start a dockerd of its own inside. No capability,
      device, socket or privileged flag is ever added, so Docker in a workspace gives no host
      privilege; without the runtime the flag stays 0 and nothing changes.
    - the container joins its owner's own network (``<network_prefix>-<username>``), never a
      network shared with other members, whose code-server and Jupyter trust the gate in
      front of them and would otherwise be open to every container beside them.
    - ``desktop_password`` becomes the member's Linux password inside the container, the one
      xrdp (Guacamole's RDP) checks; sshd never accepts passwords, so it opens nothing else.
    """
    owner = workspace.owner
    slug = workspace_slug(owner.username, workspace.name)
    name = container_name(owner.username, workspace.name)
    if workspace.pk is None:
        raise ValueError("the workspace must be saved before it gets a container")
    _check_config(config)
    _check_quota(quota)
    network = member_network(owner.username, config.network_prefix)
    with_docker = owner.can_docker and bool(config.docker_runtime)
    return ContainerSpec(
        name=name,
        image=workspace.image,
        hostname=f"ws-{slug}",  # '_' is not allowed in hostnames; the slug has none
        labels=_labels(workspace, slug, network, config),
        environment=_environment(workspace, gpu_ids, authorized_keys, desktop_password, docker=with_docker),
        user_uid=owner.uid,
        user_gid=owner.gid,
        mem_reservation=quota.mem_guarantee,
        mem_limit=quota.mem_limit,
        memswap_limit=quota.mem_limit + quota.swap,  # Docker counts memory + swap together
        cpuset_cpus=quota.cpuset,
        pids_limit=config.pids_limit,
        gpus=GpuRequest(device_ids=tuple(gpu_ids)),
        mounts=_mounts(owner.username, name, config),
        ports={SSH_CONTAINER_PORT: _ssh_port(workspace.ssh_port)},
        network=network,
        restart_policy="unless-stopped",
        shm_size=config.shm_size,
        runtime=config.docker_runtime if with_docker else None,
    )


def _check_config(config: SpecConfig) -> None:
    if not _DOMAIN_RE.fullmatch(config.domain):
        raise ValueError(f"PORTAL_DOMAIN {config.domain!r} is not a domain name")
    for value in (config.traefik_entrypoint, config.traefik_middleware):
        if not _TRAEFIK_REF_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a Traefik name")
    if config.docker_runtime and not _NETWORK_RE.fullmatch(config.docker_runtime):
        raise ValueError(f"{config.docker_runtime!r} is not a runtime name")
    if not _NETWORK_RE.fullmatch(config.network_prefix):
        raise ValueError(f"{config.network_prefix!r} is not a Docker network name prefix")


def _check_quota(quota: Quota) -> None:
    if quota.mem_guarantee > quota.mem_limit:
        raise ValueError("the memory guarantee is above the memory limit")
    if not _CPUSET_RE.fullmatch(quota.cpuset):
        raise ValueError(f"{quota.cpuset!r} is not a CPU set")


def _ssh_port(port: int) -> int:
    if not 1024 <= port <= 65535:
        raise ValueError(f"SSH port {port} is outside 1024-65535")
    return port


def _labels(workspace: Workspace, slug: str, network: str, config: SpecConfig) -> dict[str, str]:
    labels = {
        "portal.managed": "true",
        "portal.workspace": str(workspace.pk),
        "portal.owner": workspace.owner.username,
        "portal.host": workspace.host.name,
        "traefik.enable": "true",
        "traefik.docker.network": network,
    }
    routers = {
        "code": ("code", CODE_SERVER_PORT),
        "jupyter": ("jup", JUPYTER_PORT),
        "files": ("files", FILEBROWSER_PORT),
    }
    for host, service in service_hosts(slug, config.domain).items():
        suffix, port = routers[service]
        labels |= _router(f"u-{slug}-{suffix}", host, port, config)
    return labels


def _router(router: str, host: str, port: int, config: SpecConfig) -> dict[str, str]:
    """One Traefik router with its own explicitly named service (the container exposes
    several ports, and Traefik would otherwise pick the first one)."""
    prefix = f"traefik.http.routers.{router}"
    return {
        f"{prefix}.rule": f"Host(`{host}`)",
        f"{prefix}.entrypoints": config.traefik_entrypoint,
        f"{prefix}.tls": "true",
        f"{prefix}.middlewares": config.traefik_middleware,
        f"{prefix}.service": router,
        f"traefik.http.services.{router}.loadbalancer.server.port": str(port),
    }


def _environment(
    workspace: Workspace, gpu_ids: tuple[str, ...], authorized_keys: list[str], desktop_password: str, *, docker: bool
) -> dict[str, str]:
    owner = workspace.owner
    if not desktop_password or not desktop_password.isprintable() or " " in desktop_password:
        raise ValueError("the desktop password must be one word of printable characters")
    for gpu in gpu_ids:
        if not _GPU_ID_RE.fullmatch(gpu):
            raise ValueError(f"{gpu!r} is not a GPU index or UUID")
    if len(set(gpu_ids)) != len(gpu_ids):
        raise ValueError("the same GPU is granted twice")
    return {
        "PORTAL_USER": owner.username,
        "PORTAL_UID": str(owner.uid),
        "PORTAL_GID": str(owner.gid),
        "PORTAL_SUDO": "1" if owner.can_sudo else "0",
        "PORTAL_DOCKER": "1" if docker else "0",
        "PORTAL_AUTHORIZED_KEYS": _authorized_keys(authorized_keys),
        "PORTAL_DESKTOP_PASSWORD": desktop_password,
        "NVIDIA_VISIBLE_DEVICES": ",".join(gpu_ids) or "void",
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility,graphics,video",
    }


def _authorized_keys(keys: list[str]) -> str:
    """One key per line, sorted so the spec doesn't depend on the order keys were read in."""
    for key in keys:
        if "\n" in key or "\r" in key or not key.strip():
            raise ValueError("an SSH key must be one non-empty line")
    return "\n".join(sorted(key.strip() for key in keys))


def _mounts(username: str, name: str, config: SpecConfig) -> tuple[Mount, ...]:
    home = _under(config.home_root, username)
    scratch = _under(config.scratch_root, username)
    datasets = _under(config.datasets_path, "")
    return (
        Mount(source=home, target=f"/home/{username}"),
        Mount(source=datasets, target="/data", read_only=True),
        Mount(source=scratch, target="/scratch"),
        # The workspace's SSH host keys outlive the container, so a rebuild doesn't make
        # every ssh client shout "REMOTE HOST IDENTIFICATION HAS CHANGED".
        Mount(source=host_keys_volume(name), target="/etc/ssh/keys", kind="volume"),
    )


def host_keys_volume(container: str) -> str:
    """The named volume holding a workspace's SSH host keys."""
    return f"{container}-sshkeys"


def _under(root: str, child: str) -> str:
    """``root/child``, refusing anything that could reach outside the configured root."""
    for part in (root, child):
        if ".." in part or "\x00" in part or any(bad in part for bad in _FORBIDDEN_PATH_PARTS):
            raise ValueError(f"refusing mount path {part!r}")
    if not root.startswith("/") or posixpath.normpath(root) in ("/", "//"):
        raise ValueError(f"mount root {root!r} must be an absolute directory below /")
    if child and ("/" in child or child.startswith(".")):
        raise ValueError(f"refusing mount path component {child!r}")
    path = posixpath.normpath(posixpath.join(root, child)) if child else posixpath.normpath(root)
    if child and posixpath.dirname(path) != posixpath.normpath(root):
        raise ValueError(f"refusing mount path {path!r}")
    return path
