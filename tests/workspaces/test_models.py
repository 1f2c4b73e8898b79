"""The workspace state machine, names and the visible_to rule."""

from __future__ import annotations

import pytest

from portal.models import Host, User
from tests.factories import UserFactory
from tests.workspaces.conftest import make_workspace
from workspaces.models import InvalidTransition, Workspace, container_name, workspace_slug

S = Workspace.State


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (S.ABSENT, S.CREATING),
        (S.CREATING, S.RUNNING),
        (S.RUNNING, S.STOPPED),
        (S.STOPPED, S.RUNNING),
        (S.RUNNING, S.REMOVING),
        (S.REMOVING, S.ABSENT),
        (S.CREATING, S.ERROR),
        (S.ERROR, S.CREATING),
        (S.RUNNING, S.ABSENT),
        (S.STOPPED, S.CREATING),
        (S.REMOVING, S.ERROR),
    ],
)
def test_it_allows_the_lifecycle_transitions(start: str, end: str) -> None:
    workspace = Workspace(state=start)
    assert workspace.move_to(end, reason="why") == ["state", "state_reason"]
    assert (workspace.state, workspace.state_reason) == (end, "why")


@pytest.mark.parametrize("end", [S.CREATING, S.RUNNING, S.STOPPED])
def test_it_refuses_to_come_back_from_removing(end: str) -> None:
    workspace = Workspace(state=S.REMOVING)
    with pytest.raises(InvalidTransition, match="removing -> "):
        workspace.move_to(end)
    assert workspace.state == S.REMOVING


def test_staying_in_a_state_is_always_allowed() -> None:
    for state in S.values:
        assert Workspace(state=state).can_move_to(state)


def test_every_state_has_its_transitions_declared() -> None:
    assert set(Workspace.TRANSITIONS) == set(S.values)
    assert all(targets <= set(S.values) for targets in Workspace.TRANSITIONS.values())


def test_container_names_are_deterministic() -> None:
    assert container_name("alice") == "ws-alice"
    assert container_name("alice", "gpu2") == "ws-alice-gpu2"
    assert container_name("j_doe") == "ws-j_doe"


def test_slugs_are_dns_labels() -> None:
    assert workspace_slug("j_doe", "x1") == "j-doe-x1"
    with pytest.raises(ValueError, match="web address"):
        workspace_slug("_x")


def test_links_use_the_slug(settings, db: None) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_DOMAIN = "corp.example"
    workspace = Workspace(slug="j-doe")
    assert workspace.code_url == "https://j-doe-code.corp.example"
    assert workspace.jupyter_url == "https://jupyter-j-doe.corp.example"


def test_links_keep_the_proxys_port_when_it_is_not_443(settings, db: None) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_DOMAIN = "corp.example"
    workspace = Workspace(slug="j-doe")
    settings.PORTAL_URL = "https://portal.corp.example:8443"
    assert workspace.jupyter_url == "https://jupyter-j-doe.corp.example:8443"
    settings.PORTAL_URL = "https://portal.corp.example:443"
    assert workspace.jupyter_url == "https://jupyter-j-doe.corp.example"


def test_a_member_sees_only_their_own_workspaces(alice: User, bob: User, admin_user: User) -> None:
    host = Host.objects.create(name="gpu9", queue="host.gpu9")
    mine = make_workspace(alice, host, port=2301)
    make_workspace(bob, host, port=2302)
    assert list(Workspace.objects.visible_to(alice)) == [mine]
    assert Workspace.objects.visible_to(admin_user).count() == 2


def test_for_cards_attaches_the_latest_operation_in_constant_queries(
    alice: User,
    django_assert_num_queries,  # type: ignore[no-untyped-def]
) -> None:
    from portal.operations import operation_create

    host = Host.objects.create(name="gpu9", queue="host.gpu9")
    workspaces = [make_workspace(alice, host, name=f"w{i}", port=2310 + i) for i in range(3)]
    for workspace in workspaces:
        operation_create(kind="start", actor=alice, target=workspace)
    newest = operation_create(kind="stop", actor=alice, target=workspaces[1])
    with django_assert_num_queries(2):
        cards = Workspace.objects.filter(owner=alice).for_cards()
    assert [card.last_op.kind for card in cards] == ["start", "stop", "start"]
    assert cards[1].last_op == newest
    assert all(card.busy for card in cards)


def test_the_unique_slug_keeps_two_members_off_one_address(db: None) -> None:
    from django.db import IntegrityError

    host = Host.objects.create(name="gpu9", queue="host.gpu9")
    make_workspace(UserFactory(username="alice"), host, name="gpu", port=2320)
    with pytest.raises(IntegrityError):
        make_workspace(UserFactory(username="alice-gpu"), host, port=2321)
