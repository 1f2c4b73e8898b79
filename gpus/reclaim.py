"""Giving booked GPUs back when nobody uses them: a booking never used (a no-show) and one
whose GPUs sit idle. The per-minute booking tick calls ``reclaim_pass``.

Only hosts whose GPUs are sampled (NVML) are judged: where there is no driver there are no
samples, and without samples nobody can tell whether a GPU is used. Missing minutes are
"unknown", never "idle"; memory alone is never use (frameworks preallocate it all).

Every step is recorded on the booking (``used_at``, ``noshow_warned_at``,
``idle_warned_at``) with a conditional update under the booking's row lock, so a repeated
pass does nothing twice and a pass after missed ticks does what was due, once. A warning
always gives the full grace from the moment it is sent, never a deadline already past.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from gpus.models import Booking, BookingGPU, BookingPolicy, GpuHost, GpuSample
from gpus.services import booking_release, when
from portal.audit import SYSTEM
from portal.models import User
from portal.services import notify_member, slack_post_later
from workspaces.models import Workspace

NOSHOW_GRACE = timedelta(minutes=5)  # between the no-show warning and the release
COVERAGE = 0.8  # share of a window's minutes that must have a sample to judge it


def _hhmm(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%H:%M}"


def _booking_url(booking: Booking) -> str:
    """The calendar, where the booking can be seen, released or extended."""
    return reverse("gpus:calendar")


def _gpus_text(booking: Booking) -> str:
    indexes = [str(gpu.index) for gpu in booking.gpu_list]
    return f"GPU {indexes[0]}" if len(indexes) == 1 else f"GPUs {', '.join(indexes)}"


def _sampled_active() -> list[Booking]:
    """Bookings under way on hosts whose GPUs are sampled (one query, GPUs prefetched)."""
    return list(
        Booking.objects.filter(state=Booking.State.ACTIVE, host__gpu_host__source=GpuHost.Source.NVML)
        .with_gpus()
        .order_by("start", "pk")
    )


def _workspaces_of(bookings: Iterable[Booking]) -> dict[int, set[int]]:
    """Holder id -> ids of all their workspaces (one query)."""
    owners = {booking.user_id for booking in bookings}
    mine: dict[int, set[int]] = defaultdict(set)
    for ws_id, owner_id in Workspace.objects.filter(owner_id__in=owners).values_list("id", "owner_id"):
        mine[owner_id].add(ws_id)
    return mine


def _tell(user: User, *, title: str, body: str, url: str) -> None:
    """The portal's notification, and a Slack copy that carries the link."""
    notify_member(user=user, title=title, body=body, url=url, slack=False)
    slack_post_later(f"{user.username}: {title}. {body} {settings.PORTAL_URL}{url}")


def _is(booking: Booking) -> str:
    return "is" if len(booking.gpu_list) == 1 else "are"


def _has(booking: Booking) -> str:
    return "has" if len(booking.gpu_list) == 1 else "have"


def _gpu_ids(booking: Booking) -> list[int]:
    return [gpu.pk for gpu in booking.gpu_list]


def _locked(booking: Booking) -> Booking | None:
    """The booking's row, locked, if it is still under way (inside a transaction)."""
    return Booking.objects.select_for_update().filter(pk=booking.pk, state=Booking.State.ACTIVE).first()


# --- first use -----------------------------------------------------------------------------


def record_use(now: datetime) -> list[str]:
    """Set ``used_at`` on bookings under way from the first sample since their start that
    shows one of the holder's workspaces on a booked GPU at or above the idle threshold."""
    policy = BookingPolicy.current()
    bookings = [b for b in _sampled_active() if b.used_at is None]
    mine = _workspaces_of(bookings)
    done = []
    for booking in bookings:
        samples = (
            GpuSample.objects.filter(
                gpu_id__in=_gpu_ids(booking),
                at__gte=booking.start,
                at__lte=now,
                utilization__gte=policy.idle_percent,
            )
            .exclude(workspaces=[])
            .order_by("at")
            .values_list("at", "workspaces")
        )
        first = next((at for at, ws in samples.iterator() if mine[booking.user_id] & set(ws)), None)
        if first is not None and Booking.objects.filter(pk=booking.pk, used_at=None).update(used_at=first):
            done.append(f"booking {booking.pk} ({booking.user.username}): first used at {first.isoformat()}")
    return done


# --- no-shows ------------------------------------------------------------------------------


