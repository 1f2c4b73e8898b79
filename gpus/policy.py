"""Changing the team's booking rules (the Policies page)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from gpus.models import BookingPolicy
from portal.audit import AuditContext, audit_record
from portal.models import User
from portal.services import apply_changes


@transaction.atomic
def booking_policy_update(*, actor: User, values: dict[str, Any], context: AuditContext | None = None) -> BookingPolicy:
    """Save the booking rules (already validated by BookingPolicyForm); the audit row keeps
    old and new values. The row is locked so two admins saving at once can't lose each
    other's change. Existing bookings keep their spans: the rules apply to what is asked next."""
    BookingPolicy.current()  # make sure the row exists before locking it
    policy = BookingPolicy.objects.select_for_update().get(pk=1)
    changed = apply_changes(policy, values)
    if not changed:
        return policy
    policy.updated_by = actor
    policy.full_clean()
    policy.save()
    audit_record(action="booking_policy.update", actor=actor, target=policy, context=context, changes=changed)
    return policy
