"""A thin, typed wrapper over the Docker SDK: explicit timeouts, plain dataclasses back, and
domain errors (hostops.errors) instead of SDK exceptions.

Every function names its engine with ``docker_url``: ``unix:///var/run/docker.sock``,
``ssh://user@host`` (through the system ssh client) or ``tcp://host:2376`` (TLS from the usual
DOCKER_TLS_VERIFY / DOCKER_CERT_PATH environment). Clients are cached per engine and process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import docker
import docker.errors
import docker.types
import docker.utils
import requests

from hostops.docker_parse import EXITED, cpu_percent, memory_used, state_from_inspect, state_from_summary
from hostops.errors import (
    CommandTimeout,
    EngineUnreachable,
    HostOpsError,
    HostOpsTransient,
    ImageMissing,
    NotFound,
    OutOfMemory,
    PortTaken,
)
from hostops.types import ContainerSpec, ContainerState, EngineInfo, ImageInfo, Mount, NetworkState

SPEC_HASH_LABEL = "portal.spec-hash"
DEFAULT_TIMEOUT = 30.0  # seconds for one engine API call
_WAKE_EVENTS = ["start", "die", "destroy", "health_status"]

_clients: dict[tuple[int, str, int], docker.DockerClient] = {}
_clients_lock = threading.Lock()

Callback = Callable[[str], None]


# --- clients and errors ---------------------------------------------------------------------


def _client(docker_url: str, timeout: float = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """The cached client for this engine whose timeout covers ``timeout`` (30 s, 60 s, 120 s,
    ...: a few clients per engine, whatever timeouts callers pass). The pid keeps forks apart."""
    bucket = int(DEFAULT_TIMEOUT)
    while bucket < timeout:
        bucket *= 2
    key = (os.getpid(), docker_url, bucket)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = _connect(docker_url, key[2])
        return _clients[key]


def _connect(docker_url: str, timeout: int) -> docker.DockerClient:
    """Open a client; "auto" negotiates the API version, so old and new engines both work."""
    scheme = docker_url.partition("://")[0]
    kwargs: dict[str, Any] = {"base_url": docker_url, "version": "auto", "timeout": timeout}
    if scheme == "ssh":
        kwargs["use_ssh_client"] = True
    elif scheme == "tcp":
        kwargs["tls"] = docker.utils.kwargs_from_env().get("tls", False)
    elif scheme != "unix":
        raise ValueError(f"unsupported docker_url {docker_url!r}: use unix://, ssh:// or tcp://")
    with _errors(f"connecting to {docker_url}"):
        try:
            return docker.DockerClient(**kwargs)
        except docker.errors.DockerException as exc:
            if isinstance(exc, docker.errors.APIError):
                raise
            raise EngineUnreachable(f"Docker engine at {docker_url} does not answer: {exc}") from exc


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """Translate SDK and transport exceptions raised while doing ``what`` into domain errors."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(f"{what}: {_explain(exc)}") from exc
    except docker.errors.NotFound as exc:
        raise NotFound(f"{what}: {_explain(exc)}") from exc
    except docker.errors.APIError as exc:
        raise _api_error(what, exc) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise EngineUnreachable(f"{what}: the Docker engine did not answer ({exc})") from exc


def _api_error(what: str, exc: docker.errors.APIError) -> HostOpsError:
    """Pick the domain error for an engine refusal from its message and HTTP status."""
    message = f"{what}: {_explain(exc)}"
    text = message.lower()
    if "port is already allocated" in text or "address already in use" in text:
        return PortTaken(message)
    if "cannot allocate memory" in text or "out of memory" in text:
        return OutOfMemory(message)
    if (exc.status_code or 500) >= 500:
        return HostOpsTransient(message)
    return HostOpsError(message)


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


# --- engine ---------------------------------------------------------------------------------


