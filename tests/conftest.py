"""The shared cast: alice and bob are members, ada (admin_user) is an admin; the real Docker engine."""

from __future__ import annotations

import os

import docker as docker_sdk
import pytest
from django.test import Client

from portal.models import User
from tests.factories import UserFactory

DOCKER_URL = os.environ.get("PORTAL_TEST_DOCKER_URL", "unix:///var/run/docker.sock")
SLIM_IMAGE = "portal/workspace-slim:test"

pytest_plugins = ["tests.worker"]

# restic 0.18 for every test of hostops.restic and the backups app (workers started by tests
# inherit it): scripts/test-setup.sh unpacks Debian trixie's package there, since Debian 12's
# own restic is 0.14. An explicit RESTIC_BINARY wins.
RESTIC_0_18 = "/usr/local/lib/portal-test/bin/restic"
if os.path.exists(RESTIC_0_18):
    os.environ.setdefault("RESTIC_BINARY", RESTIC_0_18)


@pytest.fixture
def alice(db: None) -> User:
    return UserFactory(username="alice", email="alice@corp.example", first_name="Alice")


@pytest.fixture
def bob(db: None) -> User:
    return UserFactory(username="bob", email="bob@corp.example", first_name="Bob")


@pytest.fixture
def admin_user(db: None) -> User:
    return UserFactory(username="ada", email="ada@corp.example", first_name="Ada", is_staff=True)


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob: User) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def admin_client(admin_user: User) -> Client:  # overrides pytest-django's superuser fixture
    client = Client()
    client.force_login(admin_user)
    return client


# --- the real Docker engine and the slim workspace image (workspaces and e2e tests) -------


@pytest.fixture(scope="session")
def docker_client() -> docker_sdk.DockerClient:
    try:
        client = docker_sdk.DockerClient(base_url=DOCKER_URL, timeout=60)
        client.ping()
    except docker_sdk.errors.DockerException:
        pytest.skip("dockerd is not running: scripts/test-setup.sh starts it")
    return client


@pytest.fixture(scope="session")
def slim_image(docker_client: docker_sdk.DockerClient) -> str:
    try:
        docker_client.images.get(SLIM_IMAGE)
    except docker_sdk.errors.ImageNotFound:
        pytest.skip(f"{SLIM_IMAGE} is not built: run workspaces/image/build-test-image.sh (make test does)")
    return SLIM_IMAGE


def remove_member_leftovers(engine: docker_sdk.DockerClient, username: str) -> None:
    """Everything a test member's workspaces left on the engine: containers, the SSH host key
    volume and their network."""
    for container in engine.containers.list(all=True, filters={"label": f"portal.owner={username}"}):
        container.remove(force=True)
    for volume in engine.volumes.list(filters={"name": f"ws-{username}-sshkeys"}):
        volume.remove(force=True)
    for network in engine.networks.list(filters={"label": f"portal.network-owner={username}"}):
        network.reload()
        for container in network.containers:
            network.disconnect(container, force=True)
        network.remove()
