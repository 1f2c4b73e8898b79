"""The slim workspace image (same entrypoint, sshd settings and health check as production),
started through hostops.docker on the real dockerd and reached with the real ssh client."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import requests

from hostops import docker as hd
from hostops.errors import HostOpsError
from hostops.run import run
from hostops.types import ContainerSpec, ContainerState, GpuRequest, Mount
from tests.hostops.conftest import MIB, SLIM_IMAGE, make_ssh_key, member_env
from tests.sshclient import ssh_run

pytestmark = pytest.mark.docker


def slim_spec(name: str, label: str, env: dict[str, str], **changes: object) -> ContainerSpec:
    spec = ContainerSpec(
        name=name, image=SLIM_IMAGE, hostname=name, labels={"portal.test": label}, environment=env,
        user_uid=int(env["PORTAL_UID"]), user_gid=int(env["PORTAL_GID"]), mem_reservation=128 * MIB,
        mem_limit=512 * MIB, memswap_limit=512 * MIB, cpuset_cpus="0", pids_limit=512, gpus=GpuRequest(),
        mounts=(), ports={"22/tcp": 0, "8888/tcp": 0}, restart_policy="no",
    )  # fmt: skip
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def start_healthy(spec: ContainerSpec, docker_url: str) -> ContainerState:
    hd.ensure_container(spec, docker_url=docker_url)
    return hd.wait_healthy(spec.name, docker_url=docker_url, timeout=90)


def ssh(state: ContainerState, key: Path, user: str, *command: str, check: bool = True) -> CompletedProcess[str]:
    result = ssh_run(key, state.ports["22/tcp"], user, *command)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def alice_workspace(
    docker_url: str, test_images: None, ssh_key: tuple[Path, str]
) -> Iterator[tuple[ContainerState, Path]]:
    """alice's running slim workspace (uid/gid 1234, no sudo) and her private key."""
    key_path, public = ssh_key
    label = uuid.uuid4().hex[:10]
    spec = slim_spec(f"h4t-{label}-alice", label, member_env(keys=f"\n{public}\n\n"))
    try:
        yield start_healthy(spec, docker_url), key_path
    finally:
        hd.remove(spec.name, docker_url=docker_url, force=True, missing_ok=True)


def test_alice_logs_in_over_ssh_with_her_key_and_has_her_ids(alice_workspace: tuple[ContainerState, Path]) -> None:
    state, key = alice_workspace
    assert state.health == "healthy"
    assert ssh(state, key, "alice", "id").stdout.startswith("uid=1234(alice) gid=1234(alice)")


def test_alice_has_no_sudo_without_portal_sudo(alice_workspace: tuple[ContainerState, Path]) -> None:
    state, key = alice_workspace
    result = ssh(state, key, "alice", "sudo", "-n", "true", check=False)
    assert result.returncode != 0
    assert "sudo" in result.stderr


def test_a_key_the_portal_did_not_install_is_refused(
    alice_workspace: tuple[ContainerState, Path], tmp_path: Path
) -> None:
    state, _key = alice_workspace
    other_key, _public = make_ssh_key(tmp_path / "mallory", comment="mallory@test")
    result = ssh(state, other_key, "alice", "id", check=False)
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_root_cannot_log_in_even_with_alices_key(alice_workspace: tuple[ContainerState, Path]) -> None:
    state, key = alice_workspace
    assert ssh(state, key, "root", "id", check=False).returncode == 255


def test_sshd_runs_with_the_portal_settings(alice_workspace: tuple[ContainerState, Path], docker_url: str) -> None:
    state, _key = alice_workspace
    code, output = hd.exec_run(state.name, ["/usr/sbin/sshd", "-T"], docker_url=docker_url, timeout=10)
    settings = set(output.splitlines())
    assert code == 0
    expected = {
        "passwordauthentication no", "permitrootlogin no", "allowusers alice",
        "kbdinteractiveauthentication no", "authorizedkeysfile /etc/ssh/authorized_keys.d/%u",
    }  # fmt: skip
    assert expected <= settings


def test_jupyter_answers_on_its_published_port(alice_workspace: tuple[ContainerState, Path]) -> None:
    state, _key = alice_workspace
    response = requests.get(f"http://127.0.0.1:{state.ports['8888/tcp']}/api", timeout=5)
    assert response.status_code == 200
    assert "version" in response.json()


def test_jupyter_keeps_its_origin_and_xsrf_checks(alice_workspace: tuple[ContainerState, Path]) -> None:
    state, _key = alice_workspace
    base = f"http://127.0.0.1:{state.ports['8888/tcp']}"
    assert requests.get(f"{base}/api/contents", timeout=5).status_code == 200
    cross_origin = requests.get(f"{base}/api/contents", headers={"Origin": "http://evil.example"}, timeout=5)
    assert cross_origin.status_code in (403, 404)
    assert requests.post(f"{base}/api/kernels", json={}, timeout=5).status_code == 403


