"""Members' workspaces on the real engine cannot reach each other: each member's containers sit
on a network of their own, and only the proxies (Traefik, guacd) are joined to every one."""

from __future__ import annotations

import ipaddress
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import docker as docker_sdk
import pytest

from hostops.types import NetworkState
from portal.models import Host, Operation, User
from tests.factories import UserFactory
from tests.workspaces.conftest import make_workspace, small_quota
from tests.workspaces.test_lifecycle_docker import create_and_run
from workspaces import networks, services, tasks
from workspaces.models import Workspace

pytestmark = pytest.mark.docker

JUPYTER = 8888


@pytest.fixture
def proxy(engine: docker_sdk.DockerClient, host: Host) -> str:
    """A running container labelled as a proxy, as Traefik and guacd are in compose."""
    name = f"proxy-{host.name}"
    start_proxy(engine, name, host)
    return name


def start_proxy(engine: docker_sdk.DockerClient, name: str, host: Host) -> None:
    labels = {"portal.proxy": "true", "portal.host": host.name}  # portal.host: the engine fixture removes it
    engine.containers.run("portal/debian-base:bookworm", ["sleep", "infinity"], name=name, labels=labels, detach=True)


@pytest.fixture
def other_member(db: None) -> User:
    user = UserFactory(username=f"o{uuid.uuid4().hex[:8]}")
    small_quota(user)
    return User.objects.select_related("quota").get(pk=user.pk)


