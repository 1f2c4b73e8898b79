"""hostops.docker networks against the real dockerd: subnets from our pool, isolation between
networks, proxies joined and detached."""

from __future__ import annotations

import ipaddress
import itertools
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import docker as docker_sdk
import pytest

from hostops import docker as hd
from hostops.docker import networks as hd_networks
from hostops.errors import SubnetPoolFull
from tests.hostops.conftest import SpecFactory

pytestmark = pytest.mark.docker

PROXY = "portal.proxy=true"
POOL = "10.214.7.0/24"  # 16 networks of /28, a range nothing else here uses


@pytest.fixture
def net_name(docker_url: str) -> Iterator[Callable[[str], str]]:
    """Network names unique to this test; all of them are removed afterwards."""
    prefix = f"h4n-{uuid.uuid4().hex[:8]}"
    yield lambda suffix: f"{prefix}-{suffix}"
    engine = docker_sdk.DockerClient(base_url=docker_url)
    for network in engine.networks.list(filters={"name": prefix}):
        network.reload()
        for container in network.containers:
            network.disconnect(container, force=True)
        network.remove()


@pytest.fixture
def eight_subnet_pool() -> str:
    """A /25 (eight /28s) that other tests' pools and other runs on this engine seldom share."""
    return f"10.215.{random.randrange(256)}.{random.choice((0, 128))}/25"


def _at_once(ensure: Callable[[int], hd.NetworkState]) -> list[hd.NetworkState]:
    """Run ``ensure(0..7)`` in eight threads released at the same moment; any error is raised."""
    start = threading.Barrier(8)

    def released(i: int) -> hd.NetworkState:
        start.wait(timeout=30)
        return ensure(i)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(released, range(8)))


def _engine_networks(docker_url: str, prefix: str) -> list[docker_sdk.models.networks.Network]:
    """The engine's own list of networks whose name starts with ``prefix``."""
    engine = docker_sdk.DockerClient(base_url=docker_url)
    return [n for n in engine.networks.list(filters={"name": prefix}) if n.name.startswith(prefix)]


def _ensure(name: str, docker_url: str, pool: str = POOL, prefix_length: int = 28) -> hd.NetworkState:
    return hd.ensure_network(
        name, labels={"portal.test-net": "yes"}, pool=pool, prefix_length=prefix_length, docker_url=docker_url
    )


def _reaches(source: str, target_ip: str, port: int, docker_url: str) -> bool:
    """Whether ``source`` opens a TCP connection to ``target_ip:port`` within 3 s (packets
    between isolated networks are dropped, so a refused probe times out)."""
    probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{target_ip}/{port}' 2>/dev/null && echo open || echo closed"
    code, output = hd.exec_run(source, ["bash", "-c", probe], docker_url=docker_url, timeout=15)
    assert code == 0, output
    return output.strip() == "open"


def _ip(name: str, network: str, docker_url: str) -> str:
    engine = docker_sdk.DockerClient(base_url=docker_url)
    return engine.containers.get(name).attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


# Listens on 8888 as Jupyter does (perl is in every Debian base, python3 is not).
_SERVE = "$s = IO::Socket::INET->new(LocalPort => 8888, Listen => 5) or die; close $c while $c = $s->accept"
LISTEN = ("perl", "-MIO::Socket::INET", "-e", _SERVE)


def test_a_network_gets_a_free_subnet_of_the_pool_and_its_labels(docker_url: str, net_name) -> None:  # type: ignore[no-untyped-def]
    first = _ensure(net_name("a"), docker_url)
    second = _ensure(net_name("b"), docker_url)
    assert ipaddress.ip_network(first.subnet).subnet_of(ipaddress.ip_network(POOL))
    assert ipaddress.ip_network(first.subnet).prefixlen == 28
    assert not ipaddress.ip_network(first.subnet).overlaps(ipaddress.ip_network(second.subnet))
    assert first.labels == {"portal.test-net": "yes"}
    assert [n.name for n in hd.list_networks("portal.test-net=yes", docker_url=docker_url)].count(first.name) == 1


def test_ensuring_an_existing_network_changes_nothing(docker_url: str, net_name) -> None:  # type: ignore[no-untyped-def]
    first = _ensure(net_name("a"), docker_url)
    again = _ensure(net_name("a"), docker_url)
    assert (again.id, again.subnet) == (first.id, first.subnet)


def test_a_full_pool_is_refused_in_words(docker_url: str, net_name) -> None:  # type: ignore[no-untyped-def]
    _ensure(net_name("only"), docker_url, pool="10.214.9.0/28")
    with pytest.raises(SubnetPoolFull, match=r"no free /28 subnet is left in 10\.214\.9\.0/28"):
        _ensure(net_name("more"), docker_url, pool="10.214.9.0/28")


