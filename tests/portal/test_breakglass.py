"""The admins' password login for when Google is down: admins only, rate limited, audited."""

from __future__ import annotations

import time
import uuid

import pytest
from django.test import Client

from portal.models import AuditEvent, User
from portal.services import member_suspend
from tests.factories import UserFactory

URL = "/login/admin/"
PASSWORD = "correct horse battery staple"
GENERIC = "That username and password don&#x27;t match an admin account."


@pytest.fixture(autouse=True)
def _own_cache_namespace(settings) -> None:
    # Counters live in the real Redis cache; a fresh key prefix per test keeps them apart
    # without flushing a database other runs may share.
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"t{uuid.uuid4().hex}"}}
    settings.BREAKGLASS_MAX_FAILURES = 3
    settings.BREAKGLASS_WINDOW_SECONDS = 900


@pytest.fixture
def root(db: None) -> User:
    user = UserFactory(username="root_admin", is_staff=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def _attempt(client: Client, username: str, password: str, ip: str = "192.0.2.10", **extra: str):
    return client.post(URL, {"username": username, "password": password, **extra}, REMOTE_ADDR=ip)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _audit(outcome: str, label: str = "root_admin") -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="login.breakglass", outcome=outcome, actor_label=label))


def test_an_admin_signs_in_with_their_password(client: Client, root: User) -> None:
    response = _attempt(client, "root_admin", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(root.pk)
    [event] = _audit("ok")
    assert event.actor == root
    assert event.ip == "192.0.2.10"


def test_it_returns_to_a_safe_next_page_only(client: Client, root: User) -> None:
    assert _attempt(client, "root_admin", PASSWORD, next="/django-admin/")["Location"] == "/django-admin/"
    client.post("/logout/")
    assert _attempt(client, "root_admin", PASSWORD, next="https://evil.example/")["Location"] == "/"


def test_a_wrong_password_gets_the_generic_message_and_an_audit_row(client: Client, root: User) -> None:
    response = _attempt(client, "root_admin", "guess")

    assert response.status_code == 200
    body = response.content.decode()
    assert GENERIC in body
    assert 'role="alert"' in body
    assert not _signed_in(client)
    [event] = _audit("refused")
    assert event.detail == {"reason": "bad login"}
    assert event.ip == "192.0.2.10"


def test_an_unknown_username_gets_the_same_message(client: Client, root: User) -> None:
    response = _attempt(client, "nobody", "guess")

    assert GENERIC in response.content.decode()
    assert len(_audit("refused", "nobody")) == 1


def test_a_member_without_admin_rights_is_refused_even_with_the_right_password(client: Client, alice: User) -> None:
    alice.set_password(PASSWORD)
    alice.save()

    response = _attempt(client, "alice", PASSWORD)

    assert response.status_code == 200
    assert GENERIC in response.content.decode()
    assert not _signed_in(client)
    assert len(_audit("refused", "alice")) == 1


def test_a_suspended_admin_is_refused(client: Client, root: User, admin_user: User) -> None:
    member_suspend(user=root, actor=admin_user)

    response = _attempt(client, "root_admin", PASSWORD)

    assert GENERIC in response.content.decode()
    assert not _signed_in(client)


def test_blank_fields_get_a_message_next_to_each_and_count_as_no_attempt(client: Client, root: User) -> None:
    response = _attempt(client, "", "")

    body = response.content.decode()
    assert response.status_code == 200
    assert body.count("This field is required.") == 2
    assert 'aria-invalid="true"' in body
    assert 'aria-describedby="id_username_error"' in body
    assert not _signed_in(client)
    assert not AuditEvent.objects.exists()


def test_repeated_failures_lock_the_name_out_even_with_the_right_password(client: Client, root: User) -> None:
    for _ in range(3):
        assert _attempt(client, "root_admin", "guess").status_code == 200

    response = _attempt(client, "root_admin", PASSWORD)

    assert response.status_code == 429
    assert "Too many failed attempts; try again in 15 minutes." in response.content.decode()
    assert not _signed_in(client)
    assert [e.detail["reason"] for e in _audit("refused")] == ["locked out", "bad login", "bad login", "bad login"]


def test_the_lockout_is_per_address_and_name(client: Client, root: User) -> None:
    other_admin = UserFactory(username="other_admin", is_staff=True)
    other_admin.set_password(PASSWORD)
    other_admin.save()
    for _ in range(3):
        _attempt(client, "root_admin", "guess")

    assert _attempt(Client(), "root_admin", PASSWORD, ip="198.51.100.7").status_code == 302
    assert _attempt(Client(), "other_admin", PASSWORD).status_code == 302


def test_spraying_many_names_from_one_address_locks_that_address(client: Client, root: User) -> None:
    for n in range(9):  # three times the per-name limit, never the same name twice
        _attempt(client, f"guess{n}", "guess")

    locked = _attempt(client, "root_admin", PASSWORD)
    elsewhere = _attempt(Client(), "root_admin", PASSWORD, ip="198.51.100.7")

    assert locked.status_code == 429
    assert elsewhere.status_code == 302


def test_the_lockout_ends_when_the_window_has_passed(client: Client, root: User, settings) -> None:
    settings.BREAKGLASS_WINDOW_SECONDS = 2
    for _ in range(3):
        _attempt(client, "root_admin", "guess")
    response = _attempt(client, "root_admin", PASSWORD)
    assert response.status_code == 429
    assert "try again in 1 minute." in response.content.decode()

    time.sleep(2.2)

    assert _attempt(client, "root_admin", PASSWORD).status_code == 302


def test_a_successful_login_forgives_earlier_mistakes_of_that_name(client: Client, root: User) -> None:
    _attempt(client, "root_admin", "typo")
    _attempt(client, "root_admin", "typo")
    assert _attempt(client, "root_admin", PASSWORD).status_code == 302
    client.post("/logout/")

    _attempt(client, "root_admin", "typo")
    _attempt(client, "root_admin", "typo")

    assert _attempt(client, "root_admin", PASSWORD).status_code == 302


def test_signed_in_admins_go_on_to_the_next_page_and_members_to_the_dashboard(
    admin_client: Client, alice_client: Client
) -> None:
    assert admin_client.get(URL + "?next=/django-admin/")["Location"] == "/django-admin/"
    assert alice_client.get(URL + "?next=/django-admin/")["Location"] == "/"


def test_the_page_offers_username_and_password_fields(client: Client, db: None) -> None:
    body = client.get(URL + "?next=/django-admin/").content.decode()

    assert 'autocomplete="username"' in body
    assert 'autocomplete="current-password"' in body
    assert '<input type="hidden" name="next" value="/django-admin/">' in body


def test_django_admins_login_is_the_breakglass_page(client: Client, root: User) -> None:
    response = client.get("/django-admin/login/?next=/django-admin/portal/user/")
    assert response.status_code == 302
    assert response["Location"] == "/login/admin/?next=/django-admin/portal/user/"

    # Posting credentials to the admin's own URL logs nobody in.
    client.post("/django-admin/login/", {"username": "root_admin", "password": PASSWORD})
    assert not _signed_in(client)


def test_an_anonymous_visit_to_the_admin_ends_on_the_breakglass_page(client: Client, db: None) -> None:
    response = client.get("/django-admin/", follow=True)

    assert response.redirect_chain[-1][0] == "/login/admin/?next=/django-admin/"
    assert "Admin sign-in" in response.content.decode()


def test_a_member_visiting_the_admin_lands_on_the_dashboard_without_a_loop(alice_client: Client) -> None:
    response = alice_client.get("/django-admin/", follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"


def test_a_forged_forwarded_header_does_not_escape_the_lockout(client: Client, root: User) -> None:
    # Without a trusted proxy in front, each attempt claiming a new address is still counted
    # at the address it came from.
    for n in range(3):
        client.post(
            URL,
            {"username": "root_admin", "password": "guess"},
            REMOTE_ADDR="192.0.2.10",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        )
    response = client.post(
        URL,
        {"username": "root_admin", "password": PASSWORD},
        REMOTE_ADDR="192.0.2.10",
        HTTP_X_FORWARDED_FOR="203.0.113.200",
    )
    assert response.status_code == 429
    assert not _signed_in(client)
