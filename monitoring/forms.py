"""The Server health page's range picker."""

from __future__ import annotations

from django import forms

from monitoring.series import DEFAULT_SPAN, SPANS


class RangeForm(forms.Form):
    """Which span the charts cover; anything but the four offered is refused in words."""

    range = forms.ChoiceField(
        label="Range",
        required=False,
        choices=[(span.key, f"Last {span.label}") for span in SPANS.values()],
        error_messages={
            "invalid_choice": "There is no range called “%(value)s”: pick 6 hours, 48 hours, 30 days or 365 days."
        },
    )

    def span_key(self) -> str:
        """The span asked for; the default one when none was, or a bad one (the page says so)."""
        if self.is_bound and self.is_valid() and self.cleaned_data["range"]:
            return str(self.cleaned_data["range"])
        return DEFAULT_SPAN
