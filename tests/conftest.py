"""The shared cast: alice and bob are members, root_admin is an admin."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.models import User
from tests.factories import UserFactory

pytest_plugins = ["tests.worker"]


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