def engine_info(*, docker_url: str) -> EngineInfo:
    """CPUs, memory and version of the engine (one API call)."""
    with _errors("reading engine info"):
        info = _client(docker_url).info()
    return EngineInfo(cpus=int(info["NCPU"]), memory_bytes=int(info["MemTotal"]), server_version=info["ServerVersion"])


# --- containers -----------------------------------------------------------------------------


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
    return docker.types.Mount(target=mount.target, source=mount.source, type=mount.kind, read_only=mount.read_only)


def start(name: str, *, docker_url: str) -> None:
    """Start the container (a running one is left as it is)."""
    with _errors(f"starting {name}"):
        _client(docker_url).api.start(name)


def stop(name: str, *, docker_url: str, timeout: int = 10) -> None:
    """SIGTERM the container, SIGKILL it after ``timeout`` seconds (a stopped one is left)."""
    with _errors(f"stopping {name}"):
        _client(docker_url).api.stop(name, timeout=timeout)


def restart(name: str, *, docker_url: str, timeout: int = 10) -> None:
    """Stop (as stop() does) and start the container again."""
    with _errors(f"restarting {name}"):
        _client(docker_url).api.restart(name, timeout=timeout)


def remove(name: str, *, docker_url: str, force: bool = False, missing_ok: bool = False) -> None:
    """Remove the container (``force`` kills a running one first); its volumes stay."""
    try:
        with _errors(f"removing {name}"):
            _client(docker_url).api.remove_container(name, force=force, v=False)
    except NotFound:
        if not missing_ok:
            raise


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


def stats(name: str, *, docker_url: str) -> tuple[float, int, int]:
    """One sample: CPU percent (100 = one core), memory in use (page cache excluded) and the
    memory limit, both in bytes. Takes about a second: the engine measures over an interval."""
    with _errors(f"reading the stats of {name}"):
        raw = _client(docker_url).api.stats(name, stream=False)
    memory = raw.get("memory_stats") or {}
    return cpu_percent(raw), memory_used(memory), int(memory.get("limit", 0))


# --- networks -------------------------------------------------------------------------------


def list_networks(label_filter: str | Sequence[str], *, docker_url: str) -> list[NetworkState]:
    """Every network carrying the label(s) ("key" or "key=value"), from one engine call."""
    labels = [label_filter] if isinstance(label_filter, str) else list(label_filter)
    with _errors(f"listing networks labelled {labels}"):
        summaries = _client(docker_url).api.networks(filters={"label": labels})
    return [_network_state(summary) for summary in summaries]


def _network_state(attrs: Mapping[str, Any]) -> NetworkState:
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    subnets = [c["Subnet"] for c in configs if c.get("Subnet") and ":" not in c["Subnet"]]
    return NetworkState(
        name=attrs["Name"], id=attrs["Id"], subnet=subnets[0] if subnets else "", labels=attrs.get("Labels") or {}
    )


def ensure_network(
    name: str, *, labels: Mapping[str, str], pool: str, prefix_length: int, docker_url: str
) -> NetworkState:
    """The bridge network ``name``, created when missing with the first ``/prefix_length`` of
    ``pool`` that overlaps no subnet the engine already has (Docker's own default pools hold
    about 30 networks; a pool of ours holds thousands). An existing one is returned as it is.

    Bridge networks are isolated from each other by the engine, so containers on different
    networks cannot reach each other; containers on the same one can."""
    client = _client(docker_url)
    for _ in range(3):  # another worker may take the same subnet at the same moment
        with _errors(f"reading network {name}"):
            try:
                return _network_state(client.api.inspect_network(name))
            except docker.errors.NotFound:
                pass
            taken = [_network_state(n).subnet for n in client.api.networks()]
        subnet = _free_subnet(pool, prefix_length, taken)
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        try:
            with _errors(f"creating network {name}"):
                client.api.create_network(name, driver="bridge", ipam=ipam, labels=dict(labels), check_duplicate=True)
        except HostOpsError as exc:
            text = str(exc).lower()
            if "overlap" in text or "already exists" in text:
                continue
            raise
    with _errors(f"reading network {name}"):
        return _network_state(client.api.inspect_network(name))


