"""The /gpu slash command: requests signed here with the signing secret as Slack signs them,
and Slack's users.info served by a stand-in HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st

from gpus.models import GPU, Booking, BookingPolicy, SlackLink
from gpus.services import booking_create, slot_floor
from gpus.slack_command import run_command
from portal.audit import SYSTEM
from portal.models import AuditEvent, Host, User
from tests.factories import UserFactory
from tests.gpus.conftest import next_slot

pytestmark = pytest.mark.django_db

URL = "/gpus/slack/command"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token"


@dataclass
class SlackStandIn:
    """What users.info knows (Slack user id -> e-mail) and the requests it got."""

    emails: dict[str, str] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    broken: bool = False


@pytest.fixture(scope="module")
def users_info() -> Iterator[tuple[str, SlackStandIn]]:
    """One stand-in server for the module; each test gets it with nothing known."""
    stand_in = SlackStandIn()

    class UsersInfo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            user = parse_qs(url.query).get("user", [""])[0]
            stand_in.calls.append({"path": url.path, "user": user, "auth": self.headers.get("Authorization")})
            if stand_in.broken or self.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
                answer: dict[str, Any] = {"ok": False, "error": "invalid_auth"}
            elif user in stand_in.emails:
                answer = {"ok": True, "user": {"id": user, "profile": {"email": stand_in.emails[user]}}}
            else:
                answer = {"ok": False, "error": "user_not_found"}
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), UsersInfo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api", stand_in
    server.shutdown()
    server.server_close()


@pytest.fixture
def slack(users_info: tuple[str, SlackStandIn], settings: Any) -> SlackStandIn:
    url, stand_in = users_info
    stand_in.emails.clear()
    stand_in.calls.clear()
    stand_in.broken = False
    settings.SLACK_API_URL = url
    settings.SLACK_BOT_TOKEN = BOT_TOKEN
    settings.SLACK_SIGNING_SECRET = SECRET
    return stand_in


def sign(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def form(text: str, user_id: str = "U0ALICE") -> bytes:
    fields = {
        "token": "legacy",
        "team_id": "T0TEAM",
        "user_id": user_id,
        "user_name": "alice",
        "command": "/gpu",
        "text": text,
        "response_url": "https://hooks.slack.com/commands/T0TEAM/1/x",
    }
    return urlencode(fields).encode()


def send(body: bytes, *, timestamp: str | None = None, secret: str = SECRET, signature: str | None = None) -> Any:
    ts = str(int(time.time())) if timestamp is None else timestamp
    headers = {"X-Slack-Signature": signature or sign(body, ts, secret), "X-Slack-Request-Timestamp": ts}
    return Client().post(URL, body, content_type="application/x-www-form-urlencoded", headers=headers)


def gpu(text: str, user_id: str = "U0ALICE") -> str:
    response = send(form(text, user_id))
    assert response.status_code == 200, response.content
    reply = response.json()
    assert reply["response_type"] == "ephemeral"
    return str(reply["text"])


@pytest.fixture
def alice_on_slack(alice: User, slack: SlackStandIn, gpus: list[GPU]) -> User:
    slack.emails["U0ALICE"] = "Alice@Corp.Example"
    alice.quota.max_gpus = 2
    alice.quota.save()
    return alice


# --- signatures -------------------------------------------------------------------------------


def test_a_correctly_signed_request_is_answered(alice_on_slack: User) -> None:
    assert "/gpu book" in gpu("help")


@pytest.mark.parametrize(
    "tamper",
    [
        {"secret": "not-the-secret"},
        {"age": 301},
        {"age": -301},
        {"timestamp": "soon"},
        {"timestamp": ""},
        {"signature": "v0=" + "0" * 64},
        {"signature": "v1=abc"},
        {"signature": "v0=ünïcode"},
    ],
)
def test_a_badly_signed_or_stale_request_is_401(alice_on_slack: User, tamper: dict[str, Any]) -> None:
    if "age" in tamper:  # seconds before now (or after it, when negative)
        tamper = {"timestamp": str(int(time.time()) - tamper["age"])}
    response = send(form("book 4h"), **tamper)
    assert response.status_code == 401
    assert not Booking.objects.exists()
    assert not SlackLink.objects.exists()


def test_a_signature_of_another_body_is_401(alice_on_slack: User) -> None:
    ts = str(int(time.time()))
    response = send(form("book 8h"), timestamp=ts, signature=sign(form("help"), ts))
    assert response.status_code == 401
    assert not Booking.objects.exists()


def test_a_request_four_minutes_old_is_still_fine(alice_on_slack: User) -> None:
    assert send(form("help"), timestamp=str(int(time.time()) - 240)).status_code == 200


def test_without_a_signing_secret_every_request_is_refused(alice_on_slack: User, settings: Any) -> None:
    settings.SLACK_SIGNING_SECRET = ""
    assert send(form("help"), secret="").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        urlencode({"text": "help"}).encode(),
        urlencode({"user_id": "alice", "text": "help"}).encode(),
        urlencode({"user_id": "U0ALICE", "text": "x" * 501}).encode(),
        b"\xff\xfe\x00user_id=U0ALICE",
        b"&".join([b"a=1"] * 100),
    ],
)
def test_a_malformed_body_is_400(alice_on_slack: User, body: bytes) -> None:
    assert send(body).status_code == 400


def test_get_is_405(slack: SlackStandIn) -> None:
    assert Client().get(URL).status_code == 405


# --- who is asking ----------------------------------------------------------------------------


def test_the_slack_user_is_linked_by_email_once_and_then_remembered(alice_on_slack: User, slack: SlackStandIn) -> None:
    gpu("list")
    assert slack.calls == [{"path": "/api/users.info", "user": "U0ALICE", "auth": f"Bearer {BOT_TOKEN}"}]
    link = SlackLink.objects.get()
    assert (link.slack_user_id, link.user) == ("U0ALICE", alice_on_slack)
    assert AuditEvent.objects.filter(action="slack.link", actor=alice_on_slack).count() == 1
    gpu("list")
    assert len(slack.calls) == 1


def test_an_unknown_email_is_told_to_log_in_once(slack: SlackStandIn, db: None) -> None:
    slack.emails["U0ERIN"] = "erin@corp.example"
    UserFactory(username="erin", email="erin@corp.example", status=User.Status.INVITED)
    reply = gpu("book 4h", user_id="U0ERIN")
    assert reply == "I don't know you; log in to the portal once with erin@corp.example, then try /gpu again."
    assert not SlackLink.objects.exists()
    assert not Booking.objects.exists()


def test_when_slack_does_not_answer_the_member_is_told_to_retry(slack: SlackStandIn, alice: User) -> None:
    slack.emails["U0ALICE"] = alice.email
    slack.broken = True
    assert "couldn't ask Slack" in gpu("free")
    assert not SlackLink.objects.exists()


def test_a_slack_user_without_an_email_is_told_so(slack: SlackStandIn, alice: User) -> None:
    slack.emails["U0ALICE"] = ""
    assert "didn't give me your e-mail" in gpu("free")


def test_a_suspended_members_link_books_nothing(alice_on_slack: User) -> None:
    SlackLink.objects.create(slack_user_id="U0ALICE", user=alice_on_slack)
    User.objects.filter(pk=alice_on_slack.pk).update(is_active=False, status=User.Status.SUSPENDED)
    assert "not active" in gpu("book 4h")
    assert not Booking.objects.exists()


# --- the commands -----------------------------------------------------------------------------


def test_help_and_an_unknown_command(alice_on_slack: User) -> None:
    assert "/gpu release" in gpu("")
    reply = gpu("reboot")
    assert reply.startswith("I don't know “reboot”.")
    assert "/gpu free" in reply


def test_book_takes_the_current_slot_and_says_what_it_booked(alice_on_slack: User, host: Host) -> None:
    reply = gpu("book 4h")
    booking = Booking.objects.get()
    assert booking.user == alice_on_slack
    assert booking.start == slot_floor(timezone.now(), BookingPolicy.current().slot)
    assert booking.duration == timedelta(hours=4)
    assert reply.startswith("Booked GPU 0 on local for ")
    assert reply.endswith(f"(booking {booking.pk}).")
    assert AuditEvent.objects.get(action="booking.create").actor == alice_on_slack


def test_book_several_gpus_from_a_time(alice_on_slack: User, host: Host) -> None:
    start = timezone.localtime(next_slot(3))
    reply = gpu(f"book 2 1h30m from {start:%H:%M}")
    booking = Booking.objects.get()
    assert booking.start == start
    assert booking.duration == timedelta(minutes=90)
    assert [g.index for g in booking.gpu_list] == [0, 1]
    assert reply.startswith("Booked GPU 0, GPU 1 on local")


def test_a_time_already_past_today_means_tomorrow(alice_on_slack: User, host: Host) -> None:
    tomorrow = timezone.localtime(next_slot(24)).date()
    now = timezone.make_aware(datetime.combine(tomorrow, datetime.min.time()).replace(hour=10, minute=5))
    run_command(alice_on_slack, "book 1h from 9:00", context=SYSTEM, now=now)
    run_command(alice_on_slack, "book 1h from 11:00", context=SYSTEM, now=now)
    starts = [timezone.localtime(b.start) for b in Booking.objects.order_by("start")]
    assert [(s.date() - tomorrow).days for s in starts] == [0, 1]
    assert [s.hour for s in starts] == [11, 9]


@pytest.mark.parametrize(
    "text",
    [
        "book",
        "book 2",
        "book forever",
        "book 4h at 14:00",
        "book 4h from 25:00",
        "book 0m",
        "book 4h from",
        "book 4h x y",
    ],
)
def test_book_explains_itself_when_it_cannot_read_the_request(alice_on_slack: User, text: str) -> None:
    assert gpu(text).startswith("Say how many GPUs")
    assert not Booking.objects.exists()


def test_a_refused_booking_says_why(alice_on_slack: User, bob: User, host: Host) -> None:
    assert gpu("book 45m").startswith("Not booked: Bookings start and end on the 30-minute grid")
    assert gpu("book 3 1h").startswith("Not booked: alice's quota allows 2 GPUs")
    start = slot_floor(timezone.now(), BookingPolicy.current().slot)
    theirs = booking_create(user=bob, host=host, start=start, end=start + timedelta(hours=8), count=1, actor=bob)
    reply = gpu("book 2 1h")
    assert reply.startswith("Not booked: Only 1 of 2 GPUs is free then")
    assert f"booking {theirs.pk}" in reply
    assert Booking.objects.count() == 1


def test_free_says_who_holds_what_and_until_when(alice_on_slack: User, bob: User, host: Host) -> None:
    start = slot_floor(timezone.now(), BookingPolicy.current().slot)
    booking_create(user=bob, host=host, start=start, end=start + timedelta(hours=2), gpu_indexes=[0], actor=bob)
    later = next_slot(5)
    booking_create(user=bob, host=host, start=later, end=later + timedelta(hours=1), gpu_indexes=[1], actor=bob)
    lines = gpu("free").splitlines()
    assert lines[0] == "GPUs on local now:"
    assert lines[1].startswith("• GPU 0 (RTX 5080): booked by bob until ")
    assert lines[2].startswith("• GPU 1 (RTX 5080): free until ")
    assert lines[2].endswith("(then bob)")


def test_release_gives_back_the_booking_under_way(alice_on_slack: User, host: Host) -> None:
    assert gpu("release").startswith("You have no booking under way")
    slot = BookingPolicy.current().slot
    start = slot_floor(timezone.now(), slot) - slot
    running = booking_create(
        user=alice_on_slack, host=host, start=start, end=start + timedelta(hours=2), actor=alice_on_slack,
        now=start + timedelta(minutes=1),
    )  # fmt: skip
    future = booking_create(user=alice_on_slack, host=host, start=next_slot(4), end=next_slot(5), actor=alice_on_slack)
    reply = gpu("release")
    assert reply.startswith(f"Released GPU 0 on local (booking {running.pk}, booked until ")
    running.refresh_from_db()
    future.refresh_from_db()
    assert running.state == Booking.State.RELEASED
    assert future.state == Booking.State.BOOKED


def test_list_shows_the_next_bookings(alice_on_slack: User, host: Host) -> None:
    assert gpu("list").startswith("You have no bookings coming up")
    first = booking_create(
        user=alice_on_slack, host=host, start=next_slot(2), end=next_slot(3), gpu_indexes=[1], actor=alice_on_slack
    )
    second = booking_create(user=alice_on_slack, host=host, start=next_slot(6), end=next_slot(8), actor=alice_on_slack)
    lines = gpu("list").splitlines()
    assert lines[0] == "Your next bookings:"
    assert lines[1].endswith(f": GPU 1 on local (booking {first.pk})")
    assert lines[2].endswith(f": GPU 0 on local (booking {second.pk})")


def test_without_a_bot_token_an_unlinked_user_is_told_to_ask_an_admin(
    slack: SlackStandIn, alice: User, settings: Any
) -> None:
    slack.emails["U0ALICE"] = alice.email
    settings.SLACK_BOT_TOKEN = ""
    assert "no Slack bot token" in gpu("free")
    assert slack.calls == []
    SlackLink.objects.create(slack_user_id="U0ALICE", user=alice)
    assert gpu("free") == "local, your server, has no GPUs yet."  # linked members need no lookup


words = st.one_of(
    st.sampled_from(["book", "free", "release", "list", "help", "from", "2", "4h", "90m", "1h30m", "23:30", "0"]),
    st.text(max_size=12),
)


@given(text=st.lists(words, max_size=6).map(" ".join), body=st.binary(max_size=120))
@fuzz_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_signed_text_or_body_is_answered_never_with_a_500(alice_on_slack: User, text: str, body: bytes) -> None:
    with transaction.atomic():
        reply = send(form(text[:500]))
        assert reply.status_code == 200
        assert reply.json()["response_type"] == "ephemeral"
        assert send(body).status_code in (200, 400)
        transaction.set_rollback(True)
