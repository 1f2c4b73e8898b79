"""Google sign-in in a real Chromium: click the button, consent at the stand-in provider as a
given person, and see where the portal puts them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from portal.models import AccessRequest, User
from portal.services import member_invite, member_suspend
from tests.factories import UserFactory
from tests.oidc import MOCK_URL, google_person

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def admin(db: None) -> User:
    return UserFactory(username="ada", is_staff=True)


def sign_in_with_google(page: Page, sub: str) -> None:
    page.goto("/login/")
    page.get_by_role("button", name="Sign in with Google").click()
    page.wait_for_url(f"{MOCK_URL}/oauth2/authorize**")
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_load_state()


def test_an_invited_member_reaches_their_dashboard(oidc_mock: str, page: Page, admin: User) -> None:
    carol = member_invite(email="carol@corp.example", username="carol", actor=admin)
    google_person("carol-sub", email="carol@corp.example", name="Carol")

    sign_in_with_google(page, "carol-sub")

    expect(page).to_have_url(re.compile(r"^http://localhost:\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("carol")
    expect(page.locator(".usermenu")).to_contain_text("carol")
    expect(page.locator("main")).to_contain_text(f"{carol.uid} / {carol.gid}")
    carol.refresh_from_db()
    assert carol.status == User.Status.ACTIVE


def test_an_uninvited_colleague_sees_that_access_was_requested(oidc_mock: str, page: Page, admin: User) -> None:
    google_person("dave-sub", email="dave@corp.example", name="Dave")

    sign_in_with_google(page, "dave-sub")

    expect(page.get_by_role("heading", name="Access requested")).to_be_visible()
    expect(page.locator("main")).to_contain_text("dave@corp.example")
    assert AccessRequest.objects.filter(email="dave@corp.example").exists()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))


def test_an_account_from_another_workspace_is_refused(oidc_mock: str, page: Page, admin: User) -> None:
    google_person("mallory-sub", email="mallory@evil.example", hd="evil.example")

    sign_in_with_google(page, "mallory-sub")

    expect(page.get_by_role("heading", name="You can't sign in with this account")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("Only corp.example Google Workspace accounts may sign in.")
    page.get_by_role("link", name="Try another account").click()
    expect(page.get_by_role("button", name="Sign in with Google")).to_be_visible()


def test_a_suspended_member_is_refused(oidc_mock: str, page: Page, admin: User) -> None:
    erin = member_invite(email="erin@corp.example", username="erin", actor=admin)
    member_suspend(user=erin, actor=admin)
    google_person("erin-sub", email="erin@corp.example")

    sign_in_with_google(page, "erin-sub")

    expect(page.get_by_role("alert")).to_have_text("This account is suspended. Ask an admin.")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))


def test_a_member_signs_out(oidc_mock: str, page: Page, admin: User) -> None:
    member_invite(email="carol@corp.example", username="carol", actor=admin)
    google_person("carol-sub", email="carol@corp.example")
    sign_in_with_google(page, "carol-sub")

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("status")).to_contain_text("You have signed out.")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
