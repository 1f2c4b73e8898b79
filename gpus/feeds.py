"""Calendar feeds (iCalendar, RFC 5545) of bookings, for Google Calendar and the like. The
secret in the address is a feed token: a personal one lists the member's own bookings, a team
one everyone's. An unknown and a revoked secret get the same 404, and neither is audited
(calendar apps keep polling a dead address for months)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from icalendar import Calendar, Event

from gpus.models import Booking, BookingPolicy, Token
from gpus.tokens import token_authenticate

PAST = timedelta(days=30)
REFRESH = timedelta(minutes=15)  # a hint: Google reads subscribed calendars every few hours anyway
KIND_BY_PREFIX = {prefix: kind for kind, prefix in Token.PREFIXES.items() if kind != Token.Kind.API}


def feed_uid(booking: Booking) -> str:
    return f"booking-{booking.pk}@{settings.PORTAL_DOMAIN}"


def _event(booking: Booking, *, team: bool, now: datetime) -> Event:
    labels = "GPU " + ", ".join(str(gpu.index) for gpu in booking.gpu_list)  # "GPU 0, 1"
    event = Event()
    event.add("uid", feed_uid(booking))
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", booking.start.astimezone(UTC))
    event.add("dtend", booking.end.astimezone(UTC))
    event.add("summary", f"{labels} · {booking.user.username}" if team else f"{labels} booked")
    lines = [f"Server: {booking.host.name}", f"State: {booking.get_state_display()}"]
    if booking.shared:
        lines.append("Shared with other members (time-sliced)")
    if booking.note:
        lines.append(f"Note: {booking.note}")
    lines.append(f"Calendar: {settings.PORTAL_URL}{reverse('gpus:calendar')}")
    event.add("description", "\n".join(lines))
    event.add("status", "CONFIRMED")
    # Others' bookings in the team feed must not make the subscriber look busy.
    event.add("transp", "TRANSPARENT" if team else "OPAQUE")
    return event


def feed_calendar(token: Token, *, now: datetime | None = None) -> Calendar:
    """The token's bookings from 30 days back to the policy's horizon ahead, cancelled ones
    left out; a released booking ends when it was released."""
    now = now or timezone.now()
    team = token.kind == Token.Kind.TEAM_FEED
    horizon = timedelta(days=BookingPolicy.current().horizon_days)
    bookings = Booking.objects.exclude(state=Booking.State.CANCELLED).overlapping(now - PAST, now + horizon)
    if not team:
        bookings = bookings.filter(user=token.user)
    calendar = Calendar()
    calendar.add("prodid", f"-//{settings.PORTAL_SITE_NAME}//GPU bookings//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    name = "GPU bookings · team" if team else f"GPU bookings · {token.user.username}"
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", settings.TIME_ZONE)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", REFRESH)
    for booking in bookings.with_gpus():
        calendar.add_component(_event(booking, team=team, now=now))
    return calendar


@require_GET
@login_not_required  # the secret in the address is the credential
def feed(request: HttpRequest, secret: str) -> HttpResponse:
    kind = KIND_BY_PREFIX.get(secret[:4])
    token = token_authenticate(secret, kind) if kind else None
    if token is None:
        raise Http404("No such calendar feed.")
    response = HttpResponse(feed_calendar(token).to_ical(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="gpu-bookings.ics"'
    response["Cache-Control"] = "private, max-age=300"
    return response