def test_portal_sudo_gives_passwordless_sudo(
    docker_url: str, test_images: None, run_label: str, tmp_path: Path
) -> None:
    key, public = make_ssh_key(tmp_path / "bob", comment="bob@test")
    spec = slim_spec(f"h4t-{run_label}-bob", run_label, member_env(user="bob", uid=2345, sudo=1, keys=public))
    state = start_healthy(spec, docker_url)
    assert ssh(state, key, "bob", "sudo", "-n", "id", "-u").stdout == "0\n"
    assert ssh(state, key, "bob", "id", "-g").stdout == "2345\n"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"PORTAL_USER": "root"}, "existing account with uid 0"),
        ({"PORTAL_USER": "x;rm"}, "not a valid login name"),
        ({"PORTAL_USER": "daemon"}, "existing account with uid 1"),
        ({"PORTAL_UID": "65534", "PORTAL_GID": "65534"}, "uid 65534 already belongs to 'nobody'"),
        ({"PORTAL_UID": "999"}, "PORTAL_UID"),
        ({"PORTAL_GID": "12a4"}, "PORTAL_GID"),
        ({"PORTAL_SUDO": "yes"}, "PORTAL_SUDO"),
        ({"PORTAL_AUTHORIZED_KEYS": 'command="sh" ssh-ed25519 AAAAC3Nza alice'}, "not a plain public key"),
    ],
)
def test_the_entrypoint_refuses_bad_identities(
    docker_url: str, test_images: None, run_label: str, changes: dict[str, str], reason: str
) -> None:
    env = {**member_env(), **changes}
    spec = slim_spec(f"h4t-{run_label}-bad", run_label, member_env(), environment=env)
    with pytest.raises(HostOpsError, match="refusing to start") as excinfo:
        start_healthy(spec, docker_url)
    assert reason in str(excinfo.value)
    assert hd.inspect(spec.name, docker_url=docker_url).exit_code == 64


def test_an_empty_home_is_set_up_and_a_used_home_is_left_alone(
    docker_url: str, test_images: None, run_label: str, tmp_path: Path
) -> None:
    empty, used = tmp_path / "empty", tmp_path / "used"
    empty.mkdir()
    used.mkdir(mode=0o755)
    os.chown(used, 1234, 1234)
    (used / "restored-by-root.txt").write_text("a file root left here")
    first = slim_spec(f"h4t-{run_label}-h1", run_label, member_env(), mounts=(Mount(str(empty), "/home/alice"),))
    start_healthy(first, docker_url)
    assert (empty.stat().st_uid, empty.stat().st_gid, empty.stat().st_mode & 0o777) == (1234, 1234, 0o750)
    assert (empty / ".bashrc").stat().st_uid == 1234
    second = dataclasses.replace(first, name=f"h4t-{run_label}-h2", mounts=(Mount(str(used), "/home/alice"),))
    start_healthy(second, docker_url)
    assert used.stat().st_mode & 0o777 == 0o755
    assert (used / "restored-by-root.txt").stat().st_uid == 0
    assert not (used / ".bashrc").exists()


def test_host_keys_in_the_keys_volume_survive_recreation(
    docker_url: str, test_images: None, run_label: str, tmp_path: Path
) -> None:
    keys = tmp_path / "hostkeys"
    keys.mkdir()
    spec = slim_spec(f"h4t-{run_label}-k", run_label, member_env(), mounts=(Mount(str(keys), "/etc/ssh/keys"),))
    first = start_healthy(spec, docker_url)
    public = (keys / "ssh_host_ed25519_key.pub").read_text().split()[1]
    second = start_healthy(dataclasses.replace(spec, pids_limit=600), docker_url)
    assert second.id != first.id
    scan = run(["ssh-keyscan", "-t", "ed25519", "-p", str(second.ports["22/tcp"]), "127.0.0.1"], timeout=20)
    assert public in scan.stdout


def test_the_workspace_stops_when_jupyter_dies(docker_url: str, test_images: None, run_label: str) -> None:
    spec = slim_spec(f"h4t-{run_label}-j", run_label, member_env())
    start_healthy(spec, docker_url)
    kill_jupyter = 'for p in /proc/[0-9]*; do grep -qa jupyter-lab "$p/cmdline" && kill "${p#/proc/}"; done; true'
    hd.exec_run(spec.name, ["bash", "-c", kill_jupyter], docker_url=docker_url, timeout=10)
    deadline = time.monotonic() + 60  # the supervisor notices within seconds; slack for a loaded machine
    while hd.inspect(spec.name, docker_url=docker_url).running and time.monotonic() < deadline:
        time.sleep(0.2)
    state = hd.inspect(spec.name, docker_url=docker_url)
    assert state.status == "exited"
    assert state.exit_code not in (None, 0)
    assert "jupyter-lab exited" in hd.logs(spec.name, docker_url=docker_url, tail=50)
