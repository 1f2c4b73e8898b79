"""Two GPU servers for real: the default Docker engine is Host ``local``, with a worker on
``portal,host.local``; a second dockerd (its own socket and data root, started by
scripts/test-setup.sh) is Host ``gpu2``, with a worker on ``host.gpu2`` only. Both workers
could reach both sockets (each reads its engine from the Host row), so separation is proved
twice: by the queue (stopping gpu2's worker holds gpu2's jobs and nothing of local's) and by
where each container really is."""

from __future__ import annotations

import ipaddress
import os
import random
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker as docker_sdk
import pytest

from portal.models import Host, Operation, User
from tests.conftest import DOCKER_URL, remove_member_leftovers
from tests.factories import UserFactory
from tests.worker import WorkerProcess, purge_queues, start_worker, stop_worker, wait_for, wait_until_ready
from tests.workspaces.conftest import small_quota, use_worker_settings, worker_workspace_env
from workspaces.models import Workspace
from workspaces.placement import member_place
from workspaces.reconcile import reconcile_host
from workspaces.services import workspace_create, workspace_stop

pytestmark = [pytest.mark.docker, pytest.mark.worker]

GPU2_URL = os.environ.get("PORTAL_TEST_GPU2_DOCKER_URL", "unix:///run/portal-test/docker-gpu2.sock")
LOCAL_QUEUES = ("portal", "host.local")
GPU2_QUEUES = ("host.gpu2",)
# Each engine cuts members' networks from its own pool: two engines on one machine that picked
# the same subnet would both route it (separate servers may share one pool).
GPU2_SUBNET_POOL = "10.214.0.0/16"


@pytest.fixture(scope="module")
def gpu2_engine(slim_image: str) -> docker_sdk.DockerClient:
    try:
        client = docker_sdk.DockerClient(base_url=GPU2_URL, timeout=60)
        client.ping()
        client.images.get(slim_image)
    except docker_sdk.errors.DockerException as exc:
        pytest.skip(f"the gpu2 engine or its image is missing ({exc}): scripts/test-setup.sh starts it")
    return client


@pytest.fixture(scope="module")
def worker_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Both servers' workers share one storage root, as both engines here share one disk."""
    return worker_workspace_env(tmp_path_factory.mktemp("two-hosts"), random.randrange(20000, 32000, 100))