@pytest.fixture
def network_prefix(settings, docker_client: docker_sdk.DockerClient) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Member networks of this test alone: a name prefix and a pool of eight /28s of its own
    (so other runs on this engine don't meet them); every one is removed afterwards."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings.WORKSPACE_NETWORK_PREFIX = prefix
    settings.WORKSPACE_SUBNET_POOL = f"10.216.{random.randrange(256)}.{random.choice((0, 128))}/25"
    settings.WORKSPACE_SUBNET_PREFIX = 28
    yield prefix
    for network in docker_client.networks.list(filters={"name": prefix}):
        network.reload()
        for container in network.containers:  # proxies of other tests' runs, joined meanwhile
            network.disconnect(container, force=True)
        network.remove()


def at_once(count: int, ensure: Callable[[int], NetworkState]) -> list[NetworkState]:
    """Run ``ensure(i)`` for each i in ``count`` threads released at the same moment."""
    start = threading.Barrier(count)

    def released(i: int) -> NetworkState:
        start.wait(timeout=30)
        return ensure(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(released, range(count)))


def networks_of(engine: docker_sdk.DockerClient, name: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return engine.containers.get(name).attrs["NetworkSettings"]["Networks"]


def reaches(engine: docker_sdk.DockerClient, source: str, target: str, port: int) -> bool:
    """Whether ``source`` opens a TCP connection to ``target`` (an address or a container name)."""
    probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{target}/{port}' 2>/dev/null && echo open || echo closed"
    code, output = engine.containers.get(source).exec_run(["bash", "-c", probe])
    assert code == 0, output
    return output.decode().strip() == "open"


def test_one_members_workspace_cannot_reach_anothers_jupyter_but_the_proxies_reach_both(
    engine: docker_sdk.DockerClient,
    member: User,
    other_member: User,
    host: Host,
    proxy: str,
    django_capture_on_commit_callbacks,
) -> None:
    mine = create_and_run(member, host, django_capture_on_commit_callbacks)
    theirs = create_and_run(other_member, host, django_capture_on_commit_callbacks)

    my_net, their_net = f"portal-ws-{member.username}", f"portal-ws-{other_member.username}"
    assert set(networks_of(engine, mine.container_name)) == {my_net}
    assert set(networks_of(engine, theirs.container_name)) == {their_net}
    assert {my_net, their_net} <= set(networks_of(engine, proxy))
    their_ip = networks_of(engine, theirs.container_name)[their_net]["IPAddress"]
    my_ip = networks_of(engine, mine.container_name)[my_net]["IPAddress"]

    assert not reaches(engine, mine.container_name, their_ip, JUPYTER)
    assert not reaches(engine, theirs.container_name, my_ip, JUPYTER)
    assert reaches(engine, proxy, their_ip, JUPYTER)
    # guacd finds a desktop by container name on the member's network.
    assert reaches(engine, proxy, mine.container_name, JUPYTER)


def test_the_reconciler_pass_joins_a_recreated_proxy_to_every_member_network(
    engine: docker_sdk.DockerClient, member: User, host: Host, django_capture_on_commit_callbacks
) -> None:
    mine = create_and_run(member, host, django_capture_on_commit_callbacks)
    my_net = f"portal-ws-{member.username}"
    # Traefik recreated by `docker compose up -d`: a new container, on none of the networks.
    labels = {"portal.proxy": "true", "portal.host": host.name}
    engine.containers.run(
        "portal/debian-base:bookworm", ["sleep", "infinity"], name=f"traefik-{host.name}", labels=labels, detach=True
    )

    tasks.workspace_host_task(host.pk)

    assert my_net in networks_of(engine, f"traefik-{host.name}")
    assert reaches(engine, f"traefik-{host.name}", mine.container_name, JUPYTER)
    assert networks.attach_proxies(host) == []  # nothing left to join


def test_a_members_network_goes_with_their_last_workspace_on_the_host(
    engine: docker_sdk.DockerClient,
    member: User,
    admin_user: User,
    host: Host,
    proxy: str,
    django_capture_on_commit_callbacks,
) -> None:
    first = create_and_run(member, host, django_capture_on_commit_callbacks)
    second = create_and_run(member, host, django_capture_on_commit_callbacks, name="two")
    my_net = f"portal-ws-{member.username}"
    assert set(networks_of(engine, second.container_name)) == {my_net}
    assert reaches(engine, first.container_name, second.container_name, JUPYTER)  # their own, together

    for workspace, network_stays in ((first, True), (second, False)):
        with django_capture_on_commit_callbacks():
            op = services.workspace_remove(
                workspace=Workspace.objects.with_related().get(pk=workspace.pk), actor=admin_user
            )
        tasks.workspace_remove_task(op.pk)
        op.refresh_from_db()
        assert op.state == Operation.State.SUCCEEDED, op.error
        assert (my_net in {n.name for n in engine.networks.list(names=[my_net])}) is network_stays
    assert my_net not in networks_of(engine, proxy)


def test_eight_members_first_networks_made_at_the_same_moment_are_eight_networks_that_do_not_overlap(
    docker_client: docker_sdk.DockerClient, host: Host, network_prefix: str, settings
) -> None:  # type: ignore[no-untyped-def]
    members = [UserFactory(username=f"n{uuid.uuid4().hex[:8]}") for _ in range(8)]
    port = random.randrange(20000, 30000, 10)
    firsts = [
        Workspace.objects.with_related().get(pk=make_workspace(m, host, port=port + i).pk)
        for i, m in enumerate(members)
    ]

    made = at_once(8, lambda i: networks.ensure_member_network(firsts[i]))

    assert sorted(n.name for n in made) == sorted(f"{network_prefix}-{m.username}" for m in members)
    assert len({n.id for n in made}) == 8
    assert [n.labels["portal.network-owner"] for n in made] == [m.username for m in members]
    subnets = [ipaddress.ip_network(n.subnet) for n in made]
    assert all(s.subnet_of(ipaddress.ip_network(settings.WORKSPACE_SUBNET_POOL)) for s in subnets)
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    assert sorted(n.id for n in docker_client.networks.list(filters={"name": network_prefix})) == sorted(
        n.id for n in made
    )


def test_eight_ensures_of_one_members_network_at_the_same_moment_all_get_that_one_network(
    docker_client: docker_sdk.DockerClient, member: User, host: Host, network_prefix: str
) -> None:
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2301).pk)

    made = at_once(8, lambda _i: networks.ensure_member_network(workspace))

    assert len({n.id for n in made}) == 1
    assert made[0].name == f"{network_prefix}-{member.username}"
    assert [n.id for n in docker_client.networks.list(filters={"name": network_prefix})] == [made[0].id]
