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


def _transactional_kind(item: pytest.Item) -> int:
    """0: runs inside a transaction (or needs no database); 1: a real-commit test whose database
    is restored from the serialized copy; 2: a real-commit test that starts from a flushed one."""
    fixtures = getattr(item, "fixturenames", ())
    marker = item.get_closest_marker("django_db")
    kwargs = marker.kwargs if marker else {}
    transactional = (
        "transactional_db" in fixtures
        or "live_server" in fixtures
        or bool(kwargs.get("transaction"))
        or bool(marker and marker.args and marker.args[0])
    )
    if not transactional:
        return 0
    return 1 if kwargs.get("serialized_rollback") or "django_db_serialized_rollback" in fixtures else 2


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-commit tests that restore the serialized database run before those that don't.
    After a plain one, Django flushes and re-creates content types (post_migrate) with new ids,
    and restoring the serialized copy on top of them then fails on their unique key; after a
    serialized one the flush leaves the tables empty, which both kinds start from cleanly."""
    items.sort(key=_transactional_kind)  # stable: the order inside each group is kept
