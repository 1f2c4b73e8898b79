"""Waiting for a container to be ready, driven by the engine's event stream."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from hostops.docker.client import Callback, _client, _errors
from hostops.docker.containers import exec_run, inspect, logs
from hostops.docker.parse import EXITED
from hostops.errors import HostOpsError, HostOpsTransient, OutOfMemory
from hostops.types import ContainerState

_WAKE_EVENTS = ["start", "die", "destroy", "health_status"]


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
    """The output of the container's latest health check."""
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
