"""The notifications page, "Mark all read", and the bell in the top bar."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import Notification, User
from portal.services import notify_admins

PAGE = "/notifications/"


def _note(user: User, title: str, **fields: object) -> Notification:
    return Notification.objects.create(user=user, title=title, **fields)


def test_the_urls_are_named() -> None:
    assert reverse("notifications") == PAGE
    assert reverse("notifications-read") == "/notifications/read/"


def test_it_sends_anonymous_visitors_to_login(client: Client, db: None) -> None:
    assert client.get(PAGE).status_code == 302


def test_it_lists_the_members_notifications_newest_first(alice_client: Client, alice: User, bob: User) -> None:
    now = timezone.now()
    _note(alice, "Backup finished", body="All 3 snapshots kept.", created=now - timedelta(hours=2))
    _note(
        alice,
        "GPU 1 is yours",
        level=Notification.Level.WARNING,
        body="Booked until 18:00.",
        url="/gpus/",
        created=now - timedelta(minutes=5),
    )
    _note(alice, "Workspace failed", level=Notification.Level.ERROR, created=now)
    _note(bob, "Bob's private note")
    body = alice_client.get(PAGE).content.decode()
    titles = re.findall(r"<strong>(?:<a [^>]*>)?([^<]+)", body)
    assert titles == ["Workspace failed", "GPU 1 is yours", "Backup finished"]
    assert "Bob&#x27;s private note" not in body
    assert "Bob's private note" not in body
    assert '<a href="/gpus/">GPU 1 is yours</a>' in body
    assert "Booked until 18:00." in body
    assert '<span class="pill pill-error">Error</span>' in body
    assert '<span class="pill pill-warn">Warning</span>' in body
    assert '<span class="pill pill-info">Info</span>' in body
    assert "2\xa0hours ago" in body
    assert "3 unread" in body


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>x</script>", "JavaScript:alert(1)"])
def test_it_never_renders_a_script_link(alice_client: Client, alice: User, url: str) -> None:
    _note(alice, "Odd link", url=url)
    body = alice_client.get(PAGE).content.decode()
    assert "<strong>Odd link</strong>" in body
    assert "javascript:" not in body.lower()
    assert "data:text/html" not in body


def test_it_says_so_when_there_is_nothing(alice_client: Client) -> None:
    body = alice_client.get(PAGE).content.decode()
    assert "No notifications yet" in body
    assert "Mark all read" not in body


def test_mark_all_read_marks_only_the_members_own(alice_client: Client, alice: User, bob: User) -> None:
    earlier = timezone.now() - timedelta(days=1)
    already = _note(alice, "old", read_at=earlier)
    _note(alice, "one")
    _note(alice, "two")
    _note(bob, "bobs")
    response = alice_client.post(reverse("notifications-read"), follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert "Marked 2 notifications as read." in response.content.decode()
    assert not alice.notifications.filter(read_at=None).exists()
    already.refresh_from_db()
    assert already.read_at == earlier
    assert bob.notifications.get().read_at is None


def test_mark_all_read_needs_post(alice_client: Client, alice: User) -> None:
    _note(alice, "one")
    assert alice_client.get(reverse("notifications-read")).status_code == 405
    assert alice.notifications.get().read_at is None


def test_mark_all_read_needs_a_csrf_token(alice: User) -> None:
    _note(alice, "one")
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("notifications-read")).status_code == 403
    assert alice.notifications.get().read_at is None


def _bell(body: str) -> str:
    match = re.search(r'<a class="bell"[^>]*>.*?</a>', body, re.S)
    assert match is not None, "the top bar has a bell"
    return match.group(0)


def test_the_bell_counts_unread_notifications_on_every_page(alice_client: Client, alice: User) -> None:
    for title in ("a", "b", "c"):
        _note(alice, title)
    _note(alice, "read", read_at=timezone.now())
    bell = _bell(alice_client.get(reverse("account")).content.decode())
    assert 'href="/notifications/"' in bell
    assert 'aria-label="Notifications, 3 unread"' in bell
    assert '<span class="badge">3</span>' in bell
    alice_client.post(reverse("notifications-read"))
    bell = _bell(alice_client.get(reverse("account")).content.decode())
    assert 'aria-label="Notifications, 0 unread"' in bell
    assert "badge" not in bell


def test_admins_hear_of_access_requests_through_the_bell(admin_client: Client, admin_user: User, alice: User) -> None:
    notify_admins(title="carol asks for access", body="carol@corp.example has no invitation.", url="/members/")
    assert alice.notifications.count() == 0
    body = admin_client.get(PAGE).content.decode()
    assert "carol asks for access" in body
    assert '<span class="badge">1</span>' in _bell(body)


@pytest.mark.parametrize("count", [3, 40])
def test_the_page_costs_four_queries_however_many_notifications(
    alice_client: Client, alice: User, django_assert_num_queries, count: int
) -> None:
    Notification.objects.bulk_create([Notification(user=alice, title=f"n{i}") for i in range(count)])
    # the member, the bell's unread count, the paginator's count, the page of rows
    with django_assert_num_queries(4):
        response = alice_client.get(PAGE)
    assert response.content.decode().count('<tr id="notification-') == count


def test_it_pages_long_lists(alice_client: Client, alice: User) -> None:
    start = timezone.now()
    Notification.objects.bulk_create(
        [Notification(user=alice, title=f"note {i:03}", created=start - timedelta(minutes=i)) for i in range(60)]
    )
    first = alice_client.get(PAGE).content.decode()
    second = alice_client.get(PAGE, {"page": 2}).content.decode()
    assert first.count('<tr id="notification-') == 50
    assert second.count('<tr id="notification-') == 10
    assert "note 000" in first
    assert "note 059" in second
    assert "Page 2 of 2" in second
    assert alice_client.get(PAGE, {"page": "nonsense"}).status_code == 200