def noshow_pass(now: datetime) -> list[str]:
    """Warn the holder of a booking nobody has used ``noshow_minutes`` after its start, then,
    ``NOSHOW_GRACE`` after the warning and still unused, release it as a no-show (if the
    policy says so) and tell the next holder of those GPUs. Run after ``record_use``."""
    policy = BookingPolicy.current()
    due = now - timedelta(minutes=policy.noshow_minutes)
    done = []
    for booking in _sampled_active():
        if booking.used_at is not None or booking.start > due:
            continue
        if booking.noshow_warned_at is None:
            done += _noshow_warn(booking, policy, now)
        elif policy.noshow_release and now >= booking.noshow_warned_at + NOSHOW_GRACE:
            done += _noshow_release(booking, now)
    return done


@transaction.atomic
def _noshow_warn(booking: Booking, policy: BookingPolicy, now: datetime) -> list[str]:
    release_at = now + NOSHOW_GRACE
    if booking.end <= release_at:
        return []  # it ends before it could be released: nothing to give back
    locked = _locked(booking)
    if locked is None or locked.used_at is not None or locked.noshow_warned_at is not None:
        return []
    locked.noshow_warned_at = now
    locked.save(update_fields=["noshow_warned_at"])
    gpus = _gpus_text(booking)
    if policy.noshow_release:
        body = f"It is released at {_hhmm(release_at)} unless you use it."
    else:
        body = "It stays yours; if you don't need it any more, release it so someone else can book it."
    _tell(
        booking.user,
        title=f"{gpus} booked from {_hhmm(booking.start)} {_has(booking)} not been used",
        body=body,
        url=_booking_url(booking),
    )
    return [f"booking {booking.pk} ({booking.user.username}): not used yet, warned"]


@transaction.atomic
def _noshow_release(booking: Booking, now: datetime) -> list[str]:
    locked = _locked(booking)
    if locked is None or locked.used_at is not None or locked.noshow_warned_at is None:
        return []
    booking_release(booking=locked, actor=None, context=SYSTEM, reason="not used", state=Booking.State.NO_SHOW, now=now)
    if booking.end <= now:  # over while the worker was down: recorded, nothing to give back
        return [f"booking {booking.pk} ({booking.user.username}): ended unused, recorded as a no-show"]
    gpus = _gpus_text(booking)
    _tell(
        booking.user,
        title=f"{gpus} booked from {_hhmm(booking.start)} released: not used",
        body=f"Nobody used it in the {int(NOSHOW_GRACE.total_seconds() // 60)} minutes after the warning. "
        "Book it again on the calendar when you need it.",
        url=_booking_url(booking),
    )
    _announce_free(booking, now, why=f"{booking.user.username}'s booking from {_hhmm(booking.start)} was not used")
    return [f"booking {booking.pk} ({booking.user.username}): released as a no-show"]


# --- idle GPUs -----------------------------------------------------------------------------


def _window_state(booking: Booking, holder_ws: set[int], policy: BookingPolicy, start: datetime, end: datetime) -> str:
    """ "idle", "used" or "unknown" for ``[start, end)``: idle only when every booked GPU has
    a sample in at least COVERAGE of the minutes and each one is under the threshold with
    none of the holder's processes on it."""
    gpu_ids = _gpu_ids(booking)
    minutes: dict[int, set[datetime]] = defaultdict(set)
    rows = GpuSample.objects.filter(gpu_id__in=gpu_ids, at__gte=start, at__lt=end).values_list(
        "gpu_id", "at", "utilization", "workspaces"
    )
    for gpu_id, at, utilization, workspaces in rows:
        if utilization >= policy.idle_percent or holder_ws & set(workspaces):
            return "used"
        minutes[gpu_id].add(at.replace(second=0, microsecond=0))
    need = math.ceil(COVERAGE * (end - start).total_seconds() / 60)
    return "idle" if all(len(minutes[gpu_id]) >= need for gpu_id in gpu_ids) else "unknown"


def idle_pass(now: datetime) -> list[str]:
    """Warn the holder when all the booking's GPUs have been idle for ``idle_minutes``; if
    they stay idle ``idle_minutes`` more, release the rest (if the policy says so) and tell
    the next holder. Any use clears the warning. A booking nobody has used yet is left to
    the no-show rule while that rule releases."""
    policy = BookingPolicy.current()
    bookings = [b for b in _sampled_active() if b.used_at is not None or not policy.noshow_release]
    mine = _workspaces_of(bookings)
    done = []
    for booking in bookings:
        done += _idle_step(booking, mine[booking.user_id], policy, now)
    return done


