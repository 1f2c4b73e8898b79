"""API tokens and feed tokens: only a digest is kept, the secret is shown once, a member sees
and revokes only their own, and a revoked token or a suspended member's opens nothing."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gpus.models import Token
from gpus.tokens import token_authenticate, token_create, token_revoke
from portal.models import AuditEvent, User

pytestmark = pytest.mark.django_db


def test_a_new_token_keeps_only_the_digest_and_the_first_characters(alice: User) -> None:
    token, secret = token_create(user=alice, kind=Token.Kind.API, name="laptop", actor=alice)
    assert secret.startswith("gpa_")
    assert len(secret) > 40
    token.refresh_from_db()
    assert token.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert token.prefix == secret[:12]
    stored = [str(value) for value in Token.objects.values().get(pk=token.pk).values()]
    assert not any(secret in value for value in stored)


def test_each_kind_has_its_prefix_and_two_tokens_differ(alice: User) -> None:
    _, feed = token_create(user=alice, kind=Token.Kind.FEED, name="cal", actor=alice)
    _, team = token_create(user=alice, kind=Token.Kind.TEAM_FEED, name="team", actor=alice)
    _, other = token_create(user=alice, kind=Token.Kind.TEAM_FEED, name="team 2", actor=alice)
    assert feed.startswith("gpf_")
    assert team.startswith("gpt_")
    assert team != other


def test_an_unknown_kind_is_refused(alice: User) -> None:
    with pytest.raises(ValueError, match="unknown token kind"):
        token_create(user=alice, kind="root", name="x", actor=alice)
    assert not Token.objects.exists()


def test_creating_and_revoking_are_audited_without_the_secret(alice: User) -> None:
    token, secret = token_create(user=alice, kind=Token.Kind.API, name="laptop", actor=alice)
    token_revoke(token=token, actor=alice)
    token_revoke(token=token, actor=alice)  # a second revoke changes nothing
    events = list(AuditEvent.objects.filter(target_type="token").order_by("pk"))
    assert [e.action for e in events] == ["token.create", "token.revoke"]
    assert all(e.actor == alice for e in events)
    assert all(secret not in str(e.detail) and secret not in e.target_label for e in events)


def test_authenticate_finds_the_token_by_its_secret_and_kind(alice: User) -> None:
    token, secret = token_create(user=alice, kind=Token.Kind.API, name="laptop", actor=alice)
    assert token_authenticate(secret, Token.Kind.API) == token
    assert token_authenticate(secret, Token.Kind.FEED) is None
    assert token_authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B"), Token.Kind.API) is None
    assert token_authenticate("", Token.Kind.API) is None
    assert token_authenticate("gpa_" + "x" * 500, Token.Kind.API) is None


def test_a_revoked_token_opens_nothing(alice: User) -> None:
    token, secret = token_create(user=alice, kind=Token.Kind.API, name="laptop", actor=alice)
    token_revoke(token=token, actor=alice)
    assert token_authenticate(secret, Token.Kind.API) is None


def test_a_suspended_members_token_opens_nothing(alice: User) -> None:
    _, secret = token_create(user=alice, kind=Token.Kind.API, name="laptop", actor=alice)
    User.objects.filter(pk=alice.pk).update(is_active=False, status=User.Status.SUSPENDED)
    assert token_authenticate(secret, Token.Kind.API) is None


def test_last_use_is_written_at_most_once_a_minute(alice: User) -> None:
    token, secret = token_create(user=alice, kind=Token.Kind.API, name="laptop", actor=alice)
    token_authenticate(secret, Token.Kind.API)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    token_authenticate(secret, Token.Kind.API)
    token.refresh_from_db()
    assert token.last_used_at == first
    Token.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    token_authenticate(secret, Token.Kind.API)
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert token.last_used_at > first - timedelta(seconds=1)


# --- the Tokens page ---------------------------------------------------------------------


def test_the_page_lists_only_the_members_own_tokens(alice: User, bob: User, alice_client: Client) -> None:
    token_create(user=alice, kind=Token.Kind.API, name="alice-laptop", actor=alice)
    token_create(user=bob, kind=Token.Kind.API, name="bob-laptop", actor=bob)
    page = alice_client.get(reverse("gpus:tokens")).content.decode()
    assert "alice-laptop" in page
    assert "bob-laptop" not in page


def test_a_new_api_token_is_shown_once_with_a_curl_example(
    alice: User, alice_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = alice_client.post(reverse("gpus:tokens"), {"kind": "api", "name": "laptop script"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = Token.objects.get(user=alice)
    secret = response.context["created"]["secret"]
    page = response.content.decode()
    assert secret in page
    assert 'curl -H "Authorization: Bearer $GPU_TOKEN"' in page
    assert 'data-copy="new-secret"' in page
    assert token_authenticate(secret, Token.Kind.API) == token
    assert secret not in alice_client.get(reverse("gpus:tokens")).content.decode()
    assert secret not in caplog.text


def test_a_new_team_feed_shows_its_address_and_the_google_calendar_steps(alice: User, alice_client: Client) -> None:
    response = alice_client.post(reverse("gpus:tokens"), {"kind": "team_feed", "name": "Google Calendar"})
    assert response.status_code == 200
    feed_url = response.context["created"]["feed_url"]
    assert feed_url.startswith("http://")
    assert "/gpus/feeds/gpt_" in feed_url
    page = response.content.decode()
    assert feed_url in page
    assert "From URL" in page
    assert Token.objects.get(user=alice).kind == Token.Kind.TEAM_FEED


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "api", "name": ""}, "Give the token a name"),
        ({"kind": "api", "name": "   "}, "Give the token a name"),
        ({"kind": "api", "name": "x" * 61}, "at most 60 characters"),
        ({"kind": "root", "name": "laptop"}, "Pick what the token is for"),
        ({"name": "laptop"}, "Pick what the token is for"),
    ],
)
def test_bad_input_makes_no_token_and_says_why(alice_client: Client, data: dict[str, str], message: str) -> None:
    response = alice_client.post(reverse("gpus:tokens"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Token.objects.exists()


def test_a_member_revokes_their_own_token(alice: User, alice_client: Client) -> None:
    token, secret = token_create(user=alice, kind=Token.Kind.API, name="laptop", actor=alice)
    response = alice_client.post(reverse("gpus:token-revoke", args=[token.pk]), follow=True)
    assert "no longer opens anything" in response.content.decode()
    assert token_authenticate(secret, Token.Kind.API) is None
    assert AuditEvent.objects.filter(action="token.revoke", actor=alice).count() == 1


def test_another_members_token_is_refused_and_the_refusal_audited(alice: User, bob: User, bob_client: Client) -> None:
    token, secret = token_create(user=alice, kind=Token.Kind.API, name="laptop", actor=alice)
    response = bob_client.post(reverse("gpus:token-revoke", args=[token.pk]))
    assert response.status_code == 403
    assert token_authenticate(secret, Token.Kind.API) == token
    assert AuditEvent.objects.filter(action="token.denied", actor=bob, outcome=AuditEvent.Outcome.REFUSED).count() == 1


def test_revoking_a_token_that_does_not_exist_is_404(alice_client: Client) -> None:
    assert alice_client.post(reverse("gpus:token-revoke", args=[999999])).status_code == 404
