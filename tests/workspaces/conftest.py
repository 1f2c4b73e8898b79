"""Fixtures for workspace tests: small quotas, folders under a tmp dir, a private Host row per
test (its name is the portal.host label, so the reconciler never sees other tests'
containers), unique member names, and cleanup of every container and volume made."""

from __future__ import annotations

import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker as docker_sdk
import pytest
from django.contrib.auth.models import AbstractBaseUser

from portal.models import Host, Quota, SSHKey, User
from portal.sshkeys import parse_public_key
from tests.conftest import DOCKER_URL, SLIM_IMAGE, remove_member_leftovers
from tests.factories import UserFactory
from workspaces.models import Workspace

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
M = 1024**2
G = 1024**3


@pytest.fixture
def ws_settings(settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Workspace settings for tests: folders under tmp, a random port range, the slim image."""
    base = random.randrange(20000, 32000, 100)  # below the ephemeral range (32768+) clients take ports from
    settings.STORAGE_ROOT = str(tmp_path)
    settings.WORKSPACE_HOME_ROOT = str(tmp_path / "homes")
    settings.WORKSPACE_SCRATCH_ROOT = str(tmp_path / "scratch")
    settings.WORKSPACE_DATASETS_PATH = str(tmp_path / "datasets")
    settings.WORKSPACE_SSH_PORT_BASE = base
    settings.WORKSPACE_SSH_PORT_MAX = base + 99
    settings.WORKSPACE_IMAGE = SLIM_IMAGE
    settings.WORKSPACE_SHM_SIZE = 64 * M
    settings.WORKSPACE_PIDS_LIMIT = 512
    settings.WORKSPACE_START_TIMEOUT = 90
    settings.WORKSPACE_IDLE_HOURS = 0
    return settings


@pytest.fixture
def host(db: None) -> Host:
    """A host of this test only, on the local engine, with a generous known size."""
    name = f"h5t-{uuid.uuid4().hex[:8]}"
    return Host.objects.create(
        name=name, queue=f"host.{name}", docker_url=DOCKER_URL, cpu_count=2, memory_bytes=8 * G, state=Host.State.ONLINE
    )


def small_quota(user: User, **overrides: object) -> Quota:
    values = {
        "mem_guarantee": 64 * M,
        "mem_limit": 256 * M,
        "swap": 64 * M,
        "cpuset": "0",
        "max_gpus": 0,
        "max_workspaces": 2,
    }
    values.update(overrides)
    Quota.objects.filter(user=user).update(**values)
    user.refresh_from_db()
    return Quota.objects.get(user=user)


@pytest.fixture
def member(db: None) -> User:
    """A member with a name no other test (or helper) uses, and a small quota."""
    user = UserFactory(username=f"m{uuid.uuid4().hex[:8]}")
    small_quota(user)
    return User.objects.select_related("quota").get(pk=user.pk)


@pytest.fixture
def member_key(member: User, tmp_path: Path) -> Path:
    """A real ed25519 key pair of the member; the public half is registered on the portal."""
    key = tmp_path / "id_ed25519"
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True)
    parsed = parse_public_key(key.with_suffix(".pub").read_text())
    SSHKey.objects.create(
        user=member,
        name="test",
        key_type=parsed.key_type,
        bits=parsed.bits,
        fingerprint=parsed.fingerprint,
        public_key=parsed.canonical,
    )
    return key


def make_workspace(
    owner: AbstractBaseUser, host: Host, *, name: str = "", port: int = 2300, **fields: object
) -> Workspace:
    """A workspace row without any container (for tests that don't start one)."""
    slug = (f"{owner.username}-{name}" if name else owner.username).replace("_", "-")
    return Workspace.objects.create(
        owner=owner, name=name, slug=slug, host=host, image=SLIM_IMAGE, ssh_port=port, **fields
    )


@pytest.fixture
def engine(
    docker_client: docker_sdk.DockerClient, slim_image: str, host: Host, ws_settings: object
) -> Iterator[docker_sdk.DockerClient]:
    """The real engine, with every container labelled for this test's host (and the SSH host
    key volumes of its workspaces) removed afterwards."""
    yield docker_client
    for container in docker_client.containers.list(all=True, filters={"label": f"portal.host={host.name}"}):
        container.remove(force=True)
    for username in User.objects.values_list("username", flat=True):  # this test's members only
        remove_member_leftovers(docker_client, username)


def worker_workspace_env(root: Path, port_base: int) -> dict[str, str]:
    """Workspace settings for a worker process, as environment variables (project/settings.py
    reads them): folders under ``root``, the slim image and a port range of its own."""
    return {
        "STORAGE_ROOT": str(root),
        "WORKSPACE_HOME_ROOT": str(root / "homes"),
        "WORKSPACE_SCRATCH_ROOT": str(root / "scratch"),
        "WORKSPACE_DATASETS_PATH": str(root / "datasets"),
        "WORKSPACE_IMAGE": SLIM_IMAGE,
        "WORKSPACE_SSH_PORT_BASE": str(port_base),
        "WORKSPACE_SSH_PORT_MAX": str(port_base + 99),
        "WORKSPACE_SHM_SIZE": "64M",
        "WORKSPACE_PIDS_LIMIT": "512",
        "WORKSPACE_START_TIMEOUT": "60",
    }


def use_worker_settings(settings, env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Give the test process the same workspace settings as its worker process."""
    for name in (
        "STORAGE_ROOT",
        "WORKSPACE_HOME_ROOT",
        "WORKSPACE_SCRATCH_ROOT",
        "WORKSPACE_DATASETS_PATH",
        "WORKSPACE_IMAGE",
    ):
        setattr(settings, name, env[name])
    for name in ("WORKSPACE_SSH_PORT_BASE", "WORKSPACE_SSH_PORT_MAX", "WORKSPACE_START_TIMEOUT"):
        setattr(settings, name, int(env[name]))
    return settings
