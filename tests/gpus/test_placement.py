"""GPU bookings follow the member's server: only GPUs of the member's own host can be booked
for them, by them or by an admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gpus.models import GPU, Booking, GpuHost
from gpus.services import BookingError, booking_create
from portal.models import Host, User
from tests.gpus.apiclient import api_client
from tests.gpus.conftest import next_slot
from workspaces.placement import member_place


@pytest.fixture
def gpu2(db: None) -> Host:
    host = Host.objects.create(name="gpu2", queue="host.gpu2")
    GpuHost.objects.create(host=host, source=GpuHost.Source.CONFIG)
    GPU.objects.create(host=host, index=0, name="H200")
    return host


def test_a_member_of_local_cannot_book_a_gpu_of_gpu2(
    alice: User, admin_user: User, gpus: list[GPU], gpu2: Host
) -> None:
    start = next_slot(2)
    for actor, override in ((alice, False), (admin_user, True)):  # an admin's override neither
        with pytest.raises(BookingError) as refused:
            booking_create(
                user=alice, host=gpu2, start=start, end=start + timedelta(hours=1), actor=actor, override=override
            )
        assert refused.value.rule == "host"
        assert str(refused.value) == (
            "alice works on local, so only GPUs of local can be booked for them; "
            "an admin can move alice to gpu2 on their member page."
        )
    assert not Booking.objects.exists()


def test_once_moved_to_gpu2_a_member_books_gpu2s_gpus_and_no_longer_locals(
    alice: User, admin_user: User, gpus: list[GPU], gpu2: Host
) -> None:
    member_place(member=alice, host=gpu2, actor=admin_user)
    start = next_slot(2)
    booking = booking_create(user=alice, host=gpu2, start=start, end=start + timedelta(hours=1), actor=alice)
    assert [row.gpu.name for row in booking.gpu_rows.all()] == ["H200"]
    with pytest.raises(BookingError, match="alice works on gpu2"):
        booking_create(user=alice, host=Host.local(), start=start, end=start + timedelta(hours=1), actor=alice)


def test_the_booking_form_says_why_another_servers_gpu_is_refused(
    alice_client: Client, gpus: list[GPU], gpu2: Host
) -> None:
    start = timezone.localtime(next_slot(3))
    data = {
        "host": str(gpu2.pk),
        "gpus": "n:1",
        "date": start.date().isoformat(),
        "start": f"{start:%H:%M}",
        "end": f"{start + timedelta(hours=1):%H:%M}",
    }
    body = alice_client.post(reverse("gpus:calendar-book"), data, follow=True).content.decode()
    assert "alice works on local, so only GPUs of local can be booked for them" in body
    assert not Booking.objects.exists()


def test_a_member_on_gpu2_sees_gpu2s_calendar_first_and_the_api_books_there_unless_told(
    alice_client: Client, alice: User, admin_user: User, gpus: list[GPU], gpu2: Host
) -> None:
    member_place(member=alice, host=gpu2, actor=admin_user)
    body = alice_client.get(reverse("gpus:calendar")).content.decode()
    assert "H200" in body.split('id="book-form"')[0]
    api = api_client(alice)
    start = next_slot(2)
    span = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
    made = api.send("post", "/bookings", {"gpus": 1, **span})
    assert made.status_code == 201, made.content
    assert made.json()["host"] == "gpu2"
    refused = api.send("post", "/bookings", {"gpus": 1, "host": "local", **span})
    assert (refused.status_code, refused.json()["rule"]) == (400, "host")
    assert "alice works on gpu2" in refused.json()["error"]
