"""Fixtures for hostops tests against the real dockerd and the offline-built test images."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hostops import docker as hd
from hostops.errors import EngineUnreachable
from hostops.run import run
from hostops.types import ContainerSpec, GpuRequest

DOCKER_URL = os.environ.get("PORTAL_TEST_DOCKER_URL", "unix:///var/run/docker.sock")
BASE_IMAGE = "portal/debian-base:bookworm"
SLIM_IMAGE = "portal/workspace-slim:test"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "workspaces" / "image" / "build-test-image.sh"
MIB = 1024 * 1024

SpecFactory = Callable[..., ContainerSpec]


@pytest.fixture(scope="session")
def docker_url() -> str:
    try:
        hd.engine_info(docker_url=DOCKER_URL)
    except EngineUnreachable:
        pytest.skip("dockerd is not running: scripts/test-setup.sh starts it")
    return DOCKER_URL


@pytest.fixture(scope="session")
def test_images(docker_url: str) -> None:
    """Build (or confirm, in well under a second) the debootstrapped base and the slim image."""
    run([str(BUILD_SCRIPT)], timeout=1800)


@pytest.fixture
def run_label(docker_url: str) -> Iterator[str]:
    """A label value unique to this test; every container carrying it is removed afterwards."""
    value = uuid.uuid4().hex[:10]
    yield value
    for state in hd.list_by_label(f"portal.test={value}", docker_url=docker_url):
        hd.remove(state.id, docker_url=docker_url, force=True, missing_ok=True)


@pytest.fixture
def make_spec(run_label: str, test_images: None) -> SpecFactory:
    """Build a small ContainerSpec: base image, sleep forever, 256M, CPU 0, no restart."""

    def factory(suffix: str = "c", **changes: object) -> ContainerSpec:
        name = f"h4t-{run_label}-{suffix}"
        spec = ContainerSpec(
            name=name,
            image=BASE_IMAGE,
            hostname=name,
            labels={"portal.test": run_label},
            environment={},
            user_uid=1234,
            user_gid=1234,
            mem_reservation=128 * MIB,
            mem_limit=256 * MIB,
            memswap_limit=512 * MIB,
            cpuset_cpus="0",
            pids_limit=256,
            gpus=GpuRequest(),
            mounts=(),
            ports={},
            restart_policy="no",
            command=("sleep", "infinity"),
        )
        return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]

    return factory


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An ed25519 key pair: the private key in a 0600 file, and the public key line."""
    return make_ssh_key(tmp_path_factory.mktemp("ssh") / "id_ed25519", comment="alice@test")


def make_ssh_key(path: Path, *, comment: str) -> tuple[Path, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    path.write_bytes(private)
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return path, f"{public.decode()} {comment}"


def member_env(user: str = "alice", uid: int = 1234, sudo: int = 0, keys: str = "") -> dict[str, str]:
    return {
        "PORTAL_USER": user,
        "PORTAL_UID": str(uid),
        "PORTAL_GID": str(uid),
        "PORTAL_SUDO": str(sudo),
        "PORTAL_AUTHORIZED_KEYS": keys,
    }
