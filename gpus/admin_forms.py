"""The admin GPUs page's form."""

from __future__ import annotations

from django import forms

from gpus.models import GpuHost


class EnforcementForm(forms.Form):
    mode = forms.ChoiceField(
        label="Bookings on this server",
        choices=GpuHost.Enforcement.choices,
        error_messages={
            "required": "Choose enforced or advisory.",
            "invalid_choice": "%(value)s is not a choice here: choose enforced or advisory.",
        },
    )
