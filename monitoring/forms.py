"""The Server health page's range picker; the Cost page's settings and price table."""

from __future__ import annotations

from datetime import date

from django import forms
from django.utils import timezone

from monitoring.models import CloudInstance, CostSettings
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
