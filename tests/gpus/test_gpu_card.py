"""The dashboard's GPU card: who holds each GPU now, the member's current or next booking
with Extend when the next slot is free, in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gpus.models import GPU, Booking, BookingPolicy
from gpus.services import booking_create, slot_floor
from portal.models import Host, User
from tests.factories import UserFactory
from tests.gpus.conftest import next_slot

pytestmark = pytest.mark.django_db


def _now_booking(user: User, host: Host, gpu: int, hours: int = 1) -> Booking:
    start = slot_floor(timezone.now(), BookingPolicy.current().slot)
    end = start + timedelta(hours=hours)
    return booking_create(user=user, host=host, start=start, end=end, gpu_indexes=[gpu], actor=user)


def _card(client: Client) -> str:
    body = client.get(reverse("dashboard")).content.decode()
    return body.split('id="gpu-card"')[1].split("</section>")[0]


def test_each_gpu_is_free_or_says_who_holds_it_until_when(alice_client: Client, bob: User, gpus: list[GPU]) -> None:
    theirs = _now_booking(bob, gpus[0].host, 0)
    card = _card(alice_client)
    assert f"bob until {timezone.localtime(theirs.end):%H:%M}" in card
    assert card.count("free</span>") == 1  # GPU 1
    assert reverse("gpus:calendar") in card


def test_the_next_booking_is_shown_without_extend(alice_client: Client, alice: User, gpus: list[GPU]) -> None:
    start = next_slot(3)
    booking_create(user=alice, host=gpus[0].host, start=start, end=start + timedelta(hours=1), actor=alice)
    card = _card(alice_client)
    assert "Your next booking" in card
    assert f"{timezone.localtime(start):%H:%M}" in card
    assert "Extend" not in card


def test_the_current_booking_offers_extend_when_the_next_slot_is_free(
    alice_client: Client, alice: User, bob: User, gpus: list[GPU]
) -> None:
    mine = _now_booking(alice, gpus[0].host, 0)
    card = _card(alice_client)
    assert "Your booking now" in card
    assert "Extend by 30 min" in card
    response = alice_client.post(reverse("gpus:calendar-extend", args=[mine.pk]), {"next": "/"})
    assert response["Location"] == "/"
    mine.refresh_from_db()
    booking_create(
        user=bob, host=gpus[0].host, start=mine.end, end=mine.end + timedelta(hours=1), gpu_indexes=[0], actor=bob
    )
    card = _card(alice_client)
    assert "Extend by" not in card
    assert "booked by someone else, so it can't be extended" in card


def test_without_gpus_the_card_says_so_and_names_the_quota(alice_client: Client, alice: User, host: Host) -> None:
    card = _card(alice_client)
    assert "No GPUs are in this server's inventory yet." in card
    alice.quota.max_gpus = 0
    alice.quota.save()
    assert "Your quota has no GPUs" in _card(alice_client)


def test_the_dashboards_query_count_does_not_grow_with_members_holding_gpus(
    alice_client: Client, alice: User, gpus: list[GPU], django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    _now_booking(alice, gpus[0].host, 0)
    _now_booking(UserFactory(username="m0"), gpus[0].host, 1)
    alice_client.get(reverse("dashboard"))
    with CaptureQueriesContext(connection) as few:
        alice_client.get(reverse("dashboard"))
    host = gpus[0].host
    for i in range(2, 12):
        GPU.objects.create(host=host, index=i, name="RTX 5080")
        _now_booking(UserFactory(username=f"m{i}"), host, i)
    with django_assert_num_queries(len(few)):
        body = alice_client.get(reverse("dashboard")).content.decode()
    assert "m11 until" in body
