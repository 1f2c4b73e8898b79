"""Lifecycle against the real dockerd and the real slim image: the service creates the
Operation, the test calls the task function directly (no eager mode), and the container,
its cgroup limits, SSH login and the database are checked."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import docker as docker_sdk
import pytest

from portal.models import Host, Operation, User
from tests.sshclient import ssh_argv, ssh_run
from workspaces import services, tasks
from workspaces.activity import collect_stats, workspace_in_use
from workspaces.desktop import desktop_password
from workspaces.models import Workspace

pytestmark = pytest.mark.docker

M = 1024**2
# Prints the environment of the image's supervisor (the CMD the entrypoint execs; PID 1 is
# docker-init, which starts the entrypoint with the container's full environment).
SUPERVISOR_ENVIRON = """
import os, sys
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if pid not in ("1", str(os.getpid())) and b"portal-supervise" in open(f"/proc/{pid}/cmdline", "rb").read():
            sys.stdout.buffer.write(open(f"/proc/{pid}/environ", "rb").read())
    except OSError:
        pass
"""


def create_and_run(member: User, host: Host, django_capture_on_commit_callbacks, name: str = "") -> Workspace:
    with django_capture_on_commit_callbacks() as callbacks:
        op = services.workspace_create(owner=member, actor=member, host=host, name=name)
    assert len(callbacks) == 1  # the task is enqueued only after commit
    tasks.workspace_create_task(op.pk)
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, f"{op.message}\n{op.log}\n{op.error}"
    return Workspace.objects.with_related().get(pk=op.target_id)


def cgroup_value(container, v1: str, v2: str) -> str:  # type: ignore[no-untyped-def]
    """A cgroup file as the container sees it (v1 and v2 name them differently)."""
    code, output = container.exec_run(["sh", "-c", f"cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}"])
    assert code == 0, output
    return output.decode().strip()


def mount_source(container, target: str) -> Path:  # type: ignore[no-untyped-def]
    return Path(next(m["Source"] for m in container.attrs["Mounts"] if m["Destination"] == target))


def test_starting_a_workspace_creates_a_container_limited_by_the_quota(
    engine: docker_sdk.DockerClient,
    member: User,
    member_key: Path,
    host: Host,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)

    assert workspace.state == Workspace.State.RUNNING
    assert workspace.desired_state == Workspace.Desired.RUNNING
    assert workspace.started_at is not None
    assert workspace.last_activity_at is not None
    container = engine.containers.get(f"ws-{member.username}")
    assert workspace.container_id == container.id
    config = container.attrs["HostConfig"]
    assert config["Memory"] == 256 * M
    assert config["MemoryReservation"] == 64 * M
    assert config["MemorySwap"] == 320 * M
    assert config["CpusetCpus"] == "0"
    assert config["PidsLimit"] == 512
    assert config["PortBindings"]["22/tcp"][0]["HostPort"] == str(workspace.ssh_port)
    assert config["RestartPolicy"]["Name"] == "unless-stopped"
    assert not config.get("Privileged")
    assert all("docker.sock" not in (m.get("Source") or "") for m in container.attrs["Mounts"])
    assert cgroup_value(container, "memory/memory.limit_in_bytes", "memory.max") == str(256 * M)
    assert cgroup_value(container, "memory/memory.soft_limit_in_bytes", "memory.low") == str(64 * M)
    assert cgroup_value(container, "cpuset/cpuset.cpus", "cpuset.cpus.effective") == "0"
    swap = cgroup_value(container, "memory/memory.memsw.limit_in_bytes", "memory.swap.max")
    assert swap in (str(320 * M), str(64 * M))  # v1 counts memory + swap, v2 swap alone


def test_the_member_logs_in_with_their_key_and_has_their_uid(
    engine: docker_sdk.DockerClient,
    member: User,
    member_key: Path,
    host: Host,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)

    result = ssh_run(member_key, workspace.ssh_port, member.username, "id")

    assert result.returncode == 0, result.stderr
    assert f"uid={member.uid}({member.username}) gid={member.gid}({member.username})" in result.stdout
    home_path = mount_source(engine.containers.get(workspace.container_name), f"/home/{member.username}")
    assert home_path.stat().st_uid == member.uid


def test_an_open_ssh_session_counts_as_activity_and_none_as_idle(
    engine: docker_sdk.DockerClient,
    member: User,
    member_key: Path,
    host: Host,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    assert workspace_in_use(workspace) is False  # the health check's own connections don't count

    session = subprocess.Popen(
        ssh_argv(member_key, workspace.ssh_port, member.username, "sleep", "20"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not workspace_in_use(workspace) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert workspace_in_use(workspace) is True
    finally:
        session.kill()
        session.wait()


def test_starting_twice_leaves_one_container(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    first_id = workspace.container_id

    with django_capture_on_commit_callbacks():
        op = services.workspace_start(workspace=workspace, actor=member)
    tasks.workspace_start_task(op.pk)
    tasks.workspace_start_task(op.pk)  # a second delivery of the same message

    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED
    assert op.attempts == 1
    named = engine.containers.list(all=True, filters={"name": f"^/ws-{member.username}$"})
    assert [c.id for c in named] == [first_id]


def test_stop_keeps_the_container_and_start_brings_it_back(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks():
        stop = services.workspace_stop(workspace=workspace, actor=member)
    tasks.workspace_stop_task(stop.pk)
    workspace.refresh_from_db()
    assert workspace.state == Workspace.State.STOPPED
    assert engine.containers.get(workspace.container_name).status == "exited"

    with django_capture_on_commit_callbacks():
        start = services.workspace_start(workspace=workspace, actor=member)
    tasks.workspace_start_task(start.pk)
    workspace.refresh_from_db()
    assert workspace.state == Workspace.State.RUNNING
    assert engine.containers.get(workspace.container_name).id == workspace.container_id


def test_rebuild_makes_a_new_container_and_keeps_home_port_and_host_keys(
    engine: docker_sdk.DockerClient,
    member: User,
    member_key: Path,
    host: Host,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    marker = ssh_run(
        member_key, workspace.ssh_port, member.username, "touch ~/kept && cat /etc/ssh/keys/ssh_host_ed25519_key.pub"
    )
    assert marker.returncode == 0, marker.stderr

    with django_capture_on_commit_callbacks():
        op = services.workspace_rebuild(workspace=workspace, actor=member)
    tasks.workspace_rebuild_task(op.pk)

    rebuilt = Workspace.objects.get(pk=workspace.pk)
    assert rebuilt.state == Workspace.State.RUNNING
    assert rebuilt.container_id != workspace.container_id
    assert rebuilt.ssh_port == workspace.ssh_port
    after = ssh_run(
        member_key, workspace.ssh_port, member.username, "ls ~/kept && cat /etc/ssh/keys/ssh_host_ed25519_key.pub"
    )
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[-1] == marker.stdout.splitlines()[-1]


def test_remove_deletes_the_container_and_the_row_but_keeps_the_home(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    admin_user: User,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    home = mount_source(engine.containers.get(workspace.container_name), f"/home/{member.username}")

    with django_capture_on_commit_callbacks():
        op = services.workspace_remove(workspace=workspace, actor=admin_user)
    tasks.workspace_remove_task(op.pk)

    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED
    assert not Workspace.objects.filter(pk=workspace.pk).exists()
    assert not engine.containers.list(all=True, filters={"name": f"^/ws-{member.username}$"})
    assert home.is_dir()


def test_remove_with_delete_data_deletes_home_scratch_and_the_ssh_host_keys(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    admin_user: User,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    sources = [
        m["Source"] for m in engine.containers.get(workspace.container_name).attrs["Mounts"] if m["Type"] == "bind"
    ]

    with django_capture_on_commit_callbacks():
        op = services.workspace_remove(workspace=workspace, actor=admin_user, delete_data=True)
    tasks.workspace_remove_task(op.pk, delete_data=True)

    home, scratch = (s for s in sources if s.endswith(member.username))
    assert not Path(home).exists()
    assert not Path(scratch).exists()
    datasets = next(s for s in sources if not s.endswith(member.username))
    assert Path(datasets).is_dir()
    assert engine.volumes.list(filters={"name": f"{workspace.container_name}-sshkeys"}) == []
    assert "deleted volume" in Operation.objects.get(pk=op.pk).log


def test_a_missing_image_fails_in_words_and_changes_nothing(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    ws_settings,
    django_capture_on_commit_callbacks,
) -> None:
    ws_settings.WORKSPACE_IMAGE = "portal/no-such-image:never"
    with django_capture_on_commit_callbacks():
        op = services.workspace_create(owner=member, actor=member, host=host)
    tasks.workspace_create_task(op.pk)

    op.refresh_from_db()
    workspace = Workspace.objects.get(pk=op.target_id)
    assert op.state == Operation.State.FAILED
    assert (
        op.message
        == f"The workspace image portal/no-such-image:never is not on server {host.name}; an admin must build it."
    )
    assert workspace.state == Workspace.State.ABSENT
    assert workspace.desired_state == Workspace.Desired.STOPPED
    assert workspace.state_reason == op.message
    assert not engine.containers.list(all=True, filters={"label": f"portal.host={host.name}"})


def test_stats_are_collected_for_running_workspaces(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)

    assert collect_stats(host) == 1

    workspace.refresh_from_db()
    assert workspace.cpu_percent is not None
    assert workspace.cpu_percent >= 0
    assert 0 < workspace.mem_usage < 256 * M
    assert workspace.stats_fresh


def test_restart_applies_a_key_added_since_the_start(
    engine: docker_sdk.DockerClient,
    member: User,
    member_key: Path,
    host: Host,
    tmp_path: Path,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    from portal.models import SSHKey
    from portal.sshkeys import parse_public_key
    from tests.workspaces.conftest import SSH_KEYGEN

    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    new_key = tmp_path / "second"
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(new_key)], check=True)
    parsed = parse_public_key(new_key.with_suffix(".pub").read_text())
    SSHKey.objects.create(
        user=member, name="second", key_type=parsed.key_type, bits=parsed.bits,
        fingerprint=parsed.fingerprint, public_key=parsed.canonical,
    )  # fmt: skip
    assert ssh_run(new_key, workspace.ssh_port, member.username, "true").returncode != 0

    with django_capture_on_commit_callbacks():
        op = services.workspace_restart(workspace=workspace, actor=member)
    tasks.workspace_restart_task(op.pk)

    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, f"{op.log}\n{op.error}"
    assert Workspace.objects.get(pk=workspace.pk).state == Workspace.State.RUNNING
    assert ssh_run(new_key, workspace.ssh_port, member.username, "true").returncode == 0


def test_a_redelivered_create_takes_over_from_a_killed_worker(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    """The first worker claimed the job and created the container, then died (its lock went
    with its database connection); the redelivered message finishes the same job."""
    from hostops import docker as hd
    from portal.operations import operation_claim
    from workspaces.folders import prepare_folders
    from workspaces.steps import Run, _spec

    with django_capture_on_commit_callbacks():
        op = services.workspace_create(owner=member, actor=member, host=host)
    assert operation_claim(op.pk)
    workspace = Workspace.objects.with_related().get(pk=op.target_id)
    Workspace.objects.filter(pk=workspace.pk).update(state=Workspace.State.CREATING)
    spec = _spec(Run(op=op, workspace=workspace))
    prepare_folders(spec=spec, uid=member.uid)
    first = hd.ensure_container(spec, docker_url=host.docker_url, start=False)

    tasks.workspace_create_task(op.pk)

    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, op.log
    assert "The previous worker stopped mid-job; resuming." in op.log
    named = engine.containers.list(all=True, filters={"name": f"^/{workspace.container_name}$"})
    assert [c.id for c in named] == [first.id]
    assert Workspace.objects.get(pk=workspace.pk).state == Workspace.State.RUNNING


def test_the_members_account_gets_the_desktop_password_and_services_never_see_it(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    container = engine.containers.get(workspace.container_name)
    check = (
        "import crypt, spwd, sys; stored = spwd.getspnam(sys.argv[1]).sp_pwdp;"
        "print(crypt.crypt(sys.argv[2], stored) == stored, crypt.crypt('wrong', stored) == stored)"
    )
    argv = ["python3", "-W", "ignore", "-c", check, member.username, desktop_password(workspace)]
    code, output = container.exec_run(argv)
    assert code == 0, output
    assert output.decode().split() == ["True", "False"]
    # The entrypoint unsets it before exec'ing the supervisor, so no service inherits it.
    code, environ = container.exec_run(["python3", "-c", SUPERVISOR_ENVIRON])
    assert code == 0, environ
    assert b"PORTAL_USER=" in environ
    assert b"PORTAL_DESKTOP_PASSWORD" not in environ
