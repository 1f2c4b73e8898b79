"""What the GPUs add to the shared pages: the dashboard's GPU card (PORTAL_DASHBOARD_CARDS)
the booking policy on the Policies page (PORTAL_POLICY_SECTIONS) and each server's GPUs on the
Servers page (PORTAL_HOST_COLUMNS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count
from django.utils import timezone

from gpus.forms import BookingPolicyForm
from gpus.models import GPU, Booking, BookingGPU, BookingPolicy
from gpus.schedule import colour
from portal.access import AuthedRequest
from portal.cards import request_quota
from portal.panels import Column, Panel


@dataclass
class GpuNow:
    gpu: GPU
    colour: str
    holders: list[Booking] = field(default_factory=list)


def _gpus_now(now: datetime) -> list[GpuNow]:
    """Every GPU present and who holds it at this moment (two queries, however many)."""
    gpus = [GpuNow(gpu, colour(gpu.index)) for gpu in GPU.objects.bookable().select_related("host")]
    by_pk = {row.gpu.pk: row for row in gpus}
    held = BookingGPU.objects.filter(holds=True, start__lte=now, end__gt=now, gpu__in=list(by_pk))
    for hold in held.select_related("booking__user").order_by("start"):
        by_pk[hold.gpu_id].holders.append(hold.booking)
    return gpus


def _next_slot_free(booking: Booking, policy: BookingPolicy) -> bool:
    """Whether one more slot after the end is free on every GPU of the booking (one query)."""
    after = booking.end + policy.slot
    others = BookingGPU.objects.filter(
        gpu__in=[row.gpu_id for row in booking.gpu_rows.all()], holds=True, start__lt=after, end__gt=booking.end
    ).exclude(booking=booking)
    if booking.shared:
        others = others.filter(shared=False)
    return not others.exists()


def gpu_card(request: AuthedRequest) -> Panel:
    """GPUs free now, the member's current or next booking (with Extend when the next slot
    is free), and the way to the calendar. A fixed number of queries for any team."""
    now = timezone.now()
    policy = BookingPolicy.current()
    mine = Booking.objects.with_gpus().filter(user=request.user).holding().filter(end__gt=now).order_by("start")
    booking = mine.first()
    context = {
        "gpus_now": _gpus_now(now),
        "my_booking": booking,
        "my_booking_current": booking is not None and booking.start <= now,
        "can_extend": booking is not None and booking.start <= now and _next_slot_free(booking, policy),
        "booking_policy": policy,
        "quota": request_quota(request),
    }
    return Panel("gpus/_gpu_card.html", context)


def policy_section(request: AuthedRequest) -> Panel:
    policy = BookingPolicy.current()
    return Panel(
        "gpus/_policy_section.html",
        {"booking_policy_form": BookingPolicyForm(instance=policy), "booking_policy": policy},
    )


def host_column(hosts: list[Any]) -> Column:
    """How many GPUs each server has in the inventory, in one query."""
    counts = GPU.objects.bookable().filter(host__in=hosts).values("host_id").annotate(total=Count("id")).order_by()
    return Column("GPUs", "gpus/_host_cell.html", {row["host_id"]: {"total": row["total"]} for row in counts})
