"""Members' bridge networks: listed by label, made on a free subnet of a pool, proxies joined,
removed when no one needs them."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

import docker.errors
import docker.types

from hostops.docker.client import _client, _errors
from hostops.errors import HostOpsError, NotFound
from hostops.types import NetworkState


def list_networks(label_filter: str | Sequence[str], *, docker_url: str) -> list[NetworkState]:
    """Every network carrying the label(s) ("key" or "key=value"), from one engine call."""
    labels = [label_filter] if isinstance(label_filter, str) else list(label_filter)
    with _errors(f"listing networks labelled {labels}"):
        summaries = _client(docker_url).api.networks(filters={"label": labels})
    return [_network_state(summary) for summary in summaries]


def _network_state(attrs: Mapping[str, Any]) -> NetworkState:
    """A NetworkState from the engine's inspect or list document (its first IPv4 subnet)."""
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
    """The first /prefix_length of ``pool`` that overlaps none of the ``taken`` subnets."""
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
