"""A thin, typed wrapper over the Docker SDK: explicit timeouts, plain dataclasses back, and
domain errors (hostops.errors) instead of SDK exceptions.

Every function names its engine with ``docker_url``: ``unix:///var/run/docker.sock``,
``ssh://user@host`` (through the system ssh client) or ``tcp://host:2376`` (TLS from the usual
DOCKER_TLS_VERIFY / DOCKER_CERT_PATH environment). Clients are cached per engine and process.

Callers use the package (``from hostops import docker; docker.ensure_container(...)``); the
modules split it by concern: ``client`` (SDK clients, error translation, engine info),
``containers``, ``networks``, ``images``, ``readiness`` (wait_healthy) and ``parse`` (pure
functions over the engine's JSON).
"""

from __future__ import annotations

from hostops.docker.client import DEFAULT_TIMEOUT, engine_info
from hostops.docker.client import _client as _client  # tests and bench reach the SDK client
from hostops.docker.containers import (
    SPEC_HASH_LABEL,
    ensure_container,
    exec_run,
    inspect,
    list_by_label,
    logs,
    remove,
    remove_volume,
    spec_hash,
    stats,
    stats_many,
    stop,
)
from hostops.docker.images import image_inspect
from hostops.docker.networks import connect_labelled, ensure_network, list_networks, remove_network
from hostops.docker.readiness import wait_healthy
from hostops.types import ContainerSpec, ContainerState, ContainerStats, EngineInfo, ImageInfo, Mount, NetworkState

__all__ = [
    "DEFAULT_TIMEOUT",
    "SPEC_HASH_LABEL",
    "ContainerSpec",
    "ContainerState",
    "ContainerStats",
    "EngineInfo",
    "ImageInfo",
    "Mount",
    "NetworkState",
    "connect_labelled",
    "engine_info",
    "ensure_container",
    "ensure_network",
    "exec_run",
    "image_inspect",
    "inspect",
    "list_by_label",
    "list_networks",
    "logs",
    "remove",
    "remove_network",
    "remove_volume",
    "spec_hash",
    "stats",
    "stats_many",
    "stop",
    "wait_healthy",
]
