"""Changing the team's booking rules (the Policies page)."""

from __future__ import annotations

from typing import Any

from gpus.models import BookingPolicy
from portal.audit import AuditContext
from portal.models import User
from portal.services import policy_row_update


def booking_policy_update(*, actor: User, values: dict[str, Any], context: AuditContext | None = None) -> BookingPolicy:
    """Save the booking rules (already validated by BookingPolicyForm), audited with old and
    new values. Existing bookings keep their spans: the rules apply to what is asked next."""
    return policy_row_update(BookingPolicy, action="booking_policy.update", actor=actor, values=values, context=context)
