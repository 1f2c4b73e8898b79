"""The Server health page's range picker, the Cost page's settings and price table, and the
alert pages' forms."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from monitoring.models import Alert, AlertRule, CloudInstance, CostSettings
from monitoring.rules import FOR_MAX_MINUTES, WINDOW_RANGE, kind_of
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


class CostSettingsForm(forms.ModelForm):  # type: ignore[type-arg]
    """The server's costs; every field is required, prices and watts never negative."""

    class Meta:
        model = CostSettings
        fields = [
            "currency",
            "hardware_price",
            "purchased",
            "amortisation_months",
            "base_watts",
            "gpu_watts",
            "kwh_price",
            "internet_monthly",
            "other_monthly",
        ]
        widgets = {"purchased": forms.DateInput(attrs={"type": "date"})}

    def clean_purchased(self) -> date:
        purchased: date = self.cleaned_data["purchased"]
        if purchased > timezone.localdate():
            raise forms.ValidationError("The server can't have been bought in the future.")
        return purchased


class CloudInstanceForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = CloudInstance
        fields = ["name", "gpus", "hourly_price", "stands_for"]
        widgets = {"stands_for": forms.TextInput()}


class BaseCloudInstanceFormSet(forms.BaseModelFormSet):  # type: ignore[type-arg]
    """The price table as a whole: what is kept must price both a workspace-hour (a row without
    GPUs) and a GPU-hour (a row with GPUs costing more than the cheapest row without)."""

    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.cleaned_data.get("name")
        ]
        plain = [row["hourly_price"] for row in kept if row["gpus"] == 0]
        if not plain:
            raise forms.ValidationError("Keep a row without GPUs: it prices a workspace-hour.")
        if not any(row["gpus"] > 0 for row in kept):
            raise forms.ValidationError("Keep a row with GPUs: it prices a GPU-hour.")
        for row in kept:
            if row["gpus"] > 0 and row["hourly_price"] <= min(plain):
                raise forms.ValidationError(
                    f"“{row['name']}” has GPUs but costs no more than the cheapest row without "
                    f"({min(plain)} an hour), so it can't price a GPU-hour."
                )


CloudInstanceFormSet = forms.modelformset_factory(
    CloudInstance, form=CloudInstanceForm, formset=BaseCloudInstanceFormSet, extra=1, can_delete=True
)


class AlertRuleForm(forms.ModelForm):  # type: ignore[type-arg]
    """A rule's settings, each checked against the kind's range and unit; a yes/no kind has no
    threshold and only the crash loop has a window."""

    class Meta:
        model = AlertRule
        fields = ["enabled", "threshold", "window_minutes", "for_minutes", "notes"]
        labels = {
            "enabled": "On",
            "window_minutes": "Window (minutes)",
            "for_minutes": "For (minutes)",
        }
        help_texts = {
            "for_minutes": "How long the condition must hold before it fires; 0 fires at the first evaluation.",
        }
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kind = kind_of(self.instance)
        if kind.yes_no:
            del self.fields["threshold"]
        else:
            field = self.fields["threshold"]
            field.required = True
            field.label = f"Threshold ({kind.unit})"
            field.help_text = (
                f"Fires {'at' if kind.at_least else 'above'} this, from {kind.low:g} to {kind.high:g} {kind.unit}."
            )
        if kind.window_minutes is None:
            del self.fields["window_minutes"]
        else:
            self.fields["window_minutes"].required = True
            self.fields["window_minutes"].help_text = "The crashes are counted over this many minutes."
        if kind.told_elsewhere:  # its own app tells and judges its incidents' time
            del self.fields["for_minutes"]
        for name in ("for_minutes", "window_minutes"):
            if name in self.fields:  # the clean_ methods say the range in words, in one message
                self.fields[name].validators = []
                self.fields[name].error_messages["invalid"] = "Give whole minutes, 0 or more."

    def clean_threshold(self) -> float:
        kind = kind_of(self.instance)
        value = self.cleaned_data["threshold"]
        if value is None or math.isnan(value) or not kind.low <= value <= kind.high:
            raise forms.ValidationError(
                f"The threshold is from {kind.low:g} to {kind.high:g} {kind.unit}.", code="range"
            )
        return float(value)

    def clean_window_minutes(self) -> int:
        value = self.cleaned_data["window_minutes"]
        low, high = WINDOW_RANGE
        if value is None or not low <= value <= high:
            raise forms.ValidationError(f"The window is from {low} to {high} minutes.", code="range")
        return int(value)

    def clean_for_minutes(self) -> int:
        value = self.cleaned_data["for_minutes"]
        if value is None or not 0 <= value <= FOR_MAX_MINUTES:
            raise forms.ValidationError(f"“For” is from 0 to {FOR_MAX_MINUTES} minutes (a day).", code="range")
        return int(value)


SILENCE_SPANS = [("60", "1 hour"), ("240", "4 hours"), ("1440", "1 day"), ("10080", "1 week")]
SILENCE_MAX = timedelta(days=30)


class SilenceForm(forms.Form):
    """Silence one incident's subject, or its whole rule, for a span or until a time."""

    scope = forms.ChoiceField(
        label="Silence",
        choices=[("subject", "this subject only"), ("rule", "every subject of this rule")],
        initial="subject",
    )
    duration = forms.ChoiceField(label="For", choices=[("", "until the time below"), *SILENCE_SPANS], required=False)
    ends_at = forms.DateTimeField(
        label="Or until (UTC)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )
    reason = forms.CharField(label="Reason", max_length=300)

    def __init__(self, *args: Any, now: datetime, subject: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now
        if not subject:  # a whole rule, ahead of any incident: nothing to choose
            del self.fields["scope"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        duration, ends_at = data.get("duration"), data.get("ends_at")
        if duration:
            data["until"] = self.now + timedelta(minutes=int(duration))
        elif ends_at is not None:
            data["until"] = ends_at if timezone.is_aware(ends_at) else ends_at.replace(tzinfo=UTC)
        elif "ends_at" not in self.errors:
            raise forms.ValidationError("Pick how long the silence lasts, or the time it ends.", code="required")
        until = data.get("until")
        if until is not None and until <= self.now:
            self.add_error("ends_at", "The end time is in the past: pick a time to come.")
        elif until is not None and until - self.now > SILENCE_MAX:
            self.add_error("ends_at", "A silence lasts at most 30 days; turn the rule off instead.")
        return data


class HistoryForm(forms.Form):
    """The history page's filters."""

    rule = forms.ModelChoiceField(
        label="Rule",
        queryset=AlertRule.objects.all(),
        required=False,
        empty_label="All rules",
        error_messages={"invalid_choice": "There is no such rule."},
    )
    state = forms.ChoiceField(
        label="State",
        choices=[("", "Any state"), *Alert.State.choices],
        required=False,
        error_messages={"invalid_choice": "There is no state called “%(value)s”."},
    )
