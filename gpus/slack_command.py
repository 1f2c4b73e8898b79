"""The ``/gpu`` Slack slash command: free, book, release, list, help. Slack signs each request
with the app's signing secret (``v0=`` HMAC-SHA256 of ``v0:<timestamp>:<body>``); anything
unsigned, mis-signed or older than five minutes is refused. The Slack user is mapped to a
member once, by the e-mail Slack's users.info gives, and the link is kept (SlackLink)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time as clock
from collections.abc import Callable
from datetime import datetime, time, timedelta
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from gpus.models import GPU, Booking, BookingGPU, BookingPolicy, SlackLink
from gpus.services import BookingError, booking_create, booking_release, slot_floor, span_text, when
from gpus.tokens import member_active
from portal.audit import AuditContext, audit_record
from portal.models import Host, User
from portal.slack import SlackError, slack_user_email

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 5 * 60
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
DURATION = re.compile(r"(?:(?P<h>\d{1,4})h)?(?:(?P<m>\d{1,5})m(?:in)?)?", re.IGNORECASE)
CLOCK = re.compile(r"(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)")
COUNT = re.compile(r"[1-9]\d?")
LIST_LIMIT = 10


def _help() -> str:
    return (
        "*/gpu free*: which GPUs are free now, and until when\n"
        "*/gpu book [N] <how long> [from HH:MM]*: book N GPUs (1 if you leave it out) for 4h, 90m or "
        f"1h30m, from now or from HH:MM ({settings.TIME_ZONE}; tomorrow if that time has passed today)\n"
        "*/gpu release*: give back your booking that is under way\n"
        "*/gpu list*: your next bookings\n"
        "*/gpu help*: this list"
    )


# --- who is asking --------------------------------------------------------------------------


def signature_valid(request: HttpRequest, *, now: float | None = None) -> bool:
    """Whether Slack signed this request with our signing secret in the last five minutes."""
    secret = settings.SLACK_SIGNING_SECRET
    if not secret:
        logger.warning("Slack command refused: SLACK_SIGNING_SECRET is not set")
        return False
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    given = request.headers.get("X-Slack-Signature", "")
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        return False
    if abs((now or clock.time()) - int(timestamp)) > MAX_AGE_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + request.body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def slack_member(slack_user_id: str, *, context: AuditContext | None = None) -> tuple[User | None, str]:
    """The member this Slack user is, or None and what to tell them. The first time, Slack is
    asked for their e-mail and the member with that address is linked for good."""
    link = SlackLink.objects.select_related("user").filter(slack_user_id=slack_user_id).first()
    if link is not None:
        if member_active(link.user):
            return link.user, ""
        return None, "Your portal account is not active, so /gpu can't book for you; ask an admin."
    if not settings.SLACK_BOT_TOKEN:
        return None, "I can't look you up on Slack yet (the portal has no Slack bot token); ask an admin."
    try:
        email = slack_user_email(slack_user_id)
    except SlackError as exc:
        logger.warning("Slack command: could not look up %s: %s", slack_user_id, exc)
        return None, "I couldn't ask Slack who you are just now; try again in a minute, or use the portal."
    if email is None:
        return None, "Slack didn't give me your e-mail address, so I can't find your portal account; ask an admin."
    user = User.objects.filter(email__iexact=email, is_active=True, status=User.Status.ACTIVE).first()
    if user is None:
        return None, f"I don't know you; log in to the portal once with {email}, then try /gpu again."
    _link(slack_user_id, user, context)
    return user, ""


def _link(slack_user_id: str, user: User, context: AuditContext | None) -> None:
    try:
        with transaction.atomic():
            link = SlackLink.objects.create(slack_user_id=slack_user_id, user=user)
            audit_record(action="slack.link", actor=user, target=link, context=context, slack_user_id=slack_user_id)
    except IntegrityError:
        pass  # a second command from the same person linked them a moment ago


# --- the commands ---------------------------------------------------------------------------


def _host(member: User) -> Host | None:
    """The member's own server (bookings follow it, gpus/placement.py), if it has GPUs."""
    host = member.placed_host()
    return host if GPU.objects.bookable().filter(host=host).exists() else None


def _free(member: User, args: list[str], context: AuditContext, now: datetime) -> str:
    host = _host(member)
    if host is None:
        return f"{member.placed_host().name}, your server, has no GPUs yet."
    rows = BookingGPU.objects.filter(gpu__host=host, holds=True, end__gt=now).select_related("booking__user")
    by_gpu: dict[int, list[BookingGPU]] = {}
    for row in rows.order_by("start"):
        by_gpu.setdefault(row.gpu_id, []).append(row)
    lines = [f"GPUs on {host.name} now:"]
    for gpu in GPU.objects.bookable().filter(host=host).order_by("index"):
        lines.append(f"• {gpu.label} ({gpu.name}): {_gpu_state(by_gpu.get(gpu.pk, []), now)}")
    return "\n".join(lines)


def _gpu_state(rows: list[BookingGPU], now: datetime) -> str:
    current = [row for row in rows if row.start <= now]
    coming = [row for row in rows if row.start > now]
    if current:
        holders = ", ".join(row.booking.user.username for row in current)
        mode = " (shared)" if any(row.shared for row in current) else ""
        return f"booked by {holders}{mode} until {when(min(row.end for row in current))}"
    if coming:
        return f"free until {when(coming[0].start)} (then {coming[0].booking.user.username})"
    return "free, nothing booked ahead"


