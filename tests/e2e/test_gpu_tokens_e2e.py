"""The Tokens page in Chromium: a member makes an API token and a feed, copies the secret with
the button, sees it once, uses it, and revokes it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client
from playwright.sync_api import BrowserContext, Page, expect

from gpus.models import Token
from portal.models import User
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).parent / "screenshots"


def test_a_member_makes_copies_uses_and_revokes_an_api_token(
    page: Page, browser_context: BrowserContext, sign_in_as: Callable[[User], None], live_server: object
) -> None:
    alice = UserFactory(username="alice", first_name="Alice")
    browser_context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in_as(alice)
    page.goto("/gpus/tokens/")
    expect(page.get_by_text("No tokens yet")).to_be_visible()
    page.get_by_label("Name").first.fill("laptop script")
    page.get_by_role("button", name="Make the API token").click()

    secret = page.locator("#new-secret").input_value()
    assert secret.startswith("gpa_")
    expect(page.get_by_text("the only time the portal shows it")).to_be_visible()
    page.get_by_role("button", name="Copy the token").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "gpu-tokens-created.png"), full_page=True)

    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/gpus/api/v1/gpus").status_code != 401
    page.goto("/gpus/tokens/")
    expect(page.locator("#new-secret")).to_have_count(0)
    row = page.locator("#token-list tr", has_text="laptop script")
    expect(row).to_contain_text(secret[:12])
    row.get_by_role("button", name="Revoke the token laptop script").click()
    expect(page.get_by_text("no longer opens anything")).to_be_visible()
    assert Client(headers={"Authorization": f"Bearer {secret}"}).get("/gpus/api/v1/gpus").status_code == 401


def test_a_member_makes_a_team_feed_and_gets_its_address(
    page: Page, sign_in_as: Callable[[User], None], live_server: object
) -> None:
    alice = UserFactory(username="alice", first_name="Alice")
    sign_in_as(alice)
    page.goto("/gpus/tokens/")
    page.get_by_label("Everyone's bookings").check()
    page.locator("#feed-name").fill("Google Calendar")
    page.get_by_role("button", name="Make the feed").click()
    address = page.locator("#new-secret").input_value()
    assert "/gpus/feeds/gpt_" in address
    expect(page.get_by_text("From URL")).to_be_visible()
    assert Token.objects.get(user=alice).kind == Token.Kind.TEAM_FEED
    page.screenshot(path=str(SHOTS / "gpu-tokens-feed.png"), full_page=True)
