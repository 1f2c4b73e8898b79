"""The member page's server form in a real browser: a move refused while the member still has
a workspace on the old server, then a move that succeeds once it is gone (htmx swaps the card)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from portal.models import Host, User
from tests.factories import UserFactory
from tests.workspaces.conftest import make_workspace
from workspaces.models import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SHOTS = Path(__file__).parent / "screenshots"


def test_an_admin_moves_a_member_to_gpu2_once_nothing_of_theirs_is_left_on_local(
    page: Page, sign_in_as: Callable[[User], None]
) -> None:
    admin = UserFactory(username="ada", is_staff=True)
    alice = UserFactory(username="alice", first_name="Alice")
    Host.objects.create(name="gpu2", queue="host.gpu2")
    workspace = make_workspace(alice, Host.local(), state=Workspace.State.STOPPED)
    sign_in_as(admin)
    page.goto(reverse("member-detail", args=[alice.pk]))
    card = page.locator("#member-ws")
    card.get_by_label("Server").select_option(label="gpu2")
    card.get_by_role("button", name="Move to this server").click()
    expect(card.locator(".errorlist")).to_contain_text("alice still has a workspace elsewhere: ws-alice on local")
    SHOTS.mkdir(exist_ok=True)
    page.locator("#member-ws").screenshot(path=str(SHOTS / "member-server-refused.png"))
    workspace.delete()
    card.get_by_label("Server").select_option(label="gpu2")
    card.get_by_role("button", name="Move to this server").click()
    expect(card.get_by_role("status")).to_have_text("Moved to gpu2")
    expect(card).to_contain_text("Members create their own from the dashboard, on gpu2.")
    page.screenshot(path=str(SHOTS / "member-server.png"), full_page=True)
    assert User.objects.get(pk=alice.pk).host is not None
