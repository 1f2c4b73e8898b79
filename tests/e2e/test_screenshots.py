"""Full-page screenshots of the main pages, for people reviewing the look (tests/e2e/screenshots/,
ignored by git). Each test also checks the page rendered what it is about."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.urls import NoReverseMatch, reverse
from playwright.sync_api import Page, expect

from portal.audit import audit_record
from portal.models import AuditEvent, User
from portal.services import access_request_create, member_invite, member_suspend, sshkey_add
from portal.sshkeys import parse_public_key
from tests.factories import SSHKeyFactory, UserFactory
from tests.portal.test_sshkeys import fresh_ed25519_line

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture
def team(db: None) -> User:
    """An admin and a few members in every state."""
    admin = UserFactory(username="ada", first_name="Ada", last_name="Lovelace", is_staff=True, can_sudo=True)
    alice = UserFactory(username="alice", first_name="Alice", last_name="Liddell", can_docker=True)
    SSHKeyFactory(user=alice)
    UserFactory(username="bob", first_name="Bob", last_name="Builder")
    member_invite(email="carol@corp.example", username="carol", actor=admin)
    dave = UserFactory(username="dave", first_name="Dave", last_name="Jones")
    member_suspend(user=dave, actor=admin, reason="left the team")
    access_request_create(email="erin@corp.example", name="Erin Example")
    return admin


def _shoot(page: Page, name: str) -> Path:
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


def test_screenshot_of_the_login_page(page: Page, db: None) -> None:
    page.goto("/login/")
    expect(page.get_by_role("button", name="Sign in with Google")).to_be_visible()
    _shoot(page, "login.png")


def test_screenshot_of_the_dashboard(page: Page, sign_in_as: Callable[[User], None], team: User) -> None:
    sign_in_as(User.objects.get(username="alice"))
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Alice")
    _shoot(page, "dashboard.png")


def test_screenshot_of_the_members_page(page: Page, sign_in_as: Callable[[User], None], team: User) -> None:
    try:
        url = reverse("member-list")
    except NoReverseMatch:
        pytest.skip("the members page (member-list) is not in project/urls.py yet")
    sign_in_as(team)
    page.goto(url)
    for username in ("alice", "bob", "carol", "dave"):
        expect(page.locator("main")).to_contain_text(username)
    _shoot(page, "members.png")


def test_screenshot_of_the_policies_page(page: Page, sign_in_as: Callable[[User], None], team: User) -> None:
    sign_in_as(team)
    page.goto(reverse("site-policies"))
    hours = page.get_by_label("Warn after this many idle hours")
    hours.fill("-1")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#id_idle_stop_hours_error")).to_contain_text("can't be negative")
    expect(hours).to_have_attribute("aria-invalid", "true")
    _shoot(page, "policies-error.png")
    hours.fill("8")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved the idle policy.")
    expect(page.get_by_role("heading", name="Idle workspaces")).to_be_visible()
    _shoot(page, "policies.png")


def _long_audit_events(admin: User) -> None:
    """What a real log holds after a while: SSH keys (unbreakable fingerprints), a long target
    without spaces, a long refused path, an IPv6 client."""
    alice = User.objects.get(username="alice")
    for name in ("work-laptop-thinkpad-x1-carbon-gen11", "desk", "k" * 100):
        sshkey_add(user=alice, name=name, parsed=parse_public_key(fresh_ed25519_line("alice@laptop")))
    audit_record(action="member.denied", actor=alice, refused=True, path="/members/" + "x" * 600)
    AuditEvent.objects.create(action="quota.update", actor=admin, actor_label="ada", ip="255.255.255.255")
    AuditEvent.objects.create(
        action="workspace.keep_running",
        actor=admin,
        actor_label="a-very-long-actor-name-from-the-break-glass-login@corp.example",
        target_type="workspace",
        target_label="alice-" + "experiment" * 24,
        ip="2001:db8:85a3:1234:5678:8a2e:370:7334",
        detail={"image": "registry.corp.example/team/" + "cuda-pytorch-" * 12 + ":latest"},
    )


def test_screenshot_of_the_audit_page_with_long_values(
    page: Page, sign_in_as: Callable[[User], None], team: User
) -> None:
    _long_audit_events(team)
    sign_in_as(team)
    page.goto(reverse("audit-list"))
    expect(page.locator("table.audit")).to_contain_text("sshkey.add")
    _shoot(page, "audit-long-values.png")
    width, height = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    assert width <= page.viewport_size["width"]  # type: ignore[index]
    assert height < 2_000  # eight rows; the broken layout was 4,750 px
    # Nor does the table hide its overflow in a scrolling box at this width.
    assert page.evaluate("(wrap => wrap.scrollWidth <= wrap.clientWidth)(document.querySelector('.table-wrap'))")
    expect(page.locator("table.audit td.detail [title]")).to_have_count(1)  # the long path, cut


def test_screenshot_of_a_members_page_and_ones_own(
    page: Page, sign_in_as: Callable[[User], None], team: User, settings
) -> None:
    settings.WORKSPACE_DOCKER_RUNTIME = ""
    sign_in_as(team)
    carol = User.objects.get(username="carol")
    page.goto(reverse("member-detail", args=[carol.pk]))
    expect(page.locator("#identity-h + dl, .kv").first).to_contain_text("not signed in yet")
    expect(page.get_by_label("Docker inside the workspace")).to_be_disabled()
    expect(page.locator(".timeline")).to_contain_text("done to carol by ada")
    _shoot(page, "member-invited.png")
    page.goto(reverse("member-detail", args=[team.pk]))
    expect(page.get_by_label("Admin of the portal")).to_be_disabled()
    expect(page.locator("#member-access")).to_contain_text("you can't suspend yourself")
    expect(page.locator(".timeline")).to_contain_text("ada did")
    _shoot(page, "member-own.png")