def _free_subnet(pool: str, prefix_length: int, taken: Sequence[str]) -> str:
    used = [ipaddress.ip_network(t) for t in taken if t]
    for candidate in ipaddress.ip_network(pool).subnets(new_prefix=prefix_length):
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise HostOpsError(f"no free /{prefix_length} subnet is left in {pool}; widen WORKSPACE_SUBNET_POOL")


def connect_labelled(networks: Sequence[str], label: str, *, docker_url: str) -> list[tuple[str, str]]:
    """Join every running container labelled ``label`` to each of ``networks`` it is not on yet
    (one list call, then one call per missing link). Returns the (container, network) pairs joined."""
    client = _client(docker_url)
    with _errors(f"listing containers labelled {label}"):
        summaries = client.api.containers(filters={"label": label})
    joined = []
    for summary in summaries:
        name = summary["Names"][0].lstrip("/")
        on = set(((summary.get("NetworkSettings") or {}).get("Networks") or {}).keys())
        for network in networks:
            if network in on:
                continue
            try:
                with _errors(f"connecting {name} to {network}"):
                    client.api.connect_container_to_network(summary["Id"], network)
            except HostOpsError as exc:
                if "already exists" not in str(exc).lower():  # joined meanwhile
                    raise
                continue
            joined.append((name, network))
    return joined


def remove_network(name: str, *, detach_label: str, docker_url: str) -> bool:
    """Remove the network unless a container other than those labelled ``detach_label`` (the
    proxies) is on it, stopped or not: then it is left alone and False is returned. The proxies
    are disconnected first. A network that is already gone counts as removed."""
    client = _client(docker_url)
    key, _, value = detach_label.partition("=")
    try:
        with _errors(f"removing network {name}"):
            attached = client.api.containers(all=True, filters={"network": name})
            if any((c.get("Labels") or {}).get(key) != value for c in attached):
                return False
            for container in attached:
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.disconnect_container_from_network(container["Id"], name, force=True)
            client.api.remove_network(name)
    except NotFound:
        pass
    return True


# --- images ---------------------------------------------------------------------------------


def image_inspect(tag: str, *, docker_url: str) -> ImageInfo:
    """The local image called ``tag``. Raises ImageMissing."""
    try:
        with _errors(f"inspecting image {tag}"):
            attrs = _client(docker_url).api.inspect_image(tag)
    except NotFound as exc:  # older engines word a missing image so the SDK says NotFound
        raise ImageMissing(str(exc)) from exc
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return ImageInfo(attrs["Id"], tuple(attrs.get("RepoTags") or ()), labels, int(attrs["Size"]), attrs["Created"])


def image_build(
    path: str,
    tag: str,
    *,
    docker_url: str,
    dockerfile: str = "Dockerfile",
    buildargs: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    on_progress: Callback | None = None,
    timeout: float = 3600,
) -> ImageInfo:
    """Build the context directory ``path`` into ``tag``, passing each output line to
    ``on_progress``. Uses the engine's classic build API (the SDK has no BuildKit session, so
    no ``RUN --mount`` secrets: images that need them are built with ``docker buildx``)."""
    emit = on_progress or (lambda _line: None)
    client = _client(docker_url, timeout)
    with _errors(f"building {tag}"):
        stream = client.api.build(
            path=path, tag=tag, dockerfile=dockerfile, buildargs=dict(buildargs or {}),
            labels=dict(labels or {}), rm=True, forcerm=True, decode=True,
        )  # fmt: skip
        for chunk in stream:
            if "error" in chunk:
                raise HostOpsError(f"building {tag} failed: {chunk['error'].strip()}")
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    emit(line.rstrip())
    return image_inspect(tag, docker_url=docker_url)


# --- readiness ------------------------------------------------------------------------------


