"""An admin chooses a member's server on the member page; the member's new workspaces, the
making of their folders and (tests/gpus/test_placement.py) their GPU bookings follow it. A
move is refused, with nothing changed, while something of theirs is left on the old server."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gpus.models import Booking
from portal.models import AuditEvent, Host, User
from project.celery import app as celery_app
from tests.worker import purge_queues
from tests.workspaces.conftest import make_workspace
from workspaces.models import Workspace
from workspaces.placement import PlacementRefused, member_place
from workspaces.services import workspace_create

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def gpu2(db: None) -> Host:
    return Host.objects.create(name="gpu2", queue="host.gpu2")


def _move(client: Client, member: User, host_pk: object, **headers: str) -> str:
    url = reverse("workspaces:member-host", args=[member.pk])
    return client.post(url, {"host": host_pk}, follow=not headers, **headers).content.decode()  # type: ignore[arg-type]


def _next_task(queue: str) -> str | None:
    """The name of the next task waiting in ``queue`` on the real broker (taken off it)."""
    with celery_app.connection_for_read() as conn:
        message = conn.default_channel.basic_get(queue, no_ack=True)
    return None if message is None else str(message.headers["task"])


def test_the_member_page_shows_the_members_server_chosen_in_the_form(
    admin_client: Client, alice: User, gpu2: Host
) -> None:
    body = admin_client.get(reverse("member-detail", args=[alice.pk])).content.decode()
    assert "Server and workspaces" in body
    assert f'<option value="{Host.local().pk}" selected>local</option>' in body
    assert f'<option value="{gpu2.pk}">gpu2</option>' in body


def test_an_admin_moves_a_member_audited_and_gpu2s_worker_prepares_their_folders(
    admin_client: Client, admin_user: User, alice: User, gpu2: Host, django_capture_on_commit_callbacks
) -> None:
    purge_queues(["host.gpu2"])
    with django_capture_on_commit_callbacks(execute=True):
        body = _move(admin_client, alice, gpu2.pk, **HTMX)
    assert "Moved to gpu2" in body
    alice.refresh_from_db()
    assert alice.placed_host() == gpu2
    event = AuditEvent.objects.get(action="member.place")
    assert (event.actor, event.target_label, event.detail) == (
        admin_user,
        "alice",
        {"before": "local", "after": "gpu2"},
    )
    assert _next_task("host.gpu2") == "storage.tasks.member_storage_prepare_task"


def test_a_moved_members_new_workspace_is_made_on_their_server_by_its_queue(
    alice: User, admin_user: User, gpu2: Host, django_capture_on_commit_callbacks
) -> None:
    member_place(member=alice, host=gpu2, actor=admin_user)
    purge_queues(["host.gpu2", "host.local"])
    with django_capture_on_commit_callbacks(execute=True):
        workspace_create(owner=alice, actor=alice)
    assert Workspace.objects.get(owner=alice).host == gpu2
    assert _next_task("host.gpu2") == "workspaces.tasks.workspace_create_task"
    assert _next_task("host.local") is None


def test_a_member_with_a_workspace_left_on_the_old_server_is_not_moved(
    admin_client: Client, alice: User, gpu2: Host
) -> None:
    make_workspace(alice, Host.local(), state=Workspace.State.STOPPED)
    body = _move(admin_client, alice, gpu2.pk, **HTMX)
    assert "alice still has a workspace elsewhere: ws-alice on local (stopped)" in body
    assert "Remove it first, keeping the data; alice then creates it again on gpu2." in body
    alice.refresh_from_db()
    assert alice.host is None
    assert not AuditEvent.objects.filter(action="member.place").exists()


def test_a_member_holding_a_gpu_booking_on_the_old_server_is_not_moved(
    admin_user: User, alice: User, gpu2: Host
) -> None:
    start = timezone.now() + timedelta(hours=1)
    Booking.objects.create(user=alice, host=Host.local(), start=start, end=start + timedelta(hours=1))
    make_workspace(alice, Host.local(), port=2301)
    with pytest.raises(PlacementRefused) as refused:
        member_place(member=alice, host=gpu2, actor=admin_user)
    # Every reason at once, so the admin clears them in one go.
    assert "ws-alice on local" in str(refused.value)
    assert "alice has 1 GPU booking still to come or under way on local; cancel it" in str(refused.value)
    assert User.objects.get(pk=alice.pk).host is None


def test_a_finished_booking_on_the_old_server_does_not_hold_the_member_back(
    admin_user: User, alice: User, gpu2: Host
) -> None:
    start = timezone.now() - timedelta(hours=3)
    Booking.objects.create(
        user=alice, host=Host.local(), start=start, end=start + timedelta(hours=1), state=Booking.State.COMPLETED
    )
    assert member_place(member=alice, host=gpu2, actor=admin_user)


def test_an_unknown_server_is_refused_with_a_clear_message(admin_client: Client, alice: User) -> None:
    body = _move(admin_client, alice, 987654)
    assert "That server is not known; pick one of the list." in body
    assert User.objects.get(pk=alice.pk).host is None


def test_moving_a_member_to_the_server_they_are_on_writes_nothing(admin_user: User, alice: User, gpu2: Host) -> None:
    assert member_place(member=alice, host=gpu2, actor=admin_user)
    assert not member_place(member=alice, host=gpu2, actor=admin_user)
    assert AuditEvent.objects.filter(action="member.place").count() == 1


def test_a_workspace_on_gpu2_tells_its_owner_to_ssh_to_gpu2s_address(alice_client: Client, alice: User) -> None:
    gpu2 = Host.objects.create(name="gpu2", queue="host.gpu2", ssh_address="gpu2.corp.example")
    workspace = make_workspace(alice, gpu2, port=2345)
    body = alice_client.get(reverse("workspaces:connect", args=[workspace.pk])).content.decode()
    assert "ssh -p 2345 alice@gpu2.corp.example" in body
    session = alice_client.get(reverse("workspaces:x2go", args=[workspace.pk])).content.decode()
    assert "host=gpu2.corp.example" in session


def _ssh_address_field() -> Any:
    return Host._meta.get_field("ssh_address")  # its validators, without the database


@pytest.mark.parametrize("address", ["gpu2.corp.example", "192.0.2.12", "2001:db8::12", "gpu2"])
def test_a_servers_ssh_address_is_a_host_name_or_an_ip(address: str) -> None:
    assert _ssh_address_field().clean(address, None) == address


@pytest.mark.parametrize("address", ["gpu2\nProxyCommand evil", "user@gpu2", "gpu2:22", "-oProxyCommand=x", "a..b"])
def test_anything_else_as_an_ssh_address_is_refused_saying_what_fits(address: str) -> None:
    with pytest.raises(ValidationError) as refused:
        assert _ssh_address_field().clean(address, None) == address
    assert "is not a host name or an IP address, like gpu2.corp.example" in str(refused.value)


@pytest.mark.django_db(transaction=True)
def test_a_workspace_asked_for_during_a_move_waits_for_it_and_lands_on_the_new_server(
    alice: User, admin_user: User, gpu2: Host
) -> None:
    moved, release = threading.Event(), threading.Event()

    def move() -> None:
        try:
            with transaction.atomic():  # the move's lock on alice is held until this commits
                member_place(member=alice, host=gpu2, actor=admin_user)
                moved.set()
                release.wait(10)
        finally:
            connection.close()

    def create() -> None:
        try:
            workspace_create(owner=alice, actor=alice)
        finally:
            connection.close()

    mover = threading.Thread(target=move)
    mover.start()
    assert moved.wait(10)
    creator = threading.Thread(target=create)
    creator.start()
    creator.join(0.5)
    assert creator.is_alive()  # waiting for the move
    release.set()
    mover.join(10)
    creator.join(10)
    assert Workspace.objects.get(owner=alice).host == gpu2
    purge_queues(["host.gpu2", "host.local"])