class Workers:
    """The two hosts' workers, started together; gpu2's can be stopped and started again."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.count = env, logs, 0
        self.local = self._start(LOCAL_QUEUES, {})
        self.gpu2 = self._start(GPU2_QUEUES, {"WORKSPACE_SUBNET_POOL": GPU2_SUBNET_POOL})
        for worker in (self.local, self.gpu2):
            wait_until_ready(worker)

    def _start(self, queues: tuple[str, ...], extra: dict[str, str]) -> WorkerProcess:
        self.count += 1
        name = f"pytest-{os.getpid()}-{queues[-1]}-{self.count}@{socket.gethostname()}"
        log_path = self.logs / f"worker-{self.count}.log"
        env = {**self.env, **extra}
        return start_worker(nodename=name, log_path=log_path, extra_env=env, queues=queues, wait=False)

    def restart_gpu2(self) -> None:
        self.gpu2 = self._start(GPU2_QUEUES, {"WORKSPACE_SUBNET_POOL": GPU2_SUBNET_POOL})
        wait_until_ready(self.gpu2)

    def stop(self) -> None:
        for worker in (self.local, self.gpu2):
            stop_worker(worker)


@pytest.fixture
def workers(django_db_setup: None, worker_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    purge_queues((*LOCAL_QUEUES, *GPU2_QUEUES))
    started = Workers(worker_env, tmp_path)
    yield started
    started.stop()


def _member(prefix: str) -> User:
    user = UserFactory(username=f"{prefix}{uuid.uuid4().hex[:8]}")
    small_quota(user)
    return user


def _finished(op: Operation, timeout: float = 120) -> Operation:
    def final() -> Operation | None:
        op.refresh_from_db()
        return op if op.is_final else None

    return wait_for(final, timeout=timeout, what=f"{op.kind} of {op.target_label} to finish")


def _received(worker: WorkerProcess, task: str) -> int:
    return len(re.findall(rf"Task [\w.]+\.{task}\[[0-9a-f-]+\] received", worker.log()))


def _subnet(engine: docker_sdk.DockerClient, member: User) -> ipaddress.IPv4Network:
    (network,) = engine.networks.list(filters={"label": f"portal.network-owner={member.username}"})
    return ipaddress.IPv4Network(network.attrs["IPAM"]["Config"][0]["Subnet"])


def _banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        return conn.recv(64)


def _status(engine: docker_sdk.DockerClient, name: str) -> str:
    try:
        return str(engine.containers.get(name).status)
    except docker_sdk.errors.NotFound:
        return "absent"


@pytest.mark.django_db(transaction=True)
def test_a_member_on_gpu2_runs_there_and_gpu2s_jobs_wait_for_its_own_worker(
    settings,  # type: ignore[no-untyped-def]
    worker_env: dict[str, str],
    docker_client: docker_sdk.DockerClient,
    gpu2_engine: docker_sdk.DockerClient,
    workers: Workers,
) -> None:
    use_worker_settings(settings, worker_env)
    local = Host.objects.update_or_create(name="local", defaults={"queue": "host.local", "docker_url": DOCKER_URL})[0]
    gpu2 = Host.objects.create(name="gpu2", queue="host.gpu2", docker_url=GPU2_URL)
    admin = UserFactory(username=f"a{uuid.uuid4().hex[:8]}", is_staff=True)
    alice, bob = _member("l"), _member("g")
    try:
        # Placed on gpu2 by an admin: gpu2's worker makes bob's folders.
        assert member_place(member=bob, host=gpu2, actor=admin)
        workers.gpu2.wait_for_log("storage.tasks.member_storage_prepare_task")
        wait_for(lambda: (Path(worker_env["WORKSPACE_HOME_ROOT"]) / bob.username).is_dir(), what="bob's home")

        # Each member's workspace is made on their own server's engine, and only there.
        ops = [workspace_create(owner=alice, actor=alice), workspace_create(owner=bob, actor=bob)]
        for op in ops:
            assert _finished(op).state == Operation.State.SUCCEEDED, f"{op.log}\n{op.error}"
        mine, theirs = Workspace.objects.get(owner=alice), Workspace.objects.get(owner=bob)
        assert (mine.host, theirs.host) == (local, gpu2)
        assert (_status(docker_client, mine.container_name), _status(gpu2_engine, mine.container_name)) == (
            "running",
            "absent",
        )
        assert (_status(gpu2_engine, theirs.container_name), _status(docker_client, theirs.container_name)) == (
            "running",
            "absent",
        )
        # gpu2 publishes bob's SSH port although it leaves iptables to the first engine.
        assert _banner(theirs.ssh_port).startswith(b"SSH-2.0-")
        # Each engine's member network comes from its worker's pool, so no subnet is routed twice.
        assert _subnet(gpu2_engine, bob).subnet_of(ipaddress.IPv4Network(GPU2_SUBNET_POOL))
        assert _subnet(docker_client, alice).subnet_of(ipaddress.IPv4Network(settings.WORKSPACE_SUBNET_POOL))
        # ...and each create ran on its own server's worker.
        assert [_received(w, "workspace_create_task") for w in (workers.local, workers.gpu2)] == [1, 1]

        # Each reconciler pass sees its own engine: neither marks the other's workspace missing.
        reports = {host.name: reconcile_host(host) for host in (local, gpu2)}
        assert reports["gpu2"].containers == 1
        assert (reports["gpu2"].orphans, reports["gpu2"].changed) == ([], [])
        assert theirs.container_name not in reports["local"].orphans
        assert (reports["local"].changed, reports["local"].started) == ([], [])
        states = dict(Workspace.objects.values_list("owner__username", "state"))
        assert states == {alice.username: Workspace.State.RUNNING, bob.username: Workspace.State.RUNNING}

        # gpu2's worker stops: bob's stop waits in gpu2's queue, alice's server carries on.
        stop_worker(workers.gpu2)
        waiting = workspace_stop(workspace=theirs, actor=bob)
        done = _finished(workspace_stop(workspace=mine, actor=alice))
        assert done.state == Operation.State.SUCCEEDED, done.error
        assert _status(docker_client, mine.container_name) == "exited"
        waiting.refresh_from_db()
        assert waiting.state == Operation.State.QUEUED
        assert _status(gpu2_engine, theirs.container_name) == "running"

        # Its worker comes back and takes the waiting job.
        workers.restart_gpu2()
        assert _finished(waiting).state == Operation.State.SUCCEEDED, waiting.error
        assert _status(gpu2_engine, theirs.container_name) == "exited"
    finally:
        for engine in (docker_client, gpu2_engine):
            for user in (alice, bob):
                remove_member_leftovers(engine, user.username)
