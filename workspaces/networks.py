"""Members' Docker networks: each member's workspaces on a host share a bridge network of their
own, and no other member's container is on it. The engine isolates bridge networks from each
other, so one member's container cannot reach another's code-server or Jupyter (which trust the
portal's gate in front of them and have no password of their own) nor their xrdp.

Traefik and guacd are the only containers on every member network: they carry the label
``portal.proxy=true`` (docker-compose.yml sets it) and are joined to a member's network when it
is made, and again by the reconciler's pass every minute, so a recreated Traefik (``docker
compose up -d`` after an upgrade) reaches every workspace again within a minute.
"""

from __future__ import annotations

from django.conf import settings

from hostops import docker
from hostops.types import NetworkState
from portal.models import Host
from workspaces.models import Workspace, member_network

PROXY_LABEL = "portal.proxy=true"


def ensure_member_network(workspace: Workspace) -> NetworkState:
    """The owner's network on the workspace's host, made if missing, with the proxies on it."""
    host, owner = workspace.host, workspace.owner
    name = member_network(owner.username, settings.WORKSPACE_NETWORK_PREFIX)
    network = docker.ensure_network(
        name,
        labels={"portal.managed": "true", "portal.host": host.name, "portal.network-owner": owner.username},
        pool=settings.WORKSPACE_SUBNET_POOL,
        prefix_length=settings.WORKSPACE_SUBNET_PREFIX,
        docker_url=host.docker_url,
    )
    docker.connect_labelled([name], PROXY_LABEL, docker_url=host.docker_url)
    return network


def attach_proxies(host: Host) -> list[tuple[str, str]]:
    """Join the proxies to every member network of ``host`` they are missing from (two list
    calls when nothing is missing). Returns the (proxy, network) pairs joined."""
    labels = ["portal.managed=true", f"portal.host={host.name}", "portal.network-owner"]
    names = [network.name for network in docker.list_networks(labels, docker_url=host.docker_url)]
    if not names:
        return []
    return docker.connect_labelled(names, PROXY_LABEL, docker_url=host.docker_url)


def release_member_network(workspace: Workspace) -> bool:
    """Remove the owner's network once none of their workspaces on this host is left (the
    workspace being removed excepted). The engine has the last word: a network that still
    has a container of theirs on it stays. True when it is gone."""
    others = Workspace.objects.filter(owner=workspace.owner, host=workspace.host).exclude(pk=workspace.pk)
    if others.exists():
        return False
    name = member_network(workspace.owner.username, settings.WORKSPACE_NETWORK_PREFIX)
    return docker.remove_network(name, detach_label=PROXY_LABEL, docker_url=workspace.host.docker_url)
