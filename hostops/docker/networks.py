"""Members' bridge networks: listed by label, made on a free subnet of a pool, proxies joined,
removed when no one needs them."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import docker.errors
import docker.types

from hostops.docker.client import _client, _errors
from hostops.docker.parse import parse_time
from hostops.errors import HostOpsError, NetworkBusy, NotFound, SubnetPoolFull
from hostops.types import NetworkState

_PATIENCE = 20.0  # seconds ensure_network keeps trying while concurrent creates take subnets
_RIVAL_WAIT = 3.0  # seconds a refused create waits for the winner's network to be listed
_POLL = 0.05  # seconds between looks meanwhile
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network
_NEVER = datetime.max.replace(tzinfo=UTC)  # sorts a network without a creation time last


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
    """The bridge network ``name``, created when missing on a ``/prefix_length`` of ``pool``
    that overlaps no subnet the engine already has (Docker's own default pools hold about 30
    networks; a pool of ours holds thousands). An existing one is returned as it is.

    Safe when other workers (processes, hosts) create networks at the same moment: creators of
    the same ``name`` all get the one network that won; a creator whose subnet another network
    took moves on to the next free one. Raises SubnetPoolFull when the pool is used up, and
    NetworkBusy (transient) if concurrent creations kept it from finishing for a while.

    Bridge networks are isolated from each other by the engine, so containers on different
    networks cannot reach each other; containers on the same one can."""
    client = _client(docker_url)
    deadline = time.monotonic() + _PATIENCE
    lost: list[str] = []  # subnets another network took from us, listed yet or not
    while True:
        networks = _all_networks(client, name)
        existing = _oldest_named(networks, name)
        if existing is not None:
            return existing
        taken = [_network_state(n).subnet for n in networks] + lost
        subnet = _free_subnet(pool, prefix_length, taken, start=_slot(name))
        made = _create_or_join(client, name, subnet, labels)
        if made is not None:
            return made
        lost.append(subnet)
        if time.monotonic() > deadline:
            raise NetworkBusy(f"network {name}: other networks kept taking the free subnets of {pool}")


def _slot(name: str) -> int:
    """Where in the pool ``name`` starts looking for a free subnet: the same place for every
    creator of one name (so their creates meet on one subnet, where the engine lets only one
    win), scattered for different names (so they seldom meet at all)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def _free_subnet(pool: str, prefix_length: int, taken: Sequence[str], *, start: int = 0) -> str:
    """The first /prefix_length of ``pool``, from candidate ``start`` on (wrapping around),
    that overlaps none of the ``taken`` subnets. Raises SubnetPoolFull."""
    whole = ipaddress.ip_network(pool)
    used = [net for net in map(ipaddress.ip_network, filter(None, taken)) if _overlap(net, whole)]
    candidates: list[_Net] = list(whole.subnets(new_prefix=prefix_length))
    first = start % len(candidates)
    for candidate in candidates[first:] + candidates[:first]:
        if not any(_overlap(candidate, u) for u in used):
            return str(candidate)
    raise SubnetPoolFull(f"no free /{prefix_length} subnet is left in {pool}; widen WORKSPACE_SUBNET_POOL")


def _create_or_join(client: Any, name: str, subnet: str, labels: Mapping[str, str]) -> NetworkState | None:
    """Create ``name`` on ``subnet``. If the engine refuses because another creator took the
    name or the subnet first, that creator's network when it is ``name``, else None (the
    subnet went to another network: try the next one)."""
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    with _errors(f"creating network {name}"):
        try:
            created = client.api.create_network(
                name, driver="bridge", ipam=ipam, labels=dict(labels), check_duplicate=True
            )
        except docker.errors.APIError as exc:
            if not _lost_a_race(exc):
                raise
            return _await_rival(client, name, subnet)
    return _settle_duplicates(client, name, str(created["Id"]))


def _lost_a_race(exc: docker.errors.APIError) -> bool:
    """The engine refused a create because the name (409) or an overlapping subnet is taken."""
    text = str(exc.explanation or exc).lower()
    return exc.status_code == 409 or "already exists" in text or "overlap" in text


def _await_rival(client: Any, name: str, subnet: str) -> NetworkState | None:
    """After a refusal: the engine reserves a name or subnet a moment before the network that
    holds it can be listed, so wait (briefly) for it. Returns it if it is ``name``; None if a
    network of another name holds the subnet, or if none showed (that create failed)."""
    wanted = ipaddress.ip_network(subnet)
    deadline = time.monotonic() + _RIVAL_WAIT
    while time.monotonic() < deadline:
        networks = _all_networks(client, name)
        found = _oldest_named(networks, name)
        if found is not None:
            return found
        if any(_holds(n, wanted) for n in networks):
            return None
        time.sleep(_POLL)
    return None


def _settle_duplicates(client: Any, name: str, mine: str) -> NetworkState:
    """Engines before Docker 25 let concurrent creates of one name all succeed. Every creator
    keeps the oldest network of the name and removes its own if that is not the one."""
    keeper = _oldest_named(_all_networks(client, name), name)
    if keeper is None:  # not listed yet: ours is the only one there is
        with _errors(f"reading network {name}"):
            return _network_state(client.api.inspect_network(mine))
    if keeper.id != mine:
        with _errors(f"removing a duplicate of network {name}"), contextlib.suppress(docker.errors.NotFound):
            for container in client.api.inspect_network(mine).get("Containers") or {}:
                client.api.disconnect_container_from_network(container, mine, force=True)
            client.api.remove_network(mine)
    return keeper


def _holds(attrs: Mapping[str, Any], wanted: _Net) -> bool:
    """Whether this network's subnet overlaps ``wanted``."""
    subnet = _network_state(attrs).subnet
    return bool(subnet) and _overlap(ipaddress.ip_network(subnet), wanted)


def _overlap(one: _Net, other: _Net) -> bool:
    """Whether two subnets share an address (never across IPv4 and IPv6)."""
    return one.version == other.version and one.overlaps(other)


def _all_networks(client: Any, name: str) -> list[dict[str, Any]]:
    """Every network of the engine, as its list call describes them (subnets included)."""
    with _errors(f"reading networks (for {name})"):
        return list(client.api.networks())


def _oldest_named(networks: Sequence[Mapping[str, Any]], name: str) -> NetworkState | None:
    """The network called exactly ``name`` (the oldest, should there be duplicates), or None."""
    named = [n for n in networks if n.get("Name") == name]
    if not named:
        return None
    oldest = min(named, key=lambda n: (parse_time(n.get("Created")) or _NEVER, str(n["Id"])))
    return _network_state(oldest)


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
