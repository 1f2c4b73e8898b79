"""The main job end to end: a member with a registered SSH key clicks "Create and start my
workspace" in a real Chromium, watches the progress bar while a real Celery worker process
creates the container on the real dockerd, and ends with a running card. Then the container's
limits are read back from the engine and from the kernel's cgroup files, and a real ssh client
logs in with the member's key and sees their UID and GID.

The live server runs in this process, the worker in another: the workspace settings reach the
worker through its environment (celery_worker_env), the same values as this process uses.
"""

from __future__ import annotations

import random
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker as docker_sdk
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Locator, Page, expect

from portal.models import Operation, Quota, User
from portal.services import sshkey_add
from portal.sshkeys import parse_public_key
from tests.conftest import remove_member_leftovers
from tests.factories import UserFactory
from tests.sshclient import ssh_run
from tests.worker import WorkerProcess
from tests.workspaces.conftest import (
    small_quota,
    use_worker_settings,
    worker_workspace_env,
)
from workspaces.models import Workspace

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.docker,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SHOTS = Path(__file__).parent / "screenshots"
PORT_BASE = random.randrange(20000, 32000, 100)
CGROUP = Path("/sys/fs/cgroup")
M = 1024**2


@pytest.fixture(scope="module")
def celery_worker_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every worker of this module gets the workspace settings the test process uses."""
    return worker_workspace_env(tmp_path_factory.mktemp("ws-e2e"), PORT_BASE)


@pytest.fixture
def same_settings(settings, celery_worker_env: dict[str, str]):  # type: ignore[no-untyped-def]
    return use_worker_settings(settings, celery_worker_env)


@pytest.fixture(scope="module")
def engine(docker_client: docker_sdk.DockerClient, slim_image: str) -> docker_sdk.DockerClient:
    """The real engine with the slim image on it (the fixtures skip, saying what is missing)."""
    return docker_client


@pytest.fixture
def member(db: None, engine: docker_sdk.DockerClient) -> Iterator[User]:
    """A member with a small quota and a name nobody else uses; their containers and SSH
    host key volume are removed after the test."""
    user: User = UserFactory(username=f"e{uuid.uuid4().hex[:8]}", first_name="Erin")
    small_quota(user, mem_guarantee=64 * M, mem_limit=256 * M, swap=64 * M, cpuset="0")
    yield user
    remove_member_leftovers(engine, user.username)


@pytest.fixture
def member_key(member: User, tmp_path: Path) -> Path:
    """A fresh ed25519 key pair; the public half is registered on the member's account."""
    private = Ed25519PrivateKey.generate()
    key_file = tmp_path / "id_ed25519"
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    sshkey_add(user=member, name="laptop", parsed=parse_public_key(f"{public.decode()} erin@laptop"))
    return key_file


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000


def cgroup(container_id: str, v1: str, v2: str) -> str | None:
    """A cgroup file of the container as the host kernel has it (cgroupfs driver; v1 names,
    or the v2 name under /sys/fs/cgroup/docker/<id>/); None when the kernel has no such file."""
    controller, name = v1.split("/")
    for path in (CGROUP / controller / "docker" / container_id / name, CGROUP / "docker" / container_id / v2):
        if path.exists():
            return path.read_text().strip()
    return None


def ssh_id(key: Path, port: int, username: str) -> subprocess.CompletedProcess[str]:
    return ssh_run(key, port, username, "id")


def click_create_and_watch(page: Page) -> Locator:
    """Click the dashboard's create button and see the card's progress bar; returns the card."""
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Erin")
    page.get_by_role("button", name="Create and start my workspace").click()
    card = page.locator("section.ws-card")
    progress = card.get_by_role("progressbar", name="create progress")
    expect(progress).to_be_visible()
    shoot(page, "workspace-starting.png")
    return card


def assert_container_matches_quota(engine: docker_sdk.DockerClient, workspace: Workspace, quota: Quota) -> str:
    container = engine.containers.get(workspace.container_name)
    assert container.id == workspace.container_id
    config = container.attrs["HostConfig"]
    assert config["Memory"] == quota.mem_limit == 256 * M
    assert config["MemoryReservation"] == quota.mem_guarantee == 64 * M
    assert config["MemorySwap"] == quota.mem_limit + quota.swap
    assert config["CpusetCpus"] == quota.cpuset == "0"
    assert config["PortBindings"]["22/tcp"][0]["HostPort"] == str(workspace.ssh_port)
    assert PORT_BASE <= workspace.ssh_port <= PORT_BASE + 99
    return str(container.id)


def assert_cgroups_match_quota(container_id: str, quota: Quota) -> None:
    assert cgroup(container_id, "memory/memory.limit_in_bytes", "memory.max") == str(quota.mem_limit)
    assert cgroup(container_id, "memory/memory.soft_limit_in_bytes", "memory.low") == str(quota.mem_guarantee)
    assert cgroup(container_id, "cpuset/cpuset.cpus", "cpuset.cpus") == quota.cpuset
    swap = cgroup(container_id, "memory/memory.memsw.limit_in_bytes", "memory.swap.max")
    # v1 counts memory plus swap; v2 swap alone; absent when the kernel doesn't account swap.
    assert swap in (str(quota.mem_limit + quota.swap), str(quota.swap), None)


def test_a_member_starts_their_workspace_from_the_dashboard_and_logs_in_with_ssh(
    celery_worker_process: WorkerProcess,
    page: Page,
    sign_in_as: Callable[[User], None],
    member: User,
    member_key: Path,
    engine: docker_sdk.DockerClient,
    same_settings: object,
) -> None:
    sign_in_as(member)

    card = click_create_and_watch(page)

    expect(card.locator(".card-head .pill")).to_have_text("Running", timeout=90_000)
    expect(card.get_by_role("progressbar", name="create progress")).to_have_count(0)
    expect(card.get_by_role("link", name="SSH / X2Go")).to_be_visible()
    shoot(page, "workspace-running.png")
    workspace = Workspace.objects.with_related().get(owner=member)
    op = Operation.objects.get(owner=member, kind="create")
    assert op.state == Operation.State.SUCCEEDED, f"{op.log}\n{op.error}\n{celery_worker_process.log()[-3000:]}"
    assert workspace.state == Workspace.State.RUNNING
    expect(card).to_contain_text(f"ssh -p {workspace.ssh_port} {member.username}@")
    quota = Quota.objects.get(user=member)
    container_id = assert_container_matches_quota(engine, workspace, quota)
    assert_cgroups_match_quota(container_id, quota)

    result = ssh_id(member_key, workspace.ssh_port, member.username)

    assert result.returncode == 0, result.stderr
    assert f"uid={member.uid}({member.username}) gid={member.gid}(" in result.stdout
    card.get_by_role("link", name="SSH / X2Go").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(workspace.container_name)
    expect(page.get_by_label("SSH config snippet")).to_contain_text(f"Port {workspace.ssh_port}")
    expect(page.locator("main")).not_to_contain_text("no SSH key")
    shoot(page, "workspace-connect.png")
