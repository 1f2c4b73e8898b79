"""Forms of the Policies page (team-wide settings admins change in the portal)."""

from __future__ import annotations

from typing import Any

from django import forms

from portal.models import IDLE_GRACE_MINUTES_MAX, IDLE_GRACE_MINUTES_MIN, IDLE_HOURS_MAX, SitePolicy


class IdlePolicyForm(forms.Form):
    """When a running workspace nobody uses gets its warning, and how long until it stops."""

    idle_stop_hours = forms.IntegerField(
        label="Warn after this many idle hours",
        min_value=0,
        max_value=IDLE_HOURS_MAX,
        help_text="0 turns the policy off: workspaces run until their owner stops them.",
        error_messages={
            "required": "Enter a number of hours (0 turns the policy off).",
            "invalid": "Enter a whole number of hours, like 8.",
            "min_value": "Hours can't be negative; use 0 to turn the policy off.",
            "max_value": f"At most {IDLE_HOURS_MAX} hours (30 days); use 0 to turn the policy off.",
        },
    )
    idle_grace_minutes = forms.IntegerField(
        label="Stop this many minutes after the warning",
        min_value=IDLE_GRACE_MINUTES_MIN,
        max_value=IDLE_GRACE_MINUTES_MAX,
        help_text=f"The time the member has to click “Keep running”: {IDLE_GRACE_MINUTES_MIN} to "
        f"{IDLE_GRACE_MINUTES_MAX} minutes.",
        error_messages={
            "required": "Enter a number of minutes, like 60.",
            "invalid": "Enter a whole number of minutes, like 60.",
            "min_value": f"At least {IDLE_GRACE_MINUTES_MIN} minutes, so the member has time to see the warning.",
            "max_value": f"At most {IDLE_GRACE_MINUTES_MAX} minutes (one day).",
        },
    )

    def __init__(self, data: Any = None, *, policy: SitePolicy) -> None:
        initial = {name: getattr(policy, name) for name in self.base_fields}
        super().__init__(data, initial=initial)
