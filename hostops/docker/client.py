"""The SDK clients (one per engine, timeout bucket and process) and the translation of SDK and
transport exceptions into domain errors (hostops.errors), shared by the other modules."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import docker.utils
import requests

from hostops.errors import (
    EngineUnreachable,
    HostOpsError,
    HostOpsTransient,
    ImageMissing,
    NotFound,
    OutOfMemory,
    PortTaken,
)
from hostops.types import EngineInfo

DEFAULT_TIMEOUT = 30.0  # seconds for one engine API call

_clients: dict[tuple[int, str, int], docker.DockerClient] = {}
_clients_lock = threading.Lock()

Callback = Callable[[str], None]


def _client(docker_url: str, timeout: float = DEFAULT_TIMEOUT) -> docker.DockerClient:
    """The cached client for this engine whose timeout covers ``timeout`` (30 s, 60 s, 120 s,
    ...: a few clients per engine, whatever timeouts callers pass). A shorter timeout (the
    minute's stats) gets a client of its own, rounded up to whole seconds. The pid keeps forks
    apart."""
    bucket = int(DEFAULT_TIMEOUT) if timeout >= DEFAULT_TIMEOUT else max(1, math.ceil(timeout))
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
    """The engine's own words for a refusal (the SDK's text when it gave none)."""
    return str(exc.explanation or exc)


def engine_info(*, docker_url: str) -> EngineInfo:
    """CPUs, memory and version of the engine (one API call)."""
    with _errors("reading engine info"):
        info = _client(docker_url).info()
    return EngineInfo(cpus=int(info["NCPU"]), memory_bytes=int(info["MemTotal"]), server_version=info["ServerVersion"])
