"""Workspace start and reconciliation, against the real dockerd and the slim image.

* click -> answering: a member's POST "start" on a stopped workspace, through the broker, a
  real worker process, docker start and the health check (sshd and Jupyter up), until the
  row says running; baseline: ``docker start`` of the same container until Docker reports it
  healthy, timed in the same run, alternating.
* reconciler: one pass over 100 labelled containers on a host, with its API call count.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.test import Client, override_settings
from django.urls import reverse

from hostops.run import run

SLIM_IMAGE = "portal/workspace-slim:test"
BASE_IMAGE = "portal/debian-base:bookworm"
DOCKER_URL = "unix:///var/run/docker.sock"
ROUNDS = 5
M = 1024**2


def _wait(probe: Callable[[], bool], timeout: float = 120, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish in time")
        time.sleep(interval)


def _health(name: str) -> str:
    return run(["docker", "inspect", "-f", "{{.State.Health.Status}}", name], timeout=30, check=False).stdout.strip()


@contextmanager
def _workspace_settings() -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        values = {
            "WORKSPACE_HOME_ROOT": f"{tmp}/homes",
            "WORKSPACE_SCRATCH_ROOT": f"{tmp}/scratch",
            "WORKSPACE_DATASETS_PATH": f"{tmp}/datasets",
            "WORKSPACE_IMAGE": SLIM_IMAGE,
            "WORKSPACE_SSH_PORT_BASE": "26200",
            "WORKSPACE_SSH_PORT_MAX": "26299",
            "WORKSPACE_SHM_SIZE": "64M",
            "WORKSPACE_START_TIMEOUT": "90",
        }
        overrides: dict[str, Any] = {k: (int(v) if v.isdigit() else v) for k, v in values.items()}
        overrides["WORKSPACE_SHM_SIZE"] = 64 * M
        with override_settings(**overrides):
            yield values


def _member() -> Any:
    from portal.models import Quota, User

    user, _ = User.objects.get_or_create(
        username="benchws", defaults={"email": "benchws@bench.example", "status": User.Status.ACTIVE}
    )
    Quota.objects.update_or_create(
        user=user,
        defaults={
            "mem_guarantee": 64 * M,
            "mem_limit": 256 * M,
            "swap": 64 * M,
            "cpuset": "0",
            "max_gpus": 0,
            "storage_soft": 1024 * M,
        },
    )
    return user


def _click_to_running(client: Client, workspace: Any, op_count: int) -> float:
    from portal.models import Operation

    url = reverse("workspaces:act", kwargs={"pk": workspace.pk, "action": "start"})
    t0 = time.perf_counter()
    response = client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.status_code
    ops = Operation.objects.filter(target_type="workspace", target_id=str(workspace.pk))
    _wait(lambda: ops.count() > op_count and ops.order_by("-pk").first().is_final)  # type: ignore[union-attr]
    elapsed = time.perf_counter() - t0
    last = ops.order_by("-pk").first()
    assert last is not None and last.state == "succeeded", last and last.error
    return elapsed


def _raw_start(name: str) -> float:
    t0 = time.perf_counter()
    run(["docker", "start", name], timeout=60)
    _wait(lambda: _health(name) == "healthy")
    return time.perf_counter() - t0


def _stop(name: str) -> None:
    run(["docker", "stop", "-t", "2", name], timeout=60)


def start_benchmark() -> list[dict[str, Any]]:
    from portal.models import Host
    from tests.worker import start_worker, stop_worker
    from workspaces import services
    from workspaces.models import Workspace

    with _workspace_settings() as env, tempfile.TemporaryDirectory() as logs:
        worker = start_worker(nodename="bench@localhost", log_path=Path(logs) / "worker.log", extra_env=env)
        member = _member()
        Workspace.objects.filter(owner=member).delete()
        run(["docker", "rm", "-f", "ws-benchws"], timeout=60, check=False)
        try:
            services.workspace_create(owner=member, actor=member, host=Host.local())
            workspace = Workspace.objects.get(owner=member)
            _wait(lambda: Workspace.objects.get(pk=workspace.pk).state == "running", timeout=180)
            client = Client()
            client.force_login(member)
            portal_times, raw_times = [], []
            for _ in range(ROUNDS):
                _stop(workspace.container_name)
                raw_times.append(_raw_start(workspace.container_name))
                services.workspace_stop(workspace=Workspace.objects.get(pk=workspace.pk), actor=member)
                _wait(lambda: Workspace.objects.get(pk=workspace.pk).state == "stopped")
                ops = workspace_op_count(workspace)
                portal_times.append(_click_to_running(client, workspace, ops))
        finally:
            stop_worker(worker)
            run(["docker", "rm", "-f", "ws-benchws"], timeout=60, check=False)
            run(["docker", "network", "rm", "portal-ws-benchws"], timeout=60, check=False)
    portal_median, raw_median = statistics.median(portal_times), statistics.median(raw_times)
    return [
        {
            "name": "click -> workspace answering",
            "value": round(portal_median / raw_median, 3),
            "unit": "x",
            "baseline": (
                f"raw docker start {raw_median:.2f} s; portal {portal_median:.2f} s (max {max(portal_times):.2f})"
            ),
            "target": "<= 1.1",
        },
    ]


def workspace_op_count(workspace: Any) -> int:
    from portal.models import Operation

    return Operation.objects.filter(target_type="workspace", target_id=str(workspace.pk)).count()


def reconcile_benchmark(count: int = 100) -> list[dict[str, Any]]:
    from hostops import docker as hd
    from hostops.types import ContainerSpec, GpuRequest
    from portal.models import Host, Quota, User
    from workspaces.models import Workspace
    from workspaces.reconcile import reconcile_host

    host, _ = Host.objects.get_or_create(name="benchrec", defaults={"queue": "host.benchrec", "docker_url": DOCKER_URL})
    Workspace.objects.filter(host=host).delete()
    names = []
    try:
        for i in range(count):
            user, _ = User.objects.get_or_create(username=f"rec{i:03d}", defaults={"email": f"rec{i}@bench.example"})
            Quota.objects.get_or_create(user=user, defaults=Quota.team_defaults())
            ws = Workspace.objects.create(
                owner=user,
                host=host,
                slug=f"rec{i:03d}",
                ssh_port=27000 + i,
                image=BASE_IMAGE,
                desired_state="stopped",
                state="stopped",
            )
            spec = ContainerSpec(
                name=f"ws-rec{i:03d}",
                image=BASE_IMAGE,
                hostname=f"rec{i:03d}",
                labels={"portal.managed": "true", "portal.workspace": str(ws.pk), "portal.host": host.name},
                environment={},
                user_uid=user.uid,
                user_gid=user.uid,
                mem_reservation=0,
                mem_limit=64 * M,
                memswap_limit=64 * M,
                cpuset_cpus="",
                pids_limit=64,
                gpus=GpuRequest(),
                mounts=(),
                ports={},
                command=("sleep", "infinity"),
            )
            hd.ensure_container(spec, docker_url=DOCKER_URL, start=False)
            names.append(spec.name)
        calls = _count_api_calls()
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            reconcile_host(Host.objects.get(pk=host.pk))
            timings.append(time.perf_counter() - t0)
        per_pass = calls() / 3
    finally:
        for name in names:
            run(["docker", "rm", "-f", name], timeout=60, check=False)
        Workspace.objects.filter(host=host).delete()
    return [
        {
            "name": f"reconciler, {count} containers",
            "value": round(statistics.median(timings), 3),
            "unit": "s",
            "baseline": f"{per_pass:.0f} Docker API call(s) per pass",
            "target": "<= 1",
        },
    ]


def _count_api_calls() -> Callable[[], int]:
    """Count HTTP requests the docker SDK sends from now on."""
    from hostops import docker as hd

    api = hd._client(DOCKER_URL).api
    counter = {"n": 0}
    original = api.send

    def counting_send(*args: Any, **kwargs: Any) -> Any:
        counter["n"] += 1
        return original(*args, **kwargs)

    api.send = counting_send  # type: ignore[method-assign]
    return lambda: counter["n"]


def benchmarks() -> list[dict[str, Any]]:
    return start_benchmark() + reconcile_benchmark()
