"""The calendar page, its JSON endpoints and its plain form, on the real PostgreSQL: each
success, each refusal with its rule, and the team's time zone (Europe/Berlin) end to end."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gpus.models import GPU, Booking, BookingGPU, BookingPolicy
from gpus.services import booking_create, slot_floor
from portal.models import AuditEvent, Host, User
from tests.gpus.conftest import next_slot

pytestmark = pytest.mark.django_db

EVENTS = reverse("gpus:calendar-events")
CREATE = reverse("gpus:calendar-create")
BOOK = reverse("gpus:calendar-book")


@pytest.fixture
def berlin(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TIME_ZONE = "Europe/Berlin"


@pytest.fixture
def two_gpus_each(alice: User, bob: User) -> None:
    for user in (alice, bob):
        user.quota.max_gpus = 2
        user.quota.save()


def post_json(client: Client, url: str, data: Any) -> Any:
    body = data if isinstance(data, str) else json.dumps(data)
    return client.post(url, body, content_type="application/json", headers={"accept": "application/json"})


def book(user: User, host: Host, start_h: int = 1, hours: int = 2, **kw: Any) -> Booking:
    start = next_slot(start_h)
    return booking_create(user=user, host=host, start=start, end=start + timedelta(hours=hours), actor=user, **kw)


def now_booking(user: User, host: Host, hours: int = 1, **kw: Any) -> Booking:
    """A booking under way: from the current slot on."""
    start = slot_floor(timezone.now(), BookingPolicy.current().slot)
    return booking_create(user=user, host=host, start=start, end=start + timedelta(hours=hours), actor=user, **kw)


def iso(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat()


def refused_rows() -> int:
    return AuditEvent.objects.filter(outcome=AuditEvent.Outcome.REFUSED).count()


# --- the page ---------------------------------------------------------------------------


def test_the_page_shows_the_gpus_the_rules_and_the_plain_form(
    alice_client: Client, alice: User, gpus: list[GPU], policy: BookingPolicy
) -> None:
    book(alice, gpus[0].host, note="my run")
    body = alice_client.get(reverse("gpus:calendar")).content.decode()
    assert 'data-gpu="0"' in body
    assert 'data-gpu="1"' in body
    assert "30-minute slots" in body
    assert "you: 2 h</strong> this week" in body
    assert "exclusive only" in body
    assert 'action="/gpus/calendar/book/"' in body
    assert "my run" in body  # Your bookings
    config = json.loads(body.split('id="calendar-config" type="application/json">')[1].split("</script>")[0])
    assert config["slotMinutes"] == 30
    assert config["timeZone"] == timezone.get_current_timezone_name()


def test_sharing_is_offered_and_explained_only_when_the_policy_allows_it(
    alice_client: Client, gpus: list[GPU], policy: BookingPolicy
) -> None:
    assert "no memory isolation" not in alice_client.get(reverse("gpus:calendar")).content.decode()
    policy.shared_slots = 2
    policy.save()
    body = alice_client.get(reverse("gpus:calendar")).content.decode()
    assert "Shared with up to 2 members" in body
    assert "no memory isolation" in body


def test_a_server_without_gpus_says_so(alice_client: Client, host: Host) -> None:
    response = alice_client.get(reverse("gpus:calendar"))
    assert response.status_code == 200
    assert "No server has GPUs in its inventory yet." in response.content.decode()


# --- events -----------------------------------------------------------------------------


def test_events_are_one_per_gpu_with_the_teams_offset_and_only_own_ones_editable(
    berlin: None, alice_client: Client, bob_client: Client, alice: User, gpus: list[GPU], two_gpus_each: None
) -> None:
    booking = book(alice, gpus[0].host, count=2, note="sweep")
    params = {"start": iso(next_slot(0)), "end": iso(next_slot(24))}
    events = alice_client.get(EVENTS, params).json()
    assert [e["title"] for e in events] == ["GPU 0 · alice", "GPU 1 · alice"]
    assert {e["groupId"] for e in events} == {str(booking.pk)}
    assert events[0]["start"] == timezone.localtime(booking.start).isoformat()
    assert events[0]["start"][-6:] == "+01:00"  # Berlin in winter
    assert events[0]["startEditable"] is True
    assert "gpu-ev-own" in events[0]["className"]
    assert events[0]["extendedProps"]["note"] == "sweep"
    theirs = bob_client.get(EVENTS, params).json()
    assert theirs[0]["startEditable"] is False
    assert theirs[0]["durationEditable"] is False
    assert "gpu-ev-other" in theirs[0]["className"]
    assert theirs[0]["extendedProps"]["note"] == ""  # bob sees who holds the GPU, not her note


def test_cancelled_bookings_leave_the_calendar(alice_client: Client, alice: User, gpus: list[GPU]) -> None:
    booking = book(alice, gpus[0].host)
    post_json(alice_client, reverse("gpus:calendar-cancel", args=[booking.pk]), {})
    assert alice_client.get(EVENTS, {"start": iso(next_slot(0)), "end": iso(next_slot(24))}).json() == []


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, "Say when the booking starts"),
        ({"start": "yesterday", "end": "2026-12-10T00:00:00+01:00"}, "is not a time"),
        ({"start": "2026-12-10T00:00:00+01:00", "end": "2026-12-01T00:00:00+01:00"}, "must be after its start"),
        ({"start": "2026-01-01T00:00:00+01:00", "end": "2026-12-01T00:00:00+01:00"}, "at most 62 days"),
        ({"start": "2026-12-01T00:00:00+01:00", "end": "2026-12-08T00:00:00+01:00", "host": "999"}, "no server"),
    ],
)
def test_events_refuse_bad_ranges_with_a_message(
    alice_client: Client, gpus: list[GPU], params: dict[str, str], words: str
) -> None:
    response = alice_client.get(EVENTS, params)
    assert response.status_code == 400
    assert words in response.json()["error"]


def _many_members(host: Host, gpus: list[GPU], count: int, *, from_hour: int = 1) -> None:
    """``count`` members with a booking each, half an hour apart on alternating GPUs (in
    bulk: a thousand members in a second)."""
    first = next_slot(from_hour)
    users = User.objects.bulk_create(
        [
            User(
                username=f"m{count}x{i}",
                email=f"m{count}x{i}@corp.example",
                uid=200_000 + count * 10 + i,
                dns_label=f"m{count}x{i}",
                status=User.Status.ACTIVE,
            )
            for i in range(count)
        ]
    )
    starts = [first + timedelta(minutes=30 * (i // 2)) for i in range(count)]
    bookings = Booking.objects.bulk_create(
        [Booking(user=u, host=host, start=s, end=s + timedelta(minutes=30)) for u, s in zip(users, starts, strict=True)]
    )
    BookingGPU.objects.bulk_create(
        [BookingGPU(booking=b, gpu=gpus[i % 2], start=b.start, end=b.end) for i, b in enumerate(bookings)]
    )


@pytest.mark.parametrize("url_name", ["gpus:calendar-events", "gpus:calendar"])
def test_the_query_count_is_the_same_for_10_and_1000_members(
    alice_client: Client, alice: User, gpus: list[GPU], url_name: str, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    url = reverse(url_name)
    params = {"start": iso(next_slot(0)), "end": iso(next_slot(24 * 30))}
    book(alice, gpus[0].host, start_h=400)  # after the others' 1,010 half hours
    _many_members(gpus[0].host, gpus, 10)
    alice_client.get(url, params)  # warm the session
    with CaptureQueriesContext(connection) as ten:
        response = alice_client.get(url, params)
    assert response.status_code == 200
    _many_members(gpus[0].host, gpus, 1000, from_hour=10)
    with django_assert_num_queries(len(ten)):
        response = alice_client.get(url, params)
    if url_name == "gpus:calendar-events":
        assert len(response.json()) == 1 + 10 + 1000


# --- create -----------------------------------------------------------------------------


def test_a_selection_books_and_is_audited(berlin: None, alice_client: Client, alice: User, gpus: list[GPU]) -> None:
    start = next_slot(2)
    data = {"host": gpus[0].host_id, "start": iso(start), "end": iso(start + timedelta(hours=1)), "gpus": [1]}
    response = post_json(alice_client, CREATE, {**data, "note": " eval "})
    assert response.status_code == 201
    booking = Booking.objects.get()
    assert response.json()["booking"]["id"] == booking.pk
    assert "Booked GPU 1" in response.json()["message"]
    assert (booking.start, booking.end, booking.note) == (start, start + timedelta(hours=1), "eval")
    assert [g.index for g in booking.gpu_list] == [1]
    assert AuditEvent.objects.filter(action="booking.create", actor=alice).count() == 1


def test_a_selection_sent_without_an_offset_is_read_in_the_teams_zone(
    berlin: None, alice_client: Client, gpus: list[GPU]
) -> None:
    start = next_slot(3)
    naive = timezone.localtime(start).replace(tzinfo=None).isoformat()
    end = (timezone.localtime(start) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    response = post_json(alice_client, CREATE, {"host": gpus[0].host_id, "start": naive, "end": end})
    assert response.status_code == 201
    assert Booking.objects.get().start == start


def _create_body(host_gpus: list[GPU], **changes: Any) -> dict[str, Any]:
    start = next_slot(2)
    body = {"host": host_gpus[0].host_id, "start": iso(start), "end": iso(start + timedelta(hours=1)), "count": 1}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"host": None}, "Say which server"),
        ({"host": "1"}, "Say which server"),
        ({"start": None}, "Say when the booking starts"),
        ({"end": "tomorrow"}, "is not a time"),
        ({"count": "two"}, "“count” must be a whole number"),
        ({"count": True}, "“count” must be a whole number"),
        ({"count": 0}, "“count” must be a whole number"),
        ({"gpus": "0"}, "“gpus” must be a list"),
        ({"gpus": [-1]}, "“gpus” must be a list"),
        ({"shared": "yes"}, "“shared” must be true or false"),
        ({"note": "x" * 201}, "at most 200 characters"),
    ],
)
def test_a_bad_selection_is_refused_with_a_message_and_books_nothing(
    alice_client: Client, gpus: list[GPU], changes: dict[str, Any], words: str
) -> None:
    response = post_json(alice_client, CREATE, _create_body(gpus, **changes))
    assert response.status_code == 400
    assert response.json()["rule"] == "input"
    assert words in response.json()["error"]
    assert not Booking.objects.exists()


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"'])
def test_a_body_that_is_not_a_json_object_is_refused(alice_client: Client, gpus: list[GPU], raw: str) -> None:
    response = post_json(alice_client, CREATE, raw)
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    assert not Booking.objects.exists()


def test_an_off_grid_selection_names_the_slot_rule(alice_client: Client, gpus: list[GPU]) -> None:
    start = next_slot(2) + timedelta(minutes=10)
    response = post_json(alice_client, CREATE, _create_body(gpus, start=iso(start)))
    assert response.status_code == 400
    assert response.json()["rule"] == "slot"
    assert "30-minute grid" in response.json()["error"]


def test_a_selection_in_the_past_names_the_rule(alice_client: Client, gpus: list[GPU]) -> None:
    start = next_slot(-5)
    response = post_json(
        alice_client, CREATE, _create_body(gpus, start=iso(start), end=iso(start + timedelta(hours=1)))
    )
    assert response.status_code == 400
    assert response.json()["rule"] == "past"


def test_a_conflict_is_409_with_the_booking_in_the_way(
    alice_client: Client, alice: User, bob: User, gpus: list[GPU]
) -> None:
    theirs = book(bob, gpus[0].host, start_h=2, hours=2, gpu_indexes=[0])
    response = post_json(alice_client, CREATE, _create_body(gpus, count=None, gpus=[0]))
    assert response.status_code == 409
    body = response.json()
    assert body["rule"] == "conflict"
    assert "GPU 0 is booked by bob" in body["error"]
    assert body["conflicting"] == {
        "id": theirs.pk,
        "member": "bob",
        "gpus": [0],
        "start": iso(theirs.start),
        "end": iso(theirs.end),
        "span": body["conflicting"]["span"],
        "shared": False,
    }
    assert Booking.objects.filter(user=alice).count() == 0


def test_a_write_without_the_csrf_header_is_refused(alice: User, gpus: list[GPU]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = post_json(client, CREATE, _create_body(gpus))
    assert response.status_code == 403
    assert not Booking.objects.exists()


# --- change, release, cancel, extend -----------------------------------------------------


def test_the_holder_moves_her_booking(alice_client: Client, alice: User, gpus: list[GPU]) -> None:
    booking = book(alice, gpus[0].host)
    start = next_slot(5)
    response = post_json(
        alice_client,
        reverse("gpus:calendar-change", args=[booking.pk]),
        {"start": iso(start), "end": iso(start + timedelta(hours=3))},
    )
    assert response.status_code == 200
    assert f"Moved booking {booking.pk}" in response.json()["message"]
    booking.refresh_from_db()
    assert (booking.start, booking.end) == (start, start + timedelta(hours=3))
    assert list(BookingGPU.objects.values_list("start", flat=True)) == [start]


def test_another_members_booking_is_403_and_audited_and_unchanged(
    bob_client: Client, alice: User, bob: User, gpus: list[GPU]
) -> None:
    booking = book(alice, gpus[0].host)
    before = refused_rows()
    for name in ("change", "release", "cancel", "extend"):
        response = post_json(
            bob_client,
            reverse(f"gpus:calendar-{name}", args=[booking.pk]),
            {"start": iso(next_slot(5)), "end": iso(next_slot(6))},
        )
        assert response.status_code == 403
        assert response.json()["rule"] == "owner"
    assert refused_rows() == before + 4
    assert AuditEvent.objects.filter(action="booking.denied", actor=bob).count() == 4
    fresh = Booking.objects.get(pk=booking.pk)
    assert (fresh.start, fresh.end, fresh.state) == (booking.start, booking.end, Booking.State.BOOKED)


def test_an_admin_may_move_a_members_booking(admin_client: Client, alice: User, gpus: list[GPU]) -> None:
    booking = book(alice, gpus[0].host)
    start = next_slot(6)
    response = post_json(
        admin_client,
        reverse("gpus:calendar-change", args=[booking.pk]),
        {"start": iso(start), "end": iso(start + timedelta(hours=1))},
    )
    assert response.status_code == 200


def test_a_move_into_another_booking_is_409_naming_it(
    alice_client: Client, alice: User, bob: User, gpus: list[GPU]
) -> None:
    mine = book(alice, gpus[0].host, start_h=1, hours=1, gpu_indexes=[0])
    theirs = book(bob, gpus[0].host, start_h=3, hours=2, gpu_indexes=[0])
    response = post_json(
        alice_client,
        reverse("gpus:calendar-change", args=[mine.pk]),
        {"start": iso(next_slot(3)), "end": iso(next_slot(4))},
    )
    assert response.status_code == 409
    assert response.json()["conflicting"]["id"] == theirs.pk
    mine.refresh_from_db()
    assert mine.start == next_slot(1)


@pytest.mark.parametrize(
    ("body", "status", "rule"),
    [
        ({}, 400, "input"),
        ({"start": "noon", "end": "later"}, 400, "input"),
        ("[]", 400, "input"),
        ({"offgrid": True}, 400, "slot"),
    ],
)
def test_a_bad_move_is_refused_and_changes_nothing(
    alice_client: Client, alice: User, gpus: list[GPU], body: Any, status: int, rule: str
) -> None:
    booking = book(alice, gpus[0].host)
    if isinstance(body, dict) and body.get("offgrid"):
        body = {"start": iso(next_slot(4) + timedelta(minutes=7)), "end": iso(next_slot(5))}
    response = post_json(alice_client, reverse("gpus:calendar-change", args=[booking.pk]), body)
    assert response.status_code == status
    assert response.json()["rule"] == rule
    fresh = Booking.objects.get(pk=booking.pk)
    assert (fresh.start, fresh.end) == (booking.start, booking.end)


def test_a_missing_booking_is_404(alice_client: Client, gpus: list[GPU]) -> None:
    response = post_json(alice_client, reverse("gpus:calendar-release", args=[999999]), {})
    assert response.status_code == 404
    assert response.json()["rule"] == "missing"


def test_release_gives_the_gpus_back_now(alice_client: Client, alice: User, gpus: list[GPU]) -> None:
    booking = now_booking(alice, gpus[0].host)
    response = post_json(alice_client, reverse("gpus:calendar-release", args=[booking.pk]), {})
    assert response.status_code == 200
    assert f"Released booking {booking.pk}" in response.json()["message"]
    booking.refresh_from_db()
    assert booking.state == Booking.State.RELEASED
    assert booking.end <= timezone.now()
    assert not BookingGPU.objects.filter(holds=True).exists()


def test_cancel_calls_off_a_booking_that_has_not_started(alice_client: Client, alice: User, gpus: list[GPU]) -> None:
    booking = book(alice, gpus[0].host)
    response = post_json(alice_client, reverse("gpus:calendar-cancel", args=[booking.pk]), {})
    assert response.status_code == 200
    assert "Cancelled" in response.json()["message"]
    assert Booking.objects.get().state == Booking.State.CANCELLED
    again = post_json(alice_client, reverse("gpus:calendar-cancel", args=[booking.pk]), {})
    assert again.status_code == 400
    assert again.json()["rule"] == "final"


def test_extend_adds_one_slot_unless_someone_holds_it(
    alice_client: Client, alice: User, bob: User, gpus: list[GPU]
) -> None:
    booking = book(alice, gpus[0].host, start_h=1, hours=1, gpu_indexes=[0])
    response = post_json(alice_client, reverse("gpus:calendar-extend", args=[booking.pk]), {})
    assert response.status_code == 200
    booking.refresh_from_db()
    assert booking.end == next_slot(2) + timedelta(minutes=30)
    theirs = booking_create(
        user=bob, host=gpus[0].host, start=booking.end, end=booking.end + timedelta(hours=1), gpu_indexes=[0], actor=bob
    )
    refused = post_json(alice_client, reverse("gpus:calendar-extend", args=[booking.pk]), {})
    assert refused.status_code == 409
    assert refused.json()["conflicting"]["id"] == theirs.pk


def test_the_plain_release_and_cancel_buttons_go_back_with_a_message(
    alice_client: Client, alice: User, gpus: list[GPU]
) -> None:
    running = now_booking(alice, gpus[0].host, gpu_indexes=[0])
    later = book(alice, gpus[0].host, start_h=3, gpu_indexes=[1])
    response = alice_client.post(reverse("gpus:calendar-release", args=[running.pk]), follow=True)
    assert f"Released booking {running.pk}" in response.content.decode()
    response = alice_client.post(reverse("gpus:calendar-cancel", args=[later.pk]), {"next": "/"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert f"Cancelled booking {later.pk}" in response.content.decode()
    again = alice_client.post(reverse("gpus:calendar-cancel", args=[later.pk]), follow=True)
    assert "it can&#x27;t change any more" in again.content.decode()


def test_a_plain_post_never_goes_back_to_another_site(alice_client: Client, alice: User, gpus: list[GPU]) -> None:
    booking = book(alice, gpus[0].host)
    response = alice_client.post(reverse("gpus:calendar-cancel", args=[booking.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("gpus:calendar")


# --- the plain form ----------------------------------------------------------------------


def _form(host: Host, day: date, start: str, end: str, **extra: str) -> dict[str, str]:
    return {"host": str(host.pk), "gpus": "n:1", "date": day.isoformat(), "start": start, "end": end, **extra}


def test_the_plain_form_books_and_says_so(alice_client: Client, alice: User, gpus: list[GPU]) -> None:
    start = timezone.localtime(next_slot(3))
    data = _form(gpus[0].host, start.date(), f"{start:%H:%M}", f"{start + timedelta(hours=1):%H:%M}", note="plain")
    response = alice_client.post(BOOK, data, follow=True)
    assert "Booked GPU 0 for" in response.content.decode()
    booking = Booking.objects.get()
    assert (booking.start, booking.end - booking.start, booking.note) == (start, timedelta(hours=1), "plain")


def test_the_plain_form_can_name_one_gpu(alice_client: Client, alice: User, gpus: list[GPU]) -> None:
    start = timezone.localtime(next_slot(3))
    data = _form(gpus[0].host, start.date(), f"{start:%H:%M}", f"{start + timedelta(hours=1):%H:%M}", gpus="i:1")
    alice_client.post(BOOK, data)
    assert [g.index for g in Booking.objects.get().gpu_list] == [1]


def test_an_end_before_the_start_is_on_the_next_day(berlin: None, alice_client: Client, gpus: list[GPU]) -> None:
    tomorrow = timezone.localdate() + timedelta(days=1)
    alice_client.post(BOOK, _form(gpus[0].host, tomorrow, "22:00", "02:00"))
    booking = Booking.objects.get()
    assert timezone.localtime(booking.end).date() == tomorrow + timedelta(days=1)
    assert booking.duration == timedelta(hours=4)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"date": ""}, "date", "This field is required"),
        ({"date": "31.02.2027"}, "date", "Enter a valid date"),
        ({"start": "25:00"}, "start", "Enter a valid time"),
        ({"gpus": "n:99"}, "gpus", "Select a valid choice"),
        ({"host": "999"}, "host", "Select a valid choice"),
        ({"note": "x" * 201}, "note", "at most 200 characters"),
    ],
)
def test_the_plain_form_shows_its_errors_next_to_the_fields(
    alice_client: Client, gpus: list[GPU], changes: dict[str, str], field: str, words: str
) -> None:
    data = {**_form(gpus[0].host, timezone.localdate() + timedelta(days=1), "10:00", "11:00"), **changes}
    response = alice_client.post(BOOK, data)
    assert response.status_code == 400
    assert words in str(response.context["form"].errors[field])
    assert f'id="id_{field}_error"' in response.content.decode()
    assert not Booking.objects.exists()


def test_the_plain_form_shows_the_rule_that_refused(alice_client: Client, bob: User, gpus: list[GPU]) -> None:
    tomorrow = timezone.localdate() + timedelta(days=1)
    off_grid = alice_client.post(BOOK, _form(gpus[0].host, tomorrow, "10:10", "11:00"))
    assert off_grid.status_code == 400
    assert "30-minute grid" in off_grid.content.decode()
    for index in (0, 1):
        start = timezone.make_aware(datetime.combine(tomorrow, time(10)))
        booking_create(
            user=bob, host=gpus[0].host, start=start, end=start + timedelta(hours=2), gpu_indexes=[index], actor=bob
        )
    taken = alice_client.post(BOOK, _form(gpus[0].host, tomorrow, "10:30", "11:00"))
    assert taken.status_code == 409
    assert "is booked by bob" in taken.content.decode()
    assert Booking.objects.filter(user__username="alice").count() == 0


def _last_sunday(month: int) -> date:
    """The last Sunday of ``month`` next time it comes (the EU's clock change)."""
    today = timezone.localdate()
    year = today.year if today < date(today.year, month, 20) else today.year + 1
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def test_a_booking_across_the_october_clock_change_lasts_its_real_length(
    berlin: None, alice_client: Client, alice: User, gpus: list[GPU], policy: BookingPolicy
) -> None:
    policy.horizon_days = 366
    policy.save()
    sunday = _last_sunday(10)
    response = alice_client.post(BOOK, _form(gpus[0].host, sunday, "00:00", "06:00"))
    assert response.status_code == 302, response.content.decode()[:2000]
    booking = Booking.objects.get()
    assert booking.duration == timedelta(hours=7)  # 02:00-03:00 happens twice that night
    assert timezone.localtime(booking.start).utcoffset() == timedelta(hours=2)
    assert timezone.localtime(booking.end).utcoffset() == timedelta(hours=1)


def test_a_time_the_clocks_skip_in_march_is_refused(
    berlin: None, alice_client: Client, gpus: list[GPU], policy: BookingPolicy
) -> None:
    policy.horizon_days = 366
    policy.save()
    response = alice_client.post(BOOK, _form(gpus[0].host, _last_sunday(3), "02:30", "04:00"))
    assert response.status_code == 400
    assert "doesn&#x27;t exist" in response.content.decode()
    assert not Booking.objects.exists()


def test_a_shared_booking_is_made_only_when_the_policy_shares(
    alice_client: Client, bob_client: Client, gpus: list[GPU], policy: BookingPolicy
) -> None:
    refused = post_json(alice_client, CREATE, _create_body(gpus, count=None, gpus=[0], shared=True))
    assert refused.status_code == 400
    assert refused.json()["rule"] == "shared"
    policy.shared_slots = 2
    policy.save()
    assert post_json(alice_client, CREATE, _create_body(gpus, count=None, gpus=[0], shared=True)).status_code == 201
    assert post_json(bob_client, CREATE, _create_body(gpus, count=None, gpus=[0], shared=True)).status_code == 201
    events = bob_client.get(EVENTS, {"start": iso(next_slot(0)), "end": iso(next_slot(24))}).json()
    assert sorted(e["title"] for e in events) == ["GPU 0 · alice · shared", "GPU 0 · bob · shared"]


def test_with_several_servers_the_page_and_its_events_show_the_one_picked(
    alice_client: Client, alice: User, gpus: list[GPU]
) -> None:
    other = Host.objects.create(name="gpu2", queue="host.gpu2")
    GPU.objects.create(host=other, index=0, name="H200")
    alice.host = other  # bookings follow the member's server
    alice.save(update_fields=["host"])
    start = next_slot(2)
    booking_create(user=alice, host=other, start=start, end=start + timedelta(hours=1), actor=alice, note="on gpu2")
    body = alice_client.get(reverse("gpus:calendar"), {"host": other.pk}).content.decode()
    assert 'id="host-pick"' in body
    assert "H200" in body
    assert "RTX 5080" not in body.split('id="book-form"')[0]
    params = {"start": iso(next_slot(0)), "end": iso(next_slot(24))}
    assert alice_client.get(EVENTS, {**params, "host": gpus[0].host_id}).json() == []
    assert len(alice_client.get(EVENTS, {**params, "host": other.pk}).json()) == 1


def test_an_admin_may_drag_every_booking_a_member_only_her_own(
    admin_client: Client, bob_client: Client, alice: User, gpus: list[GPU]
) -> None:
    book(alice, gpus[0].host)
    params = {"start": iso(next_slot(0)), "end": iso(next_slot(24))}
    (as_admin,) = admin_client.get(EVENTS, params).json()
    (as_bob,) = bob_client.get(EVENTS, params).json()
    assert (as_admin["startEditable"], as_admin["extendedProps"]["mayChange"]) == (True, True)
    assert (as_bob["startEditable"], as_bob["extendedProps"]["mayChange"]) == (False, False)


def test_an_admin_books_for_a_member_past_the_policy_audited(
    admin_client: Client, admin_user: User, alice: User, gpus: list[GPU]
) -> None:
    day = timezone.localdate() + timedelta(days=2)
    until = (day + timedelta(days=10)).isoformat()
    data = _form(gpus[0].host, day, "08:00", "06:00", end_date=until, member="alice", override="on")
    response = admin_client.post(BOOK, data, follow=True)
    assert "for alice" in response.content.decode()
    booking = Booking.objects.get()
    assert booking.user == alice
    assert booking.override
    assert booking.duration > timedelta(hours=168)  # longer than the policy allows
    event = AuditEvent.objects.get(action="booking.create")
    assert event.actor == admin_user
    assert event.detail["override"] is True


def test_without_override_an_admin_is_held_to_the_policy(admin_client: Client, alice: User, gpus: list[GPU]) -> None:
    day = timezone.localdate() + timedelta(days=2)
    until = (day + timedelta(days=10)).isoformat()
    response = admin_client.post(BOOK, _form(gpus[0].host, day, "08:00", "06:00", end_date=until, member="alice"))
    assert response.status_code == 400
    assert "at most 168 hours" in response.content.decode()
    assert not Booking.objects.exists()


def test_a_member_cannot_book_for_someone_else_or_past_the_policy(
    alice_client: Client, bob: User, gpus: list[GPU]
) -> None:
    day = timezone.localdate() + timedelta(days=2)
    alice_client.post(BOOK, _form(gpus[0].host, day, "08:00", "09:00", member="bob", override="on"))
    booking = Booking.objects.get()
    assert booking.user.username == "alice"  # members have no such fields: ignored
    assert not booking.override