def _parse_duration(text: str) -> timedelta | None:
    match = DURATION.fullmatch(text)
    if not text or match is None:
        return None
    minutes = int(match["h"] or 0) * 60 + int(match["m"] or 0)
    return timedelta(minutes=minutes) if minutes else None


def _start_at(text: str, now: datetime) -> datetime | None:
    """HH:MM today in the team's time zone, or tomorrow if that is past."""
    match = CLOCK.fullmatch(text)
    if match is None:
        return None
    at = time(int(match["h"]), int(match["m"]))
    today = timezone.localtime(now).date()
    start = timezone.make_aware(datetime.combine(today, at))
    if start < slot_floor(now, BookingPolicy.current().slot):
        start = timezone.make_aware(datetime.combine(today + timedelta(days=1), at))
    return start


BOOK_USAGE = "Say how many GPUs (optional) and for how long, like “/gpu book 2 4h” or “/gpu book 90m from 14:00”."


def _book(member: User, args: list[str], context: AuditContext, now: datetime) -> str:
    host = _host(member)
    if host is None:
        return f"{member.placed_host().name}, your server, has no GPUs to book yet."
    count = int(args.pop(0)) if args and COUNT.fullmatch(args[0]) else 1
    duration = _parse_duration(args.pop(0)) if args else None
    if duration is None:
        return BOOK_USAGE
    start = slot_floor(now, BookingPolicy.current().slot)
    if args:
        at = _start_at(args[1], now) if len(args) == 2 and args[0].lower() == "from" else None
        if at is None:
            return BOOK_USAGE
        start = at
    booking = booking_create(
        user=member, host=host, start=start, end=start + duration, count=count, actor=member, context=context, now=now
    )
    labels = ", ".join(row.gpu.label for row in booking.gpu_rows.select_related("gpu").order_by("gpu__index"))
    return f"Booked {labels} on {host.name} for {span_text(booking.start, booking.end)} (booking {booking.pk})."


def _release(member: User, args: list[str], context: AuditContext, now: datetime) -> str:
    current = list(
        Booking.objects.filter(user=member, state__in=Booking.HOLDING, start__lte=now, end__gt=now).with_gpus()
    )
    if not current:
        return "You have no booking under way right now; /gpu list shows your next ones."
    lines = []
    for booking in current:
        until = when(booking.end)
        booking_release(booking=booking, actor=member, context=context, reason="slack", now=now)
        lines.append(
            f"Released {booking.gpu_labels} on {booking.host.name} (booking {booking.pk}, booked until {until})."
        )
    return "\n".join(lines)


def _list(member: User, args: list[str], context: AuditContext, now: datetime) -> str:
    upcoming = list(
        Booking.objects.filter(user=member, state__in=Booking.HOLDING, end__gt=now).with_gpus()[:LIST_LIMIT]
    )
    if not upcoming:
        return "You have no bookings coming up; book with “/gpu book 4h”."
    lines = [f"Your next booking{pluralize(len(upcoming))}:"]
    for booking in upcoming:
        status = ", under way" if booking.start <= now else ""
        lines.append(
            f"• {span_text(booking.start, booking.end)}: {booking.gpu_labels} on {booking.host.name} "
            f"(booking {booking.pk}{status})"
        )
    return "\n".join(lines)


COMMANDS: dict[str, Callable[[User, list[str], AuditContext, datetime], str]] = {
    "free": _free,
    "book": _book,
    "release": _release,
    "list": _list,
}


def run_command(member: User, text: str, *, context: AuditContext, now: datetime | None = None) -> str:
    """What /gpu answers to ``text`` for ``member``."""
    words = text.split()
    if not words or words[0].lower() == "help":
        return _help()
    handler = COMMANDS.get(words[0].lower())
    if handler is None:
        return f"I don't know “{words[0][:30]}”. What I can do:\n{_help()}"
    try:
        return handler(member, words[1:], context, now or timezone.now())
    except BookingError as exc:
        return f"Not booked: {exc}" if handler is _book else f"Not done: {exc}"


# --- the view -------------------------------------------------------------------------------


def _form(body: bytes) -> dict[str, str] | None:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except ValueError:  # not UTF-8, or too many fields
        return None
    return {key: values[0] for key, values in fields.items()}


@csrf_exempt  # Slack can't send a CSRF token; the signature is the proof
@login_not_required
@require_POST
def slack_command(request: HttpRequest) -> HttpResponse:
    if not signature_valid(request):
        return HttpResponse(
            "The request is not signed by this portal's Slack app.", status=401, content_type="text/plain"
        )
    form = _form(request.body)
    if form is None or not SLACK_USER_ID.fullmatch(form.get("user_id", "")) or len(form.get("text", "")) > 500:
        return HttpResponse("A slash command needs a user_id and a short text.", status=400, content_type="text/plain")
    context = AuditContext.of(request)
    member, problem = slack_member(form["user_id"], context=context)
    text = problem if member is None else run_command(member, form.get("text", ""), context=context)
    return JsonResponse({"response_type": "ephemeral", "text": text})