def wait_healthy(
    name: str,
    *,
    docker_url: str,
    timeout: float,
    on_event: Callback | None = None,
    probe: Sequence[str] | None = None,
) -> ContainerState:
    """Wait until the container is running and healthy, driven by the engine's event stream
    (no polling): ``health_status`` events for images with a HEALTHCHECK; for images without
    one, running is enough, or, if ``probe`` is given, that argv exiting 0 inside it.

    Raises HostOpsError (with the log tail) if it dies or turns unhealthy, OutOfMemory if the
    kernel killed it, NotFound if it is removed, HostOpsTransient after ``timeout`` seconds.
    """
    emit = on_event or (lambda _message: None)
    deadline = time.monotonic() + timeout
    api = _client(docker_url).api
    with _errors(f"watching {name}"):
        # Subscribed before the first inspect, so no change between the two can be missed;
        # "until" makes the engine end the stream at the deadline; "since" = now, because
        # with "until" alone the engine first replays its buffer of past events (an old "die"
        # of this container would read as a failed start).
        now = time.time()
        events = api.events(
            since=f"{now:.6f}",
            until=math.ceil(now + timeout),
            filters={"container": name, "event": _WAKE_EVENTS},
            decode=True,
        )
    try:
        state = inspect(name, docker_url=docker_url)
        while not _ready(state, docker_url=docker_url):
            event = _next_event(events, state.id)
            if event is None:
                raise HostOpsTransient(
                    f"{name} was not healthy after {timeout:g}s (last: {state.health or state.status})"
                )
            action = str(event.get("Action") or event.get("status") or "")
            emit(f"{name}: {action}")
            if action == "die":  # even if a restart policy brings it back: this start failed
                _raise_died(state.id, name, docker_url=docker_url)
            state = inspect(state.id, docker_url=docker_url)
    finally:
        events.close()
    return _ready_via_probe(state, probe, deadline, docker_url=docker_url) if state.health is None and probe else state


def _next_event(events: Any, container_id: str) -> dict[str, Any] | None:
    """The next event of this very container: events of an earlier container with the same
    name (its "die" can arrive after a recreate) are skipped. None when the stream ends."""
    with _errors(f"watching {container_id[:12]}"):
        for event in events:
            if event.get("id") == container_id:
                return dict(event)
    return None


def _ready(state: ContainerState, *, docker_url: str) -> bool:
    """True when healthy (or running without a health check); raises if it can never be."""
    if state.status in EXITED:
        _raise_died(state.id, state.name, docker_url=docker_url)
    if state.health == "unhealthy":
        raise HostOpsError(f"{state.name} is unhealthy: {_last_health_output(state.id, docker_url=docker_url)}")
    return state.running and state.health in (None, "healthy")


def _raise_died(container_id: str, name: str, *, docker_url: str) -> None:
    """Raise why the container stopped: OOM, or its exit status with the tail of its log."""
    with _errors(f"inspecting {name}"):
        state = _client(docker_url).api.inspect_container(container_id)["State"]
    if state.get("OOMKilled"):
        raise OutOfMemory(f"{name} was killed for lack of memory")
    tail = logs(container_id, docker_url=docker_url, tail=20).strip()
    raise HostOpsError(f"{name} exited with status {state.get('ExitCode')}: {tail}")


def _last_health_output(container_id: str, *, docker_url: str) -> str:
    with _errors(f"inspecting {container_id[:12]}"):
        health = _client(docker_url).api.inspect_container(container_id)["State"].get("Health") or {}
    checks = health.get("Log") or [{}]
    return str(checks[-1].get("Output", "")).strip()


def _ready_via_probe(
    state: ContainerState, probe: Sequence[str], deadline: float, *, docker_url: str
) -> ContainerState:
    """For images without a HEALTHCHECK: run ``probe`` every half second until it exits 0."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HostOpsTransient(f"{state.name}: readiness probe {probe[0]} did not succeed in time")
        code, _output = exec_run(state.name, probe, docker_url=docker_url, timeout=max(1.0, remaining))
        if code == 0:
            return state
        time.sleep(0.5)
