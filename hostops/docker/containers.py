"""Containers: ensure one as a spec says (idempotent, by spec hash), stop, remove, inspect,
list by label, exec, logs and stats."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import docker
import docker.errors
import docker.types

from hostops.docker.client import DEFAULT_TIMEOUT, Callback, _client, _errors
from hostops.docker.parse import state_from_inspect, state_from_summary, stats_from_raw
from hostops.errors import CommandTimeout, HostOpsError, HostOpsTransient, ImageMissing, NotFound
from hostops.types import ContainerSpec, ContainerState, ContainerStats, Mount

logger = logging.getLogger(__name__)

SPEC_HASH_LABEL = "portal.spec-hash"


def spec_hash(spec: ContainerSpec) -> str:
    """sha256 of the spec's canonical JSON: equal specs hash equal, any change changes it."""
    canonical = json.dumps(dataclasses.asdict(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"container-spec/v1:{canonical}".encode()).hexdigest()


def ensure_container(
    spec: ContainerSpec,
    *,
    docker_url: str,
    start: bool = True,
    stop_timeout: int = 10,
    on_event: Callback | None = None,
) -> ContainerState:
    """Make the container ``spec.name`` exist as ``spec`` says (and run it, if ``start``).

    Idempotent: a container with the same spec hash and the image its tag names now is kept;
    one that differs is stopped, removed and created anew (homes live on mounts, so nothing of
    the member's is lost). Raises ImageMissing, PortTaken, OutOfMemory or HostOpsError.
    """
    emit = on_event or (lambda _message: None)
    client = _client(docker_url)
    wanted = spec_hash(spec)
    current = _find(client, spec.name)
    if current is not None and not _matches(client, current, wanted, spec.image):
        emit(f"recreating {spec.name}: its settings or image changed")
        with _errors(f"removing the outdated {spec.name}"):
            if current.status == "running":
                current.stop(timeout=stop_timeout)
            current.remove()
        current = None
    if current is None:
        emit(f"creating {spec.name}")
        current = _create(client, spec, wanted)
    if start and current.status != "running":
        emit(f"starting {spec.name}")
        with _errors(f"starting {spec.name}"):
            current.start()
    return inspect(spec.name, docker_url=docker_url)


def _find(client: docker.DockerClient, name: str) -> Any:
    """The container called ``name``, or None."""
    try:
        with _errors(f"looking up {name}"):
            return client.containers.get(name)
    except NotFound:
        return None


def _matches(client: docker.DockerClient, container: Any, wanted: str, image: str) -> bool:
    """Same spec hash, and the image tag still points at the image the container runs."""
    if container.labels.get(SPEC_HASH_LABEL) != wanted:
        return False
    try:
        with _errors(f"inspecting image {image}"):
            image_id = client.api.inspect_image(image)["Id"]
    except (ImageMissing, NotFound):
        return True  # the tag is gone but the container still has its image: keep it
    return bool(container.attrs["Image"] == image_id)


def _create(client: docker.DockerClient, spec: ContainerSpec, wanted: str) -> Any:
    """Create the container; if a concurrent ensure created the same spec first, use that one."""
    with _errors(f"creating {spec.name}"):
        try:
            return client.containers.create(**_create_kwargs(spec, wanted))
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: the name is taken
                raise
            existing = _await_created(client, spec.name)
            if existing is None or existing.labels.get(SPEC_HASH_LABEL) != wanted:
                raise HostOpsTransient(f"{spec.name} is being changed by another operation") from exc
            return existing


def _await_created(client: docker.DockerClient, name: str) -> Any:
    """The container another caller is creating under ``name``: the engine reserves the name
    before the container can be inspected, so give that create a few seconds to finish."""
    deadline = time.monotonic() + 5
    while (found := _find(client, name)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _create_kwargs(spec: ContainerSpec, wanted: str) -> dict[str, Any]:
    """The SDK arguments for ``spec``: every limit set explicitly, labels plus the spec hash."""
    policy, _, retries = spec.restart_policy.partition(":")
    gpus = [docker.types.DeviceRequest(device_ids=list(spec.gpus.device_ids), capabilities=[["gpu"]])]
    return {
        "image": spec.image,
        "command": list(spec.command) or None,
        "name": spec.name,
        "hostname": spec.hostname,
        "labels": {**spec.labels, SPEC_HASH_LABEL: wanted},
        "environment": dict(spec.environment),
        "mem_reservation": spec.mem_reservation,
        "mem_limit": spec.mem_limit,
        "memswap_limit": spec.memswap_limit,
        "cpuset_cpus": spec.cpuset_cpus or None,
        "pids_limit": spec.pids_limit,
        "device_requests": gpus if spec.gpus.device_ids else None,
        "mounts": [_mount(mount) for mount in spec.mounts],
        "ports": dict(spec.ports),
        "restart_policy": {"Name": policy, "MaximumRetryCount": int(retries or 0)},
        "network": spec.network,
        "cap_add": list(spec.cap_add) or None,
        "security_opt": list(spec.security_opt) or None,
        "extra_hosts": dict(spec.extra_hosts) or None,
        "shm_size": spec.shm_size,
        "runtime": spec.runtime,
        "init": True,
    }


def _mount(mount: Mount) -> docker.types.Mount:
    """The SDK's form of one of our mounts."""
    return docker.types.Mount(target=mount.target, source=mount.source, type=mount.kind, read_only=mount.read_only)


def stop(name: str, *, docker_url: str, timeout: int = 10) -> None:
    """SIGTERM the container, SIGKILL it after ``timeout`` seconds (a stopped one is left)."""
    with _errors(f"stopping {name}"):
        _client(docker_url).api.stop(name, timeout=timeout)


def remove(name: str, *, docker_url: str, force: bool = False, missing_ok: bool = False) -> None:
    """Remove the container (``force`` kills a running one first); its volumes stay."""
    try:
        with _errors(f"removing {name}"):
            _client(docker_url).api.remove_container(name, force=force, v=False)
    except NotFound:
        if not missing_ok:
            raise


def remove_volume(name: str, *, docker_url: str) -> bool:
    """Remove a named volume (a container's SSH host keys, say); False if there was none."""
    try:
        with _errors(f"removing volume {name}"):
            _client(docker_url).api.remove_volume(name)
    except NotFound:
        return False
    return True


def inspect(name: str, *, docker_url: str) -> ContainerState:
    """The container's full state (one API call). Raises NotFound."""
    with _errors(f"inspecting {name}"):
        attrs = _client(docker_url).api.inspect_container(name)
    return state_from_inspect(attrs)


def list_by_label(label_filter: str | Sequence[str], *, docker_url: str) -> list[ContainerState]:
    """Every container (running or not) carrying the label(s), from ONE engine call.

    ``label_filter`` is "key" or "key=value" (a list means all of them). The states are the
    engine's summaries; see ContainerState for the fields they leave empty.
    """
    labels = [label_filter] if isinstance(label_filter, str) else list(label_filter)
    with _errors(f"listing containers labelled {labels}"):
        summaries = _client(docker_url).api.containers(all=True, filters={"label": labels})
    return [state_from_summary(summary) for summary in summaries]


def exec_run(
    name: str, argv: Sequence[str], *, docker_url: str, user: str = "root", timeout: float = 60
) -> tuple[int, str]:
    """Run ``argv`` (no shell) in the running container; return its exit status and output.

    The command runs under coreutils' ``timeout`` inside the container, since the exec API
    cannot kill what it started; past ``timeout`` seconds CommandTimeout is raised.
    """
    if isinstance(argv, str | bytes):
        raise TypeError("exec_run() takes an argv list, not a string")
    wrapped = ["timeout", "--kill-after=5", f"{timeout:g}", *argv]
    with _errors(f"running {argv[0]} in {name}"):
        client = _client(docker_url, timeout + DEFAULT_TIMEOUT)
        result = client.containers.get(name).exec_run(wrapped, user=user, demux=False)
    output = (result.output or b"").decode("utf-8", "replace")
    if result.exit_code in (124, 137):
        raise CommandTimeout(f"{argv[0]} in {name} ran past {timeout:g}s and was killed")
    return int(result.exit_code), output


def logs(name: str, *, docker_url: str, tail: int = 100) -> str:
    """The last ``tail`` lines of the container's stdout and stderr."""
    with _errors(f"reading the logs of {name}"):
        raw = _client(docker_url).api.logs(name, stdout=True, stderr=True, tail=tail)
    return bytes(raw).decode("utf-8", "replace")


def stats(name: str, *, docker_url: str, timeout: float = DEFAULT_TIMEOUT) -> ContainerStats | None:
    """One sample of a running container (ContainerStats), None for one that is not running.
    Takes about a second: the engine measures CPU over its own interval. Past ``timeout``
    seconds EngineUnreachable is raised."""
    with _errors(f"reading the stats of {name}"):
        raw = _client(docker_url, timeout).api.stats(name, stream=False)
    return stats_from_raw(raw)


def stats_many(
    names: Sequence[str], *, docker_url: str, timeout: float = 10.0, deadline: float = 20.0
) -> dict[str, ContainerStats]:
    """Stats of many containers, one call each, in parallel: whatever answered within
    ``deadline`` seconds overall and ``timeout`` each. A container that fails, is not running
    or is late is left out (logged); the caller never waits past the deadline, a late call is
    abandoned to its own timeout in the background."""
    if not names:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(16, len(names)), thread_name_prefix="docker-stats")
    futures = {pool.submit(stats, name, docker_url=docker_url, timeout=timeout): name for name in names}
    done, late = wait(futures, timeout=deadline)
    pool.shutdown(wait=False, cancel_futures=True)
    found: dict[str, ContainerStats] = {}
    for future in done:
        name = futures[future]
        try:
            sample = future.result()
        except HostOpsError as exc:
            logger.info("no stats for %s: %s", name, exc)
            continue
        if sample is not None:
            found[name] = sample
    if late:
        logger.warning("no stats within %gs for %s", deadline, ", ".join(sorted(futures[f] for f in late)))
    return found