def _idle_step(booking: Booking, holder_ws: set[int], policy: BookingPolicy, now: datetime) -> list[str]:
    span = timedelta(minutes=policy.idle_minutes)
    warned = booking.idle_warned_at
    if warned is None:
        judged = booking.start <= now - span and booking.end > now + span
        if judged and _window_state(booking, holder_ws, policy, now - span, now) == "idle":
            return _idle_warn(booking, policy, now)
        return []
    if _window_state(booking, holder_ws, policy, warned, now + timedelta(minutes=1)) == "used":
        return _idle_clear(booking)
    due = policy.idle_release and now >= warned + span
    if due and _window_state(booking, holder_ws, policy, now - span, now) == "idle":
        return _idle_release(booking, policy, now)
    return []


def _idle_clear(booking: Booking) -> list[str]:
    if Booking.objects.filter(pk=booking.pk, idle_warned_at=booking.idle_warned_at).update(idle_warned_at=None):
        return [f"booking {booking.pk} ({booking.user.username}): used again, idle warning cleared"]
    return []


@transaction.atomic
def _idle_warn(booking: Booking, policy: BookingPolicy, now: datetime) -> list[str]:
    locked = _locked(booking)
    if locked is None or locked.idle_warned_at is not None:
        return []
    locked.idle_warned_at = now
    locked.save(update_fields=["idle_warned_at"])
    gpus = _gpus_text(booking)
    since = now - timedelta(minutes=policy.idle_minutes)
    quiet = f"Under {policy.idle_percent} % utilisation with none of your processes on it since {_hhmm(since)}."
    if policy.idle_release:
        release_at = now + timedelta(minutes=policy.idle_minutes)
        action = (
            f"The rest of your booking (until {when(booking.end)}) is released at {_hhmm(release_at)} "
            "unless you use it. Release it yourself if you are done."
        )
    else:
        action = "It stays yours; release it if you are done, so someone else can use it."
    _tell(
        booking.user,
        title=f"{gpus} idle for {policy.idle_minutes} minutes",
        body=f"{quiet} {action}",
        url=_booking_url(booking),
    )
    return [f"booking {booking.pk} ({booking.user.username}): idle, warned"]


@transaction.atomic
def _idle_release(booking: Booking, policy: BookingPolicy, now: datetime) -> list[str]:
    locked = _locked(booking)
    if locked is None or locked.idle_warned_at != booking.idle_warned_at or locked.end <= now:
        return []
    booking_release(booking=locked, actor=None, context=SYSTEM, reason="idle", now=now)
    gpus = _gpus_text(booking)
    _tell(
        booking.user,
        title=f"{gpus} released: idle",
        body=f"It stayed idle for {policy.idle_minutes} minutes after the warning, so the rest of your booking "
        f"(until {when(booking.end)}) was given back. Book it again on the calendar when you need it.",
        url=_booking_url(booking),
    )
    _announce_free(booking, now, why=f"{booking.user.username}'s booking was idle")
    return [f"booking {booking.pk} ({booking.user.username}): idle, released"]


# --- telling the others ---------------------------------------------------------------------


def _next_booking(booking: Booking, now: datetime) -> Booking | None:
    """The first booking of another member that holds one of these GPUs after ``now``."""
    row = (
        BookingGPU.objects.filter(gpu_id__in=_gpu_ids(booking), holds=True, start__gte=now)
        .exclude(booking__user_id=booking.user_id)
        .select_related("booking__user")
        .order_by("start", "booking_id")
        .first()
    )
    return row.booking if row is not None else None


def _announce_free(booking: Booking, now: datetime, *, why: str) -> None:
    """One line on the team's Slack; the next holder of the GPUs is also told in the portal."""
    gpus = _gpus_text(booking)
    following = _next_booking(booking, now)
    if following is None:
        slack_post_later(f"{gpus} of {booking.host} free now ({why}).")
        return
    slack_post_later(
        f"{gpus} of {booking.host} free now ({why}); next booked by {following.user.username} "
        f"from {when(following.start)}."
    )
    notify_member(
        user=following.user,
        title=f"{gpus} of {booking.host} {_is(booking)} free now",
        body=f"Your booking starts {when(following.start)}. The booking before it was given back early; "
        "move yours earlier on the calendar to start now.",
        url=_booking_url(following),
        slack=False,
    )


def reclaim_pass(now: datetime | None = None) -> list[str]:
    """Record first use, then no-shows, then idle GPUs; returns what it did, for the log."""
    now = now or timezone.now()
    return record_use(now) + noshow_pass(now) + idle_pass(now)
