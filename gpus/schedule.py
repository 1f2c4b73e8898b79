"""What the calendar page and its JSON endpoints read: the hosts with GPUs, bookings as
calendar events (one per booked GPU, in the team's time zone), a member's GPU-hours this week,
and moments parsed from what a browser or a form sends."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.utils import timezone

from gpus.models import GPU, Booking, BookingGPU
from gpus.services import hours_text, span_text, week_booked, weeks_touched
from portal.models import Host, User

# One colour per GPU index (AA contrast with white text), repeated past eight.
GPU_COLOURS = ("#2f6fde", "#1d7a46", "#b4540a", "#7b3fc4", "#0e7490", "#b3261e", "#5b6b00", "#9d2f6e")
# Longest range the events endpoint answers (a month view and a bit).
MAX_RANGE = timedelta(days=62)


class BadInput(ValueError):
    """A request the page should never send: the message says what was wrong with it."""


def colour(index: int) -> str:
    return GPU_COLOURS[index % len(GPU_COLOURS)]


def gpu_hosts() -> list[Host]:
    """Hosts with at least one GPU present, by name (one query)."""
    return list(Host.objects.filter(gpus__present=True).distinct().order_by("name"))


def pick_host(hosts: list[Host], raw: object, *, preferred: int | None = None) -> Host | None:
    """The host the request names (by id), else ``preferred`` (the member's own server), else
    the first; None when no host has GPUs."""
    by_pk = {str(host.pk): host for host in hosts}
    return by_pk.get(str(raw or "")) or by_pk.get(str(preferred)) or (hosts[0] if hosts else None)


def host_gpus(host: Host) -> list[GPU]:
    return list(GPU.objects.bookable().filter(host=host).order_by("index"))


def local_iso(moment: datetime, tz: tzinfo | None = None) -> str:
    """ISO 8601 with the team's offset at that moment (+01:00 in a Berlin winter)."""
    return moment.astimezone(tz or timezone.get_current_timezone()).isoformat()


def parse_moment(raw: object, what: str) -> datetime:
    """An ISO 8601 moment. One without an offset is a wall-clock time in the team's zone."""
    if not isinstance(raw, str) or not raw:
        raise BadInput(f"Say when the booking {what}s, as an ISO 8601 time like 2026-12-03T14:00:00+01:00.")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadInput(f"“{raw[:40]}” is not a time; the {what} should look like 2026-12-03T14:00:00+01:00.") from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def parse_range(start: object, end: object) -> tuple[datetime, datetime]:
    first, last = parse_moment(start, "start"), parse_moment(end, "end")
    if last <= first:
        raise BadInput("The end of the range must be after its start.")
    if last - first > MAX_RANGE:
        raise BadInput(f"Ask for at most {MAX_RANGE.days} days of bookings at a time.")
    return first, last


@dataclass
class Entry:
    """A booking as the calendar shows it: its columns and its GPUs' indexes, read without
    building model objects (a week of 1,000 bookings in well under 100 ms: ``make bench``)."""

    pk: int
    user_id: int
    username: str
    start: datetime
    end: datetime
    state: str
    shared: bool
    note: str
    gpus: list[int] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return self.state in Booking.HOLDING

    @property
    def state_label(self) -> str:
        return str(Booking.State(self.state).label)


def calendar_bookings(host: Host, start: datetime, end: datetime) -> list[Entry]:
    """The host's bookings over the range, cancelled ones left out: one query over the
    per-GPU rows."""
    rows = (
        BookingGPU.objects.filter(booking__host=host, booking__start__lt=end, booking__end__gt=start)
        .exclude(booking__state=Booking.State.CANCELLED)
        .order_by("booking__start", "booking_id", "gpu__index")
        .values_list(
            "booking_id",
            "booking__user_id",
            "booking__user__username",
            "booking__start",
            "booking__end",
            "booking__state",
            "booking__shared",
            "booking__note",
            "gpu__index",
        )
    )
    entries: dict[int, Entry] = {}
    for pk, user_id, username, first, last, state, shared, note, index in rows:
        entry = entries.get(pk)
        if entry is None:
            entry = entries[pk] = Entry(pk, user_id, username, first, last, state, shared, note)
        entry.gpus.append(index)
    return list(entries.values())


def booking_events(bookings: Iterable[Entry], viewer: User, *, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or timezone.now()
    tz = timezone.get_current_timezone()
    return [event for booking in bookings for event in _events_of(booking, viewer, now, tz)]


def _events_of(booking: Entry, viewer: User, now: datetime, tz: tzinfo) -> list[dict[str, Any]]:
    """One event per booked GPU; they share a groupId, so dragging one moves them all."""
    own = booking.user_id == viewer.pk
    may_change = (own or viewer.is_staff) and booking.holds
    started = booking.start <= now
    gpus = booking.gpus
    start, end = local_iso(booking.start, tz), local_iso(booking.end, tz)
    classes = ["gpu-ev", "gpu-ev-own" if own else "gpu-ev-other", f"gpu-ev-{booking.state}"]
    if booking.shared:
        classes.append("gpu-ev-shared")
    props = {
        "booking": booking.pk,
        "gpus": gpus,
        "member": booking.username,
        "own": own,
        "mayChange": may_change,
        "shared": booking.shared,
        "started": started,
        "state": booking.state,
        # The minute tick marks a booking active; from its start it is under way all the same.
        "stateLabel": Booking.State.ACTIVE.label if booking.holds and started else booking.state_label,
        "span": span_text(booking.start, booking.end, tz),
        "hours": hours_text(booking.end - booking.start),
        # Another member's note is theirs; the calendar shows everyone only who holds what.
        "note": booking.note if (own or viewer.is_staff) else "",
    }
    return [
        {
            "id": f"{booking.pk}:{index}",
            "groupId": str(booking.pk),
            "title": f"GPU {index} · {booking.username}" + (" · shared" if booking.shared else ""),
            "start": start,
            "end": end,
            "color": colour(index),
            "className": " ".join(classes),
            "startEditable": may_change and not started,
            "durationEditable": may_change,
            "extendedProps": {**props, "gpu": index},
        }
        for index in gpus
    ]


def conflict_payload(booking: Booking) -> dict[str, Any]:
    """The booking in the way, as a 409 names it."""
    return {
        "id": booking.pk,
        "member": booking.user.username,
        "gpus": [gpu.index for gpu in booking.gpu_list],
        "start": local_iso(booking.start),
        "end": local_iso(booking.end),
        "span": span_text(booking.start, booking.end),
        "shared": booking.shared,
    }


def week_used(user: User, *, now: datetime | None = None) -> timedelta:
    """GPU-hours the member has booked in this team-time-zone week, the way the week rule
    counts them (cancelled bookings are free; one query)."""
    ((monday, next_monday),) = weeks_touched(now or timezone.now(), (now or timezone.now()) + timedelta(seconds=1))
    return week_booked(user, monday, next_monday)
