"""Google login through allauth against the local OpenID Connect provider (no browser):
Workspace domain only, verified addresses only, invited members only."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from django.test import Client
from pytest_django.asserts import assertTemplateUsed

from portal.models import AccessRequest, AuditEvent, Notification, User
from portal.services import member_invite, member_reactivate, member_suspend
from tests.factories import UserFactory
from tests.oidc import google_login, google_login_start, google_person, oidc_mock_server


@pytest.fixture(scope="session")
def oidc_mock() -> Iterator[str]:
    with oidc_mock_server() as url:
        yield url


@pytest.fixture
def invited_carol(admin_user: User) -> User:
    return member_invite(email="carol@corp.example", username="carol", actor=admin_user)


def _signed_in_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def _refusals(email: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="login.google", outcome="refused", actor_label=email))


def test_an_invited_member_signs_in_with_google_and_becomes_active(
    oidc_mock: str, client: Client, invited_carol: User
) -> None:
    google_person("carol-sub", email="carol@corp.example")

    response = google_login(client, "carol-sub")

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert _signed_in_user_id(client) == str(invited_carol.pk)
    invited_carol.refresh_from_db()
    assert invited_carol.status == User.Status.ACTIVE
    assert AuditEvent.objects.filter(action="member.first_login", actor=invited_carol).count() == 1
    assert SocialAccount.objects.get(user=invited_carol).uid == "carol-sub"
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert "carol" in dashboard.content.decode()


def test_a_returning_member_is_found_by_their_google_account(
    oidc_mock: str, client: Client, invited_carol: User
) -> None:
    google_person("carol-sub", email="carol@corp.example")
    google_login(client, "carol-sub")
    client.post("/logout/")
    assert _signed_in_user_id(client) is None

    response = google_login(client, "carol-sub")

    assert response.status_code == 302
    assert _signed_in_user_id(client) == str(invited_carol.pk)
    assert SocialAccount.objects.filter(user=invited_carol).count() == 1
    assert AuditEvent.objects.filter(action="member.first_login").count() == 1


def test_google_login_returns_to_the_page_the_member_asked_for(
    oidc_mock: str, client: Client, invited_carol: User
) -> None:
    google_person("carol-sub", email="carol@corp.example")

    response = google_login(client, "carol-sub", next_url="/account/")

    assert response["Location"] == "/account/"


def test_an_uninvited_colleague_gets_the_access_requested_page_and_no_account(
    oidc_mock: str, client: Client, admin_user: User, alice: User
) -> None:
    second_admin = UserFactory(username="grace", is_staff=True)
    google_person("dave-sub", email="dave@corp.example", name="Dave Doe")

    response = google_login(client, "dave-sub")

    assert response.status_code == 200
    assertTemplateUsed(response, "portal/access_requested.html")
    assert "dave@corp.example" in response.content.decode()
    assert _signed_in_user_id(client) is None
    assert not User.objects.filter(email="dave@corp.example").exists()
    assert AccessRequest.objects.get(email="dave@corp.example").name == "Dave Doe"
    notified = set(Notification.objects.filter(title__contains="Dave Doe").values_list("user__username", flat=True))
    assert notified == {admin_user.username, second_admin.username}
    assert len(_refusals("dave@corp.example")) == 1


def test_asking_twice_records_one_access_request(oidc_mock: str, client: Client, admin_user: User) -> None:
    google_person("dave-sub", email="dave@corp.example")

    google_login(client, "dave-sub")
    google_login(client, "dave-sub")

    assert AccessRequest.objects.filter(email="dave@corp.example").count() == 1
    assert Notification.objects.filter(user=admin_user).count() == 1


@pytest.mark.parametrize(
    ("email", "hd"),
    [
        ("mallory@evil.example", "evil.example"),  # another Workspace
        ("mallory@gmail.com", None),  # a consumer account carries no hd claim
        ("carol@corp.example", "evil.example"),  # an invited address from the wrong tenant
        ("mallory@evil.example", "corp.example"),  # hd and address disagree
    ],
)
def test_it_refuses_accounts_outside_the_workspace_domain(
    oidc_mock: str, client: Client, invited_carol: User, email: str, hd: str | None
) -> None:
    google_person("outsider-sub", email=email, hd=hd)

    response = google_login(client, "outsider-sub")

    assert response.status_code == 403
    assertTemplateUsed(response, "portal/login_refused.html")
    assert "Only corp.example Google Workspace accounts may sign in." in response.content.decode()
    assert _signed_in_user_id(client) is None
    assert len(_refusals(email)) == 1
    assert not SocialAccount.objects.exists()
    assert not AccessRequest.objects.exists()
    invited_carol.refresh_from_db()
    assert invited_carol.status == User.Status.INVITED


def test_it_refuses_an_address_google_has_not_verified(oidc_mock: str, client: Client, invited_carol: User) -> None:
    google_person("carol-sub", email="carol@corp.example", email_verified=False)

    response = google_login(client, "carol-sub")

    assert response.status_code == 403
    assert "Google has not verified this e-mail address." in response.content.decode()
    assert _signed_in_user_id(client) is None
    assert len(_refusals("carol@corp.example")) == 1
    invited_carol.refresh_from_db()
    assert invited_carol.status == User.Status.INVITED


def test_it_refuses_a_suspended_member(oidc_mock: str, client: Client, invited_carol: User, admin_user: User) -> None:
    google_person("carol-sub", email="carol@corp.example")
    member_suspend(user=invited_carol, actor=admin_user, reason="left the team")

    response = google_login(client, "carol-sub")

    assert response.status_code == 403
    assert "This account is suspended." in response.content.decode()
    assert _signed_in_user_id(client) is None
    assert len(_refusals("carol@corp.example")) == 1


def test_a_member_suspended_after_linking_google_is_still_refused(
    oidc_mock: str, client: Client, invited_carol: User, admin_user: User
) -> None:
    google_person("carol-sub", email="carol@corp.example")
    google_login(client, "carol-sub")
    member_suspend(user=invited_carol, actor=admin_user)

    response = google_login(Client(), "carol-sub")

    assert response.status_code == 403
    assert len(_refusals("carol@corp.example")) == 1


def test_suspending_a_member_ends_the_session_they_already_have(
    oidc_mock: str, client: Client, invited_carol: User, admin_user: User
) -> None:
    google_person("carol-sub", email="carol@corp.example")
    google_login(client, "carol-sub")
    assert client.get("/").status_code == 200

    member_suspend(user=invited_carol, actor=admin_user)

    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    # Reactivating does not bring the old session back: its auth hash is stale.
    member_reactivate(user=invited_carol, actor=admin_user)
    assert client.get("/").status_code == 302


def test_a_member_cannot_link_a_second_google_account(oidc_mock: str, client: Client, invited_carol: User) -> None:
    google_person("carol-sub", email="carol@corp.example")
    google_login(client, "carol-sub")
    google_person("carol-other-sub", email="carol.other@corp.example")

    authorize_url = google_login_start(client, process="connect")
    consent = requests.post(authorize_url, data={"sub": "carol-other-sub"}, allow_redirects=False, timeout=5)
    callback = urlsplit(consent.headers["Location"])
    response = client.get(f"{callback.path}?{callback.query}")

    assert response.status_code == 403
    assert "Linking another Google account isn&#x27;t supported." in response.content.decode()
    assert list(SocialAccount.objects.values_list("uid", flat=True)) == ["carol-sub"]
    assert AuditEvent.objects.filter(action="login.google", outcome="refused", actor=invited_carol).count() == 1


def test_the_google_account_page_is_read_only(oidc_mock: str, client: Client, invited_carol: User) -> None:
    google_person("carol-sub", email="carol@corp.example")
    google_login(client, "carol-sub")

    body = client.get("/accounts/3rdparty/").content.decode()

    assert "You sign in with Google as" in body
    assert "carol@corp.example" in body
    assert "<form" not in body.split('<main id="main"')[1]


def test_denying_consent_at_google_shows_the_cancelled_page(db: None, client: Client) -> None:
    authorize_url = google_login_start(client)
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]

    # What Google sends back when the person clicks "Cancel" (the mock's deny drops the state).
    response = client.get(f"/accounts/google/login/callback/?error=access_denied&state={state}", follow=True)

    assert response.status_code == 200
    assertTemplateUsed(response, "socialaccount/login_cancelled.html")
    assert "Sign-in cancelled" in response.content.decode()
    assert _signed_in_user_id(client) is None


def test_a_callback_with_a_forged_state_fails_without_signing_in(db: None, client: Client) -> None:
    response = client.get("/accounts/google/login/callback/?code=stolen&state=forged")

    assert response.status_code == 401
    assertTemplateUsed(response, "socialaccount/authentication_error.html")
    assert "Sign-in failed" in response.content.decode()
    assert _signed_in_user_id(client) is None


def test_the_login_page_offers_google_for_the_workspace_domain(db: None, client: Client) -> None:
    response = client.get("/login/?next=/account/")

    body = response.content.decode()
    assert response.status_code == 200
    assert "Sign in with Google" in body
    assert "@corp.example" in body
    assert 'action="/accounts/google/login/?next=%2Faccount%2F"' in body
    assert 'href="/login/admin/?next=%2Faccount%2F"' in body


def test_the_login_page_says_when_google_is_not_configured(db: None, client: Client, settings) -> None:
    settings.GOOGLE_CLIENT_ID = ""

    body = client.get("/login/").content.decode()

    assert "Google sign-in isn't configured on this server." in body
    assert "Sign in with Google" not in body
    assert 'href="/login/admin/"' in body


def test_signed_in_members_skip_the_login_page(alice_client: Client) -> None:
    assert alice_client.get("/login/")["Location"] == "/"
    assert alice_client.get("/login/?next=/account/")["Location"] == "/account/"
    assert alice_client.get("/login/?next=https://evil.example/")["Location"] == "/"
    assert alice_client.get("/login/?next=/login/")["Location"] == "/"


def test_allauths_own_login_url_sends_visitors_to_the_portal_login(db: None, client: Client) -> None:
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    assert 'href="/login/"' in response.content.decode()


def test_signing_out_needs_a_post_and_ends_the_session(alice_client: Client) -> None:
    assert alice_client.get("/logout/").status_code == 405
    assert _signed_in_user_id(alice_client) is not None

    response = alice_client.post("/logout/", follow=True)

    assert response.redirect_chain[-1][0] == "/login/"
    assert "You have signed out." in response.content.decode()
    assert _signed_in_user_id(alice_client) is None
    assert alice_client.get("/").status_code == 302
