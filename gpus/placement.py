"""GPU bookings follow the member's server (workspaces/placement.py): a booking takes GPUs of
the member's own host only, since the enforcement grants a booked GPU to the holder's
workspaces on that host; and a member holding bookings on one server can't be moved to
another until those bookings are over or cancelled."""

from __future__ import annotations

from django.utils import timezone

from gpus.models import Booking
from portal.models import Host, User


def booking_host_refusal(user: User, host: Host) -> str | None:
    """Why ``user`` may not book GPUs of ``host``, or None when it is their server."""
    placed = user.placed_host()
    if placed == host:
        return None
    return (
        f"{user.username} works on {placed.name}, so only GPUs of {placed.name} can be booked for them; "
        f"an admin can move {user.username} to {host.name} on their member page."
    )


def bookings_elsewhere(member: User, host: Host) -> str | None:
    """WORKSPACE_PLACEMENT_CHECKS: a refusal while the member holds bookings not yet over on
    another server."""
    rows = Booking.objects.holding().filter(user=member, end__gt=timezone.now()).exclude(host=host)
    servers = sorted(set(rows.values_list("host__name", flat=True)))
    if not servers:
        return None
    count = rows.count()
    return (
        f"{member.username} has {count} GPU booking{'s' if count != 1 else ''} still to come or under way on "
        f"{', '.join(servers)}; cancel {'them' if count != 1 else 'it'} (or let {'them' if count != 1 else 'it'} "
        "end) first."
    )
