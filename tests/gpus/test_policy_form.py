"""The booking policy on the Policies page: shown to admins, saved with old and new values
in the audit log, refused with the field's message (400, nothing saved) when invalid."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from gpus.forms import BookingPolicyForm
from gpus.models import BookingPolicy
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db

POLICY = reverse("gpus:policy")


def _values(**changes: Any) -> dict[str, Any]:
    policy = BookingPolicy.current()
    values = {name: getattr(policy, name) for name in BookingPolicyForm.Meta.fields}
    values.update(changes)
    return {k: ("on" if v is True else v) for k, v in values.items() if v is not False}


def test_the_policies_page_shows_the_booking_policy_below_the_idle_policy(admin_client: Client) -> None:
    body = admin_client.get(reverse("site-policies")).content.decode()
    assert body.index('id="idle-policy"') < body.index('id="booking-policy"')
    assert f'action="{POLICY}"' in body
    assert "GPU-hours per member per week" in body


def test_every_field_says_what_it_does(db: None) -> None:
    form = BookingPolicyForm(instance=BookingPolicy.current())
    assert all(len(field.help_text) > 20 for field in form.fields.values())


def test_an_admin_saves_the_policy_and_the_audit_keeps_old_and_new(admin_client: Client, admin_user) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.post(POLICY, _values(slot_minutes=60, shared_slots=3, noshow_release=False))
    assert response.status_code == 302
    assert response["Location"].endswith("#booking-policy")
    policy = BookingPolicy.current()
    assert (policy.slot_minutes, policy.shared_slots, policy.noshow_release) == (60, 3, False)
    assert policy.updated_by == admin_user
    event = AuditEvent.objects.get(action="booking_policy.update")
    assert event.actor == admin_user
    assert event.detail["changes"] == {
        "slot_minutes": [30, 60],
        "shared_slots": [0, 3],
        "noshow_release": [True, False],
    }


def test_saving_unchanged_values_writes_no_audit_row(admin_client: Client) -> None:
    assert admin_client.post(POLICY, _values()).status_code == 302
    assert not AuditEvent.objects.filter(action="booking_policy.update").exists()


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"shared_slots": 1}, "shared_slots", "1 would share a GPU with nobody"),
        ({"slot_minutes": 7}, "slot_minutes", "Select a valid choice"),
        ({"max_booking_hours": 0}, "max_booking_hours", "greater than or equal to 1"),
        ({"max_hours_per_week": "lots"}, "max_hours_per_week", "Enter a whole number"),
        ({"horizon_days": ""}, "horizon_days", "This field is required"),
        ({"idle_percent": 101}, "idle_percent", "less than or equal to 100"),
        ({"min_notice_minutes": 1440, "horizon_days": 1}, "min_notice_minutes", "leaves no time to book"),
    ],
)
def test_invalid_input_is_refused_on_a_page_with_the_errors(
    admin_client: Client, changes: dict[str, Any], field: str, words: str
) -> None:
    before = {name: getattr(BookingPolicy.current(), name) for name in BookingPolicyForm.Meta.fields}
    response = admin_client.post(POLICY, _values(**changes))
    assert response.status_code == 400
    assert words in str(response.context["booking_policy_form"].errors[field])
    assert "Nothing was saved" in response.content.decode()
    assert {name: getattr(BookingPolicy.current(), name) for name in BookingPolicyForm.Meta.fields} == before
    assert not AuditEvent.objects.filter(action="booking_policy.update").exists()


def test_a_member_may_not_change_the_policy(alice_client: Client) -> None:
    response = alice_client.post(POLICY, _values(slot_minutes=60))
    assert response.status_code == 403
    assert BookingPolicy.current().slot_minutes == 30
    assert AuditEvent.objects.filter(action="admin_page.denied", outcome=AuditEvent.Outcome.REFUSED).count() == 1
