"""Calendar feeds, parsed back with icalendar and compared with the bookings: personal and team
feeds, stable UIDs, UTC times with their real length across daylight saving changes, released
bookings ending at the release, and one 404 for unknown and revoked secrets alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from gpus.models import GPU, Booking, BookingPolicy, Token
from gpus.services import booking_cancel, booking_create, booking_release, slot_floor
from gpus.tokens import token_create, token_revoke
from portal.models import AuditEvent, Host, User
from tests.gpus.conftest import next_slot

pytestmark = pytest.mark.django_db


def feed_url(user: User, kind: str = Token.Kind.FEED) -> str:
    _, secret = token_create(user=user, kind=kind, name="calendar", actor=user)
    return reverse("gpus:feed", kwargs={"secret": secret})


def events(response: Any) -> dict[str, Any]:
    calendar = Calendar.from_ical(response.content)
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def book(user: User, host: Host, start_h: int = 1, hours: int = 2, **kw: Any) -> Booking:
    start = next_slot(start_h)
    return booking_create(user=user, host=host, start=start, end=start + timedelta(hours=hours), actor=user, **kw)


@pytest.fixture
def two_gpus(alice: User, gpus: list[GPU]) -> list[GPU]:
    alice.quota.max_gpus = 2
    alice.quota.save()
    return gpus


def test_a_personal_feed_lists_the_members_bookings_as_the_bookings_are(
    alice: User, bob: User, host: Host, two_gpus: list[GPU]
) -> None:
    mine = book(alice, host, count=2, note="sweep")
    book(bob, host, start_h=4)
    response = Client().get(feed_url(alice))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    found = events(response)
    assert list(found) == [f"booking-{mine.pk}@corp.example"]
    event = found[f"booking-{mine.pk}@corp.example"]
    assert event.decoded("DTSTART") == mine.start
    assert event.decoded("DTSTART").utcoffset() == timedelta(0)
    assert event.decoded("DTEND") == mine.end
    assert str(event["SUMMARY"]) == "GPU 0, 1 booked"
    description = str(event["DESCRIPTION"])
    assert "Server: local" in description
    assert "State: Booked" in description
    assert "Note: sweep" in description
    assert "http://portal.corp.example/gpus/" in description
    assert b"DTSTART:" in response.content
    assert b"Z\r\n" in response.content


def test_a_team_feed_lists_everyones_bookings_with_their_holder(
    alice: User, bob: User, host: Host, two_gpus: list[GPU]
) -> None:
    book(alice, host, gpu_indexes=[0])
    theirs = book(bob, host, start_h=4, gpu_indexes=[1])
    response = Client().get(feed_url(alice, Token.Kind.TEAM_FEED))
    summaries = sorted(str(event["SUMMARY"]) for event in events(response).values())
    assert summaries == ["GPU 0 · alice", "GPU 1 · bob"]
    calendar = Calendar.from_ical(response.content)
    assert str(calendar["X-WR-CALNAME"]) == "GPU bookings · team"
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT15M" in response.content.decode()
    assert f"booking-{theirs.pk}@corp.example" in events(response)


def test_the_feed_is_stable_between_reads(alice: User, host: Host, two_gpus: list[GPU]) -> None:
    book(alice, host)
    url = feed_url(alice)
    first, second = events(Client().get(url)), events(Client().get(url))
    assert first.keys() == second.keys()
    for uid, event in first.items():
        assert event.decoded("DTSTART") == second[uid].decoded("DTSTART")


def test_cancelled_bookings_are_left_out_and_released_ones_end_at_the_release(
    alice: User, host: Host, two_gpus: list[GPU]
) -> None:
    cancelled = book(alice, host, start_h=5, gpu_indexes=[1])
    booking_cancel(booking=cancelled, actor=alice)
    slot = BookingPolicy.current().slot
    start = slot_floor(timezone.now(), slot) - slot
    running = booking_create(
        user=alice,
        host=host,
        start=start,
        end=start + timedelta(hours=3),
        actor=alice,
        now=start + timedelta(minutes=1),
    )
    released = booking_release(booking=running, actor=alice)
    found = events(Client().get(feed_url(alice)))
    assert list(found) == [f"booking-{running.pk}@corp.example"]
    event = found[f"booking-{running.pk}@corp.example"]
    assert event.decoded("DTEND") == released.end
    assert event.decoded("DTEND") < start + timedelta(hours=3)
    assert "State: Released early" in str(event["DESCRIPTION"])


def test_bookings_older_than_thirty_days_or_past_the_horizon_are_left_out(
    alice: User, host: Host, two_gpus: list[GPU]
) -> None:
    old_start = timezone.now() - timedelta(days=40)
    Booking.objects.create(
        user=alice, host=host, start=old_start, end=old_start + timedelta(hours=1), state=Booking.State.COMPLETED
    )
    recent_start = timezone.now() - timedelta(days=20)
    recent = Booking.objects.create(
        user=alice, host=host, start=recent_start, end=recent_start + timedelta(hours=1), state=Booking.State.COMPLETED
    )
    far = timezone.now() + timedelta(days=40)
    Booking.objects.create(user=alice, host=host, start=far, end=far + timedelta(hours=1))
    assert list(events(Client().get(feed_url(alice)))) == [f"booking-{recent.pk}@corp.example"]


@pytest.mark.parametrize(
    ("zone", "day"),
    [("Europe/Berlin", date(2027, 10, 31)), ("America/New_York", date(2027, 11, 7))],  # clocks go back
)
def test_a_booking_across_the_autumn_change_keeps_its_real_length(
    alice: User, host: Host, two_gpus: list[GPU], zone: str, day: date
) -> None:
    policy = BookingPolicy.current()
    policy.horizon_days = 366
    policy.save()
    local = ZoneInfo(zone)
    start = datetime.combine(day, time(0), tzinfo=local)
    end = datetime.combine(day, time(6), tzinfo=local)  # six hours on the wall clock, seven in fact
    with override_settings(TIME_ZONE=zone):
        booking = booking_create(user=alice, host=host, start=start, end=end, actor=alice)
        response = Client().get(feed_url(alice))
    event = events(response)[f"booking-{booking.pk}@corp.example"]
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(hours=7)
    assert event.decoded("DTSTART") == start.astimezone(UTC)
    assert event.decoded("DTEND") == end.astimezone(UTC)


@pytest.mark.parametrize(
    "secret",
    ["gpf_unknown", "gpt_" + "x" * 43, "gpa_" + "x" * 43, "nonsense", "x" * 300],
)
def test_an_unknown_secret_is_a_plain_404_and_not_audited(alice: User, secret: str) -> None:
    before = AuditEvent.objects.count()
    response = Client().get(reverse("gpus:feed", kwargs={"secret": secret}))
    assert response.status_code == 404
    assert AuditEvent.objects.count() == before


def test_a_revoked_feed_answers_exactly_like_an_unknown_one(alice: User, host: Host, two_gpus: list[GPU]) -> None:
    token, secret = token_create(user=alice, kind=Token.Kind.FEED, name="calendar", actor=alice)
    url = reverse("gpus:feed", kwargs={"secret": secret})
    assert Client().get(url).status_code == 200
    token_revoke(token=token, actor=alice)
    before = AuditEvent.objects.count()
    revoked = Client().get(url)
    unknown = Client().get(reverse("gpus:feed", kwargs={"secret": "gpf_" + "y" * len(secret[4:])}))
    assert revoked.status_code == unknown.status_code == 404
    assert revoked.content == unknown.content
    assert AuditEvent.objects.count() == before


def test_an_api_token_does_not_open_a_feed(alice: User) -> None:
    _, secret = token_create(user=alice, kind=Token.Kind.API, name="script", actor=alice)
    assert Client().get(reverse("gpus:feed", kwargs={"secret": secret})).status_code == 404


def test_a_suspended_members_feed_is_404(alice: User) -> None:
    url = feed_url(alice)
    User.objects.filter(pk=alice.pk).update(is_active=False, status=User.Status.SUSPENDED)
    assert Client().get(url).status_code == 404


def test_feed_times_are_in_utc_whatever_the_team_zone(alice: User, host: Host, two_gpus: list[GPU]) -> None:
    with override_settings(TIME_ZONE="Asia/Kolkata"):
        booking = book(alice, host)
        response = Client().get(feed_url(alice))
    event = events(response)[f"booking-{booking.pk}@corp.example"]
    assert event.decoded("DTSTART").tzinfo is not None
    assert event.decoded("DTSTART").utcoffset() == timedelta(0)
    assert str(Calendar.from_ical(response.content)["X-WR-TIMEZONE"]) == "Asia/Kolkata"
