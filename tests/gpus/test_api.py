"""The JSON API on the real PostgreSQL: a member's API token books, changes, extends, releases
and cancels; refusals are JSON with the rule that refused, and bad bodies are 4xx with
nothing half-done."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gpus.models import GPU, Booking, BookingGPU, BookingPolicy, Token
from gpus.services import booking_create, slot_floor
from gpus.tokens import token_create, token_revoke
from portal.models import AuditEvent, Host, User
from tests.gpus.apiclient import API, ApiClient, api_client
from tests.gpus.conftest import next_slot

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_api(alice: User, gpus: list[GPU]) -> ApiClient:
    alice.quota.max_gpus = 2
    alice.quota.save()
    return api_client(alice)


@pytest.fixture
def bob_api(bob: User, gpus: list[GPU]) -> ApiClient:
    return api_client(bob)


def span(start_h: int = 1, hours: int = 2) -> dict[str, str]:
    start = next_slot(start_h)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()}


def book(user: User, host: Host, start_h: int = 1, hours: int = 2, **kw: Any) -> Booking:
    start = next_slot(start_h)
    return booking_create(user=user, host=host, start=start, end=start + timedelta(hours=hours), actor=user, **kw)


def started(user: User, host: Host, **kw: Any) -> Booking:
    """A booking that began a slot ago and runs for two hours."""
    slot = BookingPolicy.current().slot
    start = slot_floor(timezone.now(), slot) - slot
    return booking_create(
        user=user, host=host, start=start, end=start + timedelta(hours=2), actor=user, now=start + timedelta(minutes=1)
    )


# --- who may call ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/gpus", "/bookings"])
def test_without_a_token_the_answer_is_401_even_with_a_session(alice_client: Client, path: str) -> None:
    response = alice_client.get(API + path)
    assert response.status_code == 401
    assert response.json()["rule"] == "token"
    assert "Authorization: Bearer" in response.json()["error"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_or_wrong_kind_of_token_is_401(alice: User, gpus: list[GPU]) -> None:
    token, secret = token_create(user=alice, kind=Token.Kind.API, name="x", actor=alice)
    _, feed_secret = token_create(user=alice, kind=Token.Kind.FEED, name="cal", actor=alice)
    assert ApiClient(secret).get(API + "/gpus").status_code == 200
    token_revoke(token=token, actor=alice)
    for bad in (secret, feed_secret, "gpa_nonsense"):
        response = ApiClient(bad).get(API + "/gpus")
        assert response.status_code == 401, bad
        assert response.json()["error"].startswith("This API token is not valid")
    response = Client(headers={"Authorization": f"Basic {secret}"}).get(API + "/gpus")
    assert response.status_code == 401
    assert response.json()["error"].startswith("Send your API token as")


def test_the_token_is_the_member_and_no_csrf_token_is_needed(alice: User, host: Host, alice_api: ApiClient) -> None:
    client = ApiClient(
        token_create(user=alice, kind=Token.Kind.API, name="x", actor=alice)[1], enforce_csrf_checks=True
    )
    response = client.send("post", "/bookings", {"gpus": 1, **span()})
    assert response.status_code == 201
    assert Booking.objects.get().user == alice


# --- reading -----------------------------------------------------------------------------


def test_gpus_says_which_are_free_and_who_holds_the_others(
    alice: User, bob: User, host: Host, gpus: list[GPU], alice_api: ApiClient
) -> None:
    held = started(bob, host)
    body = alice_api.get(API + "/gpus").json()
    assert body["host"] == host.name
    assert [g["index"] for g in body["gpus"]] == [0, 1]
    first, second = body["gpus"]
    assert first["free"] is False
    assert first["held_by"] == [
        {"booking": held.pk, "member": "bob", "shared": False, "until": timezone.localtime(held.end).isoformat()}
    ]
    assert second == {
        "index": 1,
        "uuid": gpus[1].uuid,
        "name": "RTX 5080",
        "memory_bytes": None,
        "free": True,
        "held_by": [],
    }


def test_an_unknown_host_is_named_in_the_refusal(alice_api: ApiClient) -> None:
    response = alice_api.get(API + "/gpus", {"host": "nowhere"})
    assert response.status_code == 400
    assert response.json() == {"error": "There is no server “nowhere”; servers with GPUs: local.", "rule": "host"}


def test_bookings_lists_everyones_for_the_coming_week_and_mine_only_on_request(
    alice: User, bob: User, host: Host, alice_api: ApiClient
) -> None:
    mine = book(alice, host, start_h=1)
    theirs = book(bob, host, start_h=3)
    book(bob, host, start_h=24 * 9)  # beyond the week
    assert [b["id"] for b in alice_api.get(API + "/bookings").json()["bookings"]] == [mine.pk, theirs.pk]
    assert [b["id"] for b in alice_api.get(API + "/bookings", {"mine": "1"}).json()["bookings"]] == [mine.pk]


def test_bookings_takes_a_span_with_offsets_even_when_the_plus_became_a_space(
    alice: User, host: Host, alice_api: ApiClient
) -> None:
    later = book(alice, host, start_h=24 * 9)
    start = timezone.localtime(later.start).astimezone(timezone.get_fixed_timezone(60))
    end = start + timedelta(hours=1)
    query = f"from={start.isoformat().replace('+', '%20')}&to={end.isoformat().replace('+', '%2B')}"
    body = alice_api.get(f"{API}/bookings?{query}").json()
    assert [b["id"] for b in body["bookings"]] == [later.pk]


@pytest.mark.parametrize(
    ("query", "rule"),
    [
        ({"from": "2026-12-03T14:00"}, "timezone"),
        ({"from": "tomorrow"}, "type"),
        ({"from": "2026-12-03T14:00Z", "to": "2026-12-03T13:00Z"}, "order"),
        ({"from": "2026-01-01T00:00Z", "to": "2026-12-31T00:00Z"}, "range"),
        ({"mine": "perhaps"}, "type"),
        ({"limit": "5"}, "unknown_field"),
    ],
)
def test_a_bad_query_is_400_naming_the_rule(alice_api: ApiClient, query: dict[str, str], rule: str) -> None:
    response = alice_api.get(API + "/bookings", query)
    assert response.status_code == 400
    assert response.json()["rule"] == rule


def test_one_booking_reads_as_json_in_the_teams_time_zone(alice: User, bob: User, host: Host, gpus: list[GPU]) -> None:
    with override_settings(TIME_ZONE="Europe/Berlin"):
        booking = book(alice, host, gpu_indexes=[1], note="training run")
        body = api_client(bob).get(f"{API}/bookings/{booking.pk}").json()
    assert body == {
        "id": booking.pk,
        "member": "alice",
        "host": "local",
        "gpus": [{"index": 1, "uuid": gpus[1].uuid, "name": "RTX 5080"}],
        "start": booking.start.astimezone(timezone.get_fixed_timezone(60)).isoformat(),
        "end": booking.end.astimezone(timezone.get_fixed_timezone(60)).isoformat(),
        "state": "booked",
        "shared": False,
        "note": "training run",
    }
    assert body["start"].endswith("+01:00")


def test_an_unknown_booking_is_404(alice_api: ApiClient) -> None:
    for pk in (999999, 10**30):
        response = alice_api.get(f"{API}/bookings/{pk}")
        assert response.status_code == 404
        assert response.json()["rule"] == "not_found"


def test_a_method_the_url_does_not_take_is_405_with_allow(alice_api: ApiClient) -> None:
    response = alice_api.send("put", "/bookings", {})
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, POST"
    assert alice_api.get(API + "/bookings/1/release").status_code == 405


# --- booking -----------------------------------------------------------------------------


def test_a_booking_is_made_with_201_and_its_json(alice: User, host: Host, alice_api: ApiClient) -> None:
    response = alice_api.send("post", "/bookings", {"gpus": 2, "note": "sweep", **span()})
    assert response.status_code == 201
    body = response.json()
    booking = Booking.objects.get()
    assert response["Location"] == f"{API}/bookings/{booking.pk}"
    assert body["id"] == booking.pk
    assert body["member"] == "alice"
    assert [g["index"] for g in body["gpus"]] == [0, 1]
    assert datetime.fromisoformat(body["start"]) == booking.start
    assert body["note"] == "sweep"
    event = AuditEvent.objects.get(action="booking.create")
    assert event.actor == alice
    assert event.ip == "127.0.0.1"


def test_hours_and_chosen_gpus_and_the_default_start_of_the_current_slot(
    alice: User, host: Host, alice_api: ApiClient
) -> None:
    response = alice_api.send("post", "/bookings", {"gpu_indexes": [1], "hours": 1.5})
    assert response.status_code == 201, response.json()
    booking = Booking.objects.get()
    assert booking.start == slot_floor(timezone.now(), BookingPolicy.current().slot)
    assert booking.duration == timedelta(minutes=90)
    assert [g.index for g in booking.gpu_list] == [1]


def test_a_conflict_is_409_naming_the_booking_in_the_way(
    alice: User, bob: User, host: Host, gpus: list[GPU], bob_api: ApiClient
) -> None:
    theirs = book(alice, host, gpu_indexes=[0])
    response = bob_api.send("post", "/bookings", {"gpu_indexes": [0], **span(start_h=2)})
    assert response.status_code == 409
    body = response.json()
    assert body["rule"] == "conflict"
    assert "alice" in body["error"]
    assert body["conflicting"] == {
        "id": theirs.pk,
        "member": "alice",
        "gpus": [0],
        "start": timezone.localtime(theirs.start).isoformat(),
        "end": timezone.localtime(theirs.end).isoformat(),
    }
    assert Booking.objects.count() == 1


def test_a_policy_refusal_is_400_with_its_rule_and_nothing_is_made(host: Host, alice_api: ApiClient) -> None:
    start = next_slot(1) + timedelta(minutes=10)
    response = alice_api.send("post", "/bookings", {"start": start.isoformat(), "hours": 1})
    assert response.status_code == 400
    assert response.json()["rule"] == "slot"
    assert "grid" in response.json()["error"]
    response = alice_api.send("post", "/bookings", {"gpus": 3, **span()})
    assert response.json()["rule"] == "quota"
    response = alice_api.send("post", "/bookings", {"shared": True, **span()})
    assert response.json()["rule"] == "shared"
    assert not Booking.objects.exists()
    assert not BookingGPU.objects.exists()


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({"start": "2026-12-03T14:00:00", "hours": 1}, "timezone"),
        ({"start": 1733234400, "hours": 1}, "type"),
        ({"gpus": "2", "hours": 1}, "type"),
        ({"gpus": True, "hours": 1}, "type"),
        ({"gpus": 0, "hours": 1}, "range"),
        ({"gpu_indexes": 0, "hours": 1}, "type"),
        ({"gpu_indexes": [], "hours": 1}, "type"),
        ({"gpu_indexes": [0, "1"], "hours": 1}, "type"),
        ({"gpus": 1, "gpu_indexes": [0], "hours": 1}, "body"),
        ({"hours": 1, "end": "2026-12-03T14:00:00Z"}, "body"),
        ({"gpus": 1}, "body"),
        ({"hours": -1}, "range"),
        ({"hours": "4h"}, "type"),
        ({"hours": 1, "shared": "yes"}, "type"),
        ({"hours": 1, "note": 5}, "type"),
        ({"hours": 1, "note": "x" * 201}, "type"),
        ({"hours": 1, "note": "a\x00b"}, "type"),
        ({"hours": 1, "host": ["local"]}, "type"),
        ({"hours": 1, "colour": "red"}, "unknown_field"),
        ({"start": "9999-12-31T23:59:59-23:59", "hours": 1}, "range"),
    ],
)
def test_a_malformed_body_is_400_with_the_field_named(alice_api: ApiClient, body: dict[str, Any], rule: str) -> None:
    response = alice_api.send("post", "/bookings", body)
    assert response.status_code == 400, response.json()
    assert response.json()["rule"] == rule
    assert not Booking.objects.exists()


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("gpus=1&hours=2", "application/x-www-form-urlencoded", 415),
        ('{"gpus": 1,', "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ('{"hours": NaN}', "application/json", 400),
        ("[" * 100000 + "]" * 100000, "application/json", 400),
        (b"\xff\xfe{", "application/json", 400),
        ("", "application/json", 400),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    alice_api: ApiClient, data: str | bytes, content_type: str, status: int
) -> None:
    response = alice_api.generic("POST", API + "/bookings", data, content_type=content_type)
    assert response.status_code == status
    assert "error" in response.json()
    assert not Booking.objects.exists()


# --- changing ----------------------------------------------------------------------------


def test_the_holder_moves_extends_releases_and_cancels(alice: User, host: Host, alice_api: ApiClient) -> None:
    future = book(alice, host, start_h=2)
    new = span(start_h=3, hours=1)
    response = alice_api.send("patch", f"/bookings/{future.pk}", new)
    assert response.status_code == 200, response.json()
    assert datetime.fromisoformat(response.json()["start"]) == datetime.fromisoformat(new["start"])
    response = alice_api.send("post", f"/bookings/{future.pk}/extend", {"minutes": 60})
    assert datetime.fromisoformat(response.json()["end"]) == datetime.fromisoformat(new["end"]) + timedelta(hours=1)
    assert alice_api.send("delete", f"/bookings/{future.pk}").json()["state"] == "cancelled"
    running = started(alice, host)
    response = alice_api.send("post", f"/bookings/{running.pk}/release")
    assert response.status_code == 200
    assert response.json()["state"] == "released"
    running.refresh_from_db()
    assert running.end <= timezone.now()
    assert not BookingGPU.objects.filter(holds=True).exists()


def test_changing_a_final_booking_is_400_final(alice: User, host: Host, alice_api: ApiClient) -> None:
    booking = book(alice, host)
    alice_api.send("delete", f"/bookings/{booking.pk}")
    response = alice_api.send("post", f"/bookings/{booking.pk}/extend", {"minutes": 30})
    assert response.status_code == 400
    assert response.json()["rule"] == "final"


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("", "patch", {"end": "2030-01-01T00:00:00Z"}),
        ("", "delete", None),
        ("/extend", "post", {"minutes": 30}),
        ("/release", "post", None),
    ],
)
def test_another_members_booking_is_403_audited_and_unchanged(
    alice: User, bob: User, host: Host, bob_api: ApiClient, path: str, method: str, body: Any
) -> None:
    booking = book(alice, host)
    response = bob_api.send(method, f"/bookings/{booking.pk}{path}", body)
    assert response.status_code == 403
    assert response.json()["rule"] == "owner"
    refused = AuditEvent.objects.get(outcome=AuditEvent.Outcome.REFUSED)
    assert (refused.action, refused.actor, refused.target_id) == ("booking.denied", bob, str(booking.pk))
    fresh = Booking.objects.get(pk=booking.pk)
    assert (fresh.state, fresh.start, fresh.end) == (booking.state, booking.start, booking.end)


def test_an_admin_may_change_a_members_booking(alice: User, admin_user: User, host: Host, gpus: list[GPU]) -> None:
    booking = book(alice, host)
    response = api_client(admin_user).send("post", f"/bookings/{booking.pk}/extend", {"minutes": 30})
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="booking.change").actor == admin_user


@pytest.mark.parametrize(
    ("path", "method", "body", "rule"),
    [
        ("", "patch", {}, "body"),
        ("", "patch", {"end": "soon"}, "type"),
        ("", "patch", {"state": "cancelled"}, "unknown_field"),
        ("/extend", "post", {}, "body"),
        ("/extend", "post", {"minutes": 0}, "range"),
        ("/extend", "post", {"minutes": 1.5}, "type"),
        ("/release", "post", {"now": True}, "unknown_field"),
    ],
)
def test_a_malformed_change_is_400_and_changes_nothing(
    alice: User, host: Host, alice_api: ApiClient, path: str, method: str, body: Any, rule: str
) -> None:
    booking = book(alice, host)
    response = alice_api.send(method, f"/bookings/{booking.pk}{path}", body)
    assert response.status_code == 400
    assert response.json()["rule"] == rule
    fresh = Booking.objects.get(pk=booking.pk)
    assert (fresh.state, fresh.start, fresh.end) == (booking.state, booking.start, booking.end)


def test_release_takes_a_post_with_no_body_and_no_content_type_as_curl_sends_it(
    alice: User, host: Host, alice_api: ApiClient
) -> None:
    running = started(alice, host)
    response = alice_api.generic("POST", f"{API}/bookings/{running.pk}/release", "", content_type="")
    assert response.status_code == 200
    assert response.json()["state"] == "released"


def test_listing_takes_the_same_queries_for_one_booking_or_many(
    alice: User, bob: User, host: Host, alice_api: ApiClient
) -> None:
    book(alice, host, start_h=1)
    alice_api.get(API + "/bookings")  # marks the token used, which is written once a minute

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert alice_api.get(API + "/bookings").status_code == 200
            assert alice_api.get(API + "/gpus").status_code == 200
        return len(captured.captured_queries)

    one = queries()
    for start_h in range(3, 30, 3):
        book(bob if start_h % 2 else alice, host, start_h=start_h, hours=1, gpu_indexes=[start_h % 2])
    assert queries() == one


def test_an_admins_token_books_for_a_member_past_the_policy(alice: User, admin_user: User, gpus: list[GPU]) -> None:
    admin_api = api_client(admin_user)
    body = {"member": "alice", "override": True, "gpu_indexes": [0], **span(hours=200)}
    response = admin_api.send("post", "/bookings", body)
    assert response.status_code == 201, response.json()
    booking = Booking.objects.get()
    assert (booking.user, booking.override, booking.created_by) == (alice, True, admin_user)
    unknown = admin_api.send("post", "/bookings", {**body, "member": "nobody"})
    assert unknown.status_code == 400
    assert unknown.json()["rule"] == "member"


def test_a_members_token_may_not_book_for_others_or_override(alice_api: ApiClient, bob: User) -> None:
    for extra in ({"member": "bob"}, {"override": True}):
        response = alice_api.send("post", "/bookings", {"gpus": 1, **span(), **extra})
        assert response.status_code == 400
        assert response.json()["rule"] == "unknown_field"
    assert not Booking.objects.exists()
