"""The access helpers of the GPU pages: each returns the object or raises 404/403 (a refusal
is audited). Everyone sees every booking; only its holder or an admin changes one."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from gpus.models import Booking
from gpus.services import can_change
from portal.access import AuthedRequest, refuse


def get_booking_for_change(request: AuthedRequest, pk: int) -> Booking:
    booking = get_object_or_404(Booking.objects.select_related("user", "host"), pk=pk)
    if not can_change(request.user, booking):
        raise refuse(request, "booking.denied", target=booking, booking=booking.pk)
    return booking
