"""The booking calendar's minute: bookings start and end, no-shows and idle GPUs are
released (gpus/reclaim.py), holders are warned ahead of a boundary, and the GPUs are
granted or taken on the enforced hosts.

Each step is a conditional update (``state=booked`` -> ``active``, ``start_warned`` False ->
True), so two ticks running at once or one repeated after a missed minute do each thing
once; and each is judged by the clock, not by the tick that should have seen it: after ten
minutes without a worker the next pass starts and ends what is due and sends only the
warnings that still lie ahead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from gpus.enforcement import enforce_host, gpu_host
from gpus.models import Booking, BookingGPU, BookingPolicy, GpuHost
from gpus.reclaim import reclaim_pass
from gpus.services import booking_release, when
from portal.audit import SYSTEM, audit_record
from portal.models import Host, Notification
from portal.services import notify_member
from workspaces.models import Workspace

WARN_BEFORE_START = timedelta(minutes=15)
END_WARNINGS = (15, 5)  # minutes before the end


def booking_tick(*, now: datetime | None = None) -> list[str]:
    """One pass; returns what it did, for the task's log."""
    now = now or timezone.now()
    done = _suspended(now) + _start_due(now) + reclaim_pass(now) + _end_due(now) + _warn_start(now) + _warn_end(now)
    for host in Host.objects.filter(gpus__isnull=False).distinct():
        done += enforce_host(host, now)
    return done


def _calendar_url() -> str:
    """The dashboard: its GPU card shows the booking with its Extend and Release buttons."""
    return reverse("dashboard")


def _suspended(now: datetime) -> list[str]:
    """A suspended member holds no GPU: their bookings are released or cancelled."""
    done = []
    for booking in Booking.objects.holding().filter(user__is_active=False):
        booking_release(booking=booking, actor=None, context=SYSTEM, reason="the member is suspended", now=now)
        done.append(f"released {booking}: its member is suspended")
    return done


def _start_due(now: datetime) -> list[str]:
    done = []
    for booking in Booking.objects.filter(state=Booking.State.BOOKED, start__lte=now, end__gt=now):
        with transaction.atomic():
            if Booking.objects.filter(pk=booking.pk, state=Booking.State.BOOKED).update(state=Booking.State.ACTIVE):
                audit_record(action="booking.started", target=booking, context=SYSTEM)
                done.append(f"started {booking}")
    return done


def _end_due(now: datetime) -> list[str]:
    done = []
    for booking in Booking.objects.holding().filter(end__lte=now):
        with transaction.atomic():
            ended = Booking.objects.filter(pk=booking.pk, state__in=Booking.HOLDING).update(
                state=Booking.State.COMPLETED
            )
            if ended:
                BookingGPU.objects.filter(booking=booking).update(holds=False)
                audit_record(action="booking.completed", target=booking, context=SYSTEM)
                done.append(f"completed {booking}")
    return done


def _running_workspaces(booking: Booking) -> list[Workspace]:
    return list(
        Workspace.objects.filter(
            owner=booking.user,
            host=booking.host,
            state=Workspace.State.RUNNING,
            desired_state=Workspace.Desired.RUNNING,
        )
    )


def _enforced(booking: Booking) -> bool:
    return gpu_host(booking.host).enforcement == GpuHost.Enforcement.ENFORCED


def _warn_start(now: datetime) -> list[str]:
    """On an enforced host a running workspace is restarted to get its GPUs: say so ahead."""
    done = []
    due = Booking.objects.filter(
        state=Booking.State.BOOKED, start_warned=False, start__gt=now, start__lte=now + WARN_BEFORE_START
    ).with_gpus()
    for booking in due:
        if not Booking.objects.filter(pk=booking.pk, start_warned=False).update(start_warned=True):
            continue
        running = _running_workspaces(booking) if _enforced(booking) else []
        if not running:
            continue
        names = ", ".join(str(ws) for ws in running)
        notify_member(
            user=booking.user,
            title=f"Your booking of {booking.gpu_labels} starts at {when(booking.start)}",
            body=(
                f"Your workspace {names} restarts then to get the GPU (a running container can't gain one): "
                "programs running in it stop; your files in home and scratch stay. Save your work before then."
            ),
            url=_calendar_url(),
            level=Notification.Level.WARNING,
        )
        done.append(f"warned {booking.user} of the start of {booking}")
    return done


def _next_slot_free(booking: Booking) -> bool:
    """Whether the slot after the end is free on every GPU of the booking (the extend button)."""
    slot_end = booking.end + BookingPolicy.current().slot
    return not BookingGPU.objects.filter(
        gpu__in=[row.gpu_id for row in booking.gpu_rows.all()],
        holds=True,
        start__lt=slot_end,
        end__gt=booking.end,
    ).exists()


def _continues(booking: Booking) -> bool:
    """The holder's own next booking of the same GPUs starts when this one ends."""
    return BookingGPU.objects.filter(
        booking__user=booking.user,
        booking__state=Booking.State.BOOKED,
        holds=True,
        start=booking.end,
        gpu__in=[row.gpu_id for row in booking.gpu_rows.all()],
    ).exists()


def _warn_end(now: datetime) -> list[str]:
    done = []
    for minutes in END_WARNINGS:
        due = Booking.objects.filter(state=Booking.State.ACTIVE, end__gt=now, end__lte=now + timedelta(minutes=minutes))
        for booking in due.exclude(end_warned_minutes__lte=minutes).with_gpus():
            claimed = (
                Booking.objects.filter(pk=booking.pk, end=booking.end)
                .exclude(end_warned_minutes__lte=minutes)
                .update(end_warned_minutes=min(m for m in END_WARNINGS if booking.end - now <= timedelta(minutes=m)))
            )
            if not claimed or _continues(booking):
                continue
            _send_end_warning(booking, now)
            done.append(f"warned {booking.user} of the end of {booking}")
    return done


def _send_end_warning(booking: Booking, now: datetime) -> None:
    left = max(1, round((booking.end - now).total_seconds() / 60))
    parts = []
    if _enforced(booking) and _running_workspaces(booking):
        parts.append(
            "Then your workspace restarts without the GPU: programs using it get a stop signal and 30 seconds "
            "to save; files in home and scratch stay."
        )
    if _next_slot_free(booking):
        parts.append("The next slot is free: extend the booking on the calendar or the dashboard if you need more.")
    else:
        parts.append("The GPU is booked by someone else right after, so it can't be extended.")
    notify_member(
        user=booking.user,
        title=f"Your booking of {booking.gpu_labels} ends in {left} minutes, at {when(booking.end)[-5:]}",
        body=" ".join(parts),
        url=_calendar_url(),
        level=Notification.Level.WARNING,
    )