def test_eight_networks_made_at_the_same_moment_get_eight_subnets_that_do_not_overlap(
    docker_url: str, net_name, eight_subnet_pool: str
) -> None:  # type: ignore[no-untyped-def]
    # The pool holds exactly eight /28s, so creators must collide and move on until it is full.
    names = [net_name(f"m{i}") for i in range(8)]
    made = _at_once(lambda i: _ensure(names[i], docker_url, pool=eight_subnet_pool))
    assert sorted(n.name for n in made) == sorted(names)
    assert len({n.id for n in made}) == 8
    subnets = [ipaddress.ip_network(n.subnet) for n in made]
    assert all(s.subnet_of(ipaddress.ip_network(eight_subnet_pool)) for s in subnets)
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    assert sorted(n.id for n in _engine_networks(docker_url, names[0].rsplit("-", 1)[0])) == sorted(n.id for n in made)


def test_eight_ensures_of_one_network_at_the_same_moment_all_get_that_one_network(
    docker_url: str, net_name, eight_subnet_pool: str
) -> None:  # type: ignore[no-untyped-def]
    name = net_name("same")
    made = _at_once(lambda _i: _ensure(name, docker_url, pool=eight_subnet_pool))
    assert len({n.id for n in made}) == 1
    assert len({n.subnet for n in made}) == 1
    assert [n.id for n in _engine_networks(docker_url, name)] == [made[0].id]


def test_same_moment_creates_of_one_network_on_different_subnets_still_end_with_one_network(
    docker_url: str, net_name, eight_subnet_pool: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # Each creator starts at another subnet, so the engine's subnet check cannot pick the
    # winner: engines before Docker 25 then let every create of the name succeed, and the
    # creators must settle on one network among themselves.
    starts = itertools.count()
    monkeypatch.setattr(hd_networks, "_slot", lambda _name: next(starts))
    name = net_name("split")
    made = _at_once(lambda _i: _ensure(name, docker_url, pool=eight_subnet_pool))
    assert len({n.id for n in made}) == 1
    assert [n.id for n in _engine_networks(docker_url, name)] == [made[0].id]


def test_containers_on_different_networks_cannot_reach_each_other_and_a_proxy_reaches_both(
    docker_url: str, net_name, make_spec: SpecFactory
) -> None:  # type: ignore[no-untyped-def]
    alice_net, bob_net = _ensure(net_name("alice"), docker_url).name, _ensure(net_name("bob"), docker_url).name
    alice_spec = make_spec("alice", network=alice_net, command=LISTEN)
    bob_spec = make_spec("bob", network=bob_net, command=LISTEN)
    proxy_spec = make_spec("proxy", network=None, labels={**make_spec().labels, "portal.proxy": "true"})
    for spec in (alice_spec, bob_spec, proxy_spec):
        hd.ensure_container(spec, docker_url=docker_url)

    assert hd.connect_labelled([alice_net, bob_net], PROXY, docker_url=docker_url) == [
        (proxy_spec.name, alice_net),
        (proxy_spec.name, bob_net),
    ]
    assert hd.connect_labelled([alice_net, bob_net], PROXY, docker_url=docker_url) == []  # already on both

    bob_ip, alice_ip = _ip(bob_spec.name, bob_net, docker_url), _ip(alice_spec.name, alice_net, docker_url)
    assert _reaches(proxy_spec.name, bob_ip, 8888, docker_url)
    assert _reaches(proxy_spec.name, alice_ip, 8888, docker_url)
    assert not _reaches(alice_spec.name, bob_ip, 8888, docker_url)
    assert not _reaches(bob_spec.name, alice_ip, 8888, docker_url)


def test_removing_a_network_detaches_the_proxies_but_spares_a_network_someone_still_uses(
    docker_url: str, net_name, make_spec: SpecFactory
) -> None:  # type: ignore[no-untyped-def]
    used, spare = _ensure(net_name("used"), docker_url).name, _ensure(net_name("spare"), docker_url).name
    member = make_spec("member", network=used)
    hd.ensure_container(member, docker_url=docker_url)
    hd.stop(member.name, docker_url=docker_url, timeout=1)  # a stopped container still needs its network
    proxy = make_spec("proxy", labels={**make_spec().labels, "portal.proxy": "true"})
    hd.ensure_container(proxy, docker_url=docker_url)
    hd.connect_labelled([used, spare], PROXY, docker_url=docker_url)

    assert hd.remove_network(used, detach_label=PROXY, docker_url=docker_url) is False
    assert hd.remove_network(spare, detach_label=PROXY, docker_url=docker_url) is True

    names = {n.name for n in hd.list_networks("portal.test-net=yes", docker_url=docker_url)}
    assert used in names
    assert spare not in names
    hd.ensure_container(member, docker_url=docker_url)  # starts it again, on its network
    assert hd.inspect(member.name, docker_url=docker_url).running
    assert hd.remove_network(spare, detach_label=PROXY, docker_url=docker_url) is True  # gone already
