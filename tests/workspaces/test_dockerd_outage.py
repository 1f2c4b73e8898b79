"""A real outage: dockerd itself is stopped while a workspace runs, and started again.

The host must show unreachable with nothing lost (no workspace marked gone, no operation
started against a dead engine), and recover by itself once dockerd is back: the container
returns through its restart policy and the reconciler observes it running again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker as docker_sdk
import pytest

from portal.models import Host, Operation, User
from tests.workspaces.test_lifecycle_docker import create_and_run
from workspaces import reconcile
from workspaces.models import Workspace

pytestmark = pytest.mark.docker

PIDFILE = Path("/var/run/docker.pid")
DOCKER = shutil.which("docker") or "/usr/bin/docker"
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"


def _engine_answers() -> bool:
    return subprocess.run([DOCKER, "info"], capture_output=True, check=False, timeout=30).returncode == 0


def _wait(probe, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # a dockerd this test started is our child until reaped


# The environment of the dockerd this test stopped: the one it starts again gets it back, so
# it keeps what scripts/test-setup.sh gave it (the NVIDIA hook stand-in on its PATH).
_STOPPED_ENV: dict[str, str] = {}
SETUP_PIDFILE = Path("/run/portal-test/dockerd.pid")  # scripts/test-setup.sh: "a dockerd we started"


def _stop_dockerd() -> None:
    # Wait for the process itself to end: a new dockerd refuses to start beside its pid file.
    pid = int(PIDFILE.read_text())
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    _STOPPED_ENV.clear()
    _STOPPED_ENV.update(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    os.kill(pid, signal.SIGTERM)
    _wait(lambda: _gone(pid), 90, "dockerd to stop")


def _start_dockerd() -> None:
    # The same start as scripts/test-setup.sh, with the stopped dockerd's environment.
    was_ours = SETUP_PIDFILE.exists()
    with open("/var/log/dockerd.log", "ab") as log:
        process = subprocess.Popen([DOCKERD], stdout=log, stderr=log, start_new_session=True, env=_STOPPED_ENV or None)
    _wait(_engine_answers, 60, "dockerd to answer again")
    if was_ours:
        SETUP_PIDFILE.write_text(f"{process.pid}\n")


@pytest.fixture
def outage() -> Iterator[None]:
    """Always leaves dockerd running, whatever the test did."""
    if not PIDFILE.exists() or not _engine_answers():
        pytest.skip("needs a dockerd started by scripts/test-setup.sh (pid file at /var/run/docker.pid)")
    yield
    if not _engine_answers():
        _start_dockerd()


def test_the_host_shows_unreachable_while_dockerd_is_down_and_recovers_when_it_returns(
    outage: None,
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    operations_before = Operation.objects.count()

    _stop_dockerd()
    report = reconcile.reconcile_host(Host.objects.get(pk=host.pk))

    host.refresh_from_db()
    workspace.refresh_from_db()
    assert not report.reachable
    assert host.state == Host.State.UNREACHABLE
    assert (workspace.state, workspace.desired_state) == (Workspace.State.RUNNING, Workspace.Desired.RUNNING)
    assert Operation.objects.count() == operations_before  # nothing started against a dead engine

    _start_dockerd()
    # unless-stopped: the engine brings the container back by itself; the reconciler sees it.
    _wait(lambda: reconcile.reconcile_host(Host.objects.get(pk=host.pk)).reachable, 30, "the host to answer")
    host.refresh_from_db()
    assert host.state == Host.State.ONLINE
    container = engine.containers.get(workspace.container_name)
    _wait(lambda: (container.reload() or container.status) == "running", 60, "the workspace container")
    reconcile.reconcile_host(host)
    workspace.refresh_from_db()
    assert workspace.state == Workspace.State.RUNNING
    assert len(engine.containers.list(all=True, filters={"label": f"portal.workspace={workspace.pk}"})) == 1
