"""The policy form and the prune simulator's form: each field refused with the words an admin
needs to fix it, and the empty policy refused before anything is saved."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from backups import retention
from backups.models import KEEP_FIELDS
from backups.policies import EMPTY_POLICY, MAX_AGE_HOURS, MAX_UPLOAD_MBPS, parse_excludes, planner_policy
from backups.retention_io import EXAMPLE, TimesError, parse_lines, parse_time
from storage import ingestion

RULE_LABELS = {
    "keep_last": ("Last", "the newest n snapshots, whatever their time"),
    "keep_hourly": ("Hourly", "the newest snapshot of each of the last n hours that have one"),
    "keep_daily": ("Daily", "the newest of each of the last n days"),
    "keep_weekly": ("Weekly", "the newest of each of the last n ISO weeks (Monday to Sunday)"),
    "keep_monthly": ("Monthly", "the newest of each of the last n months"),
    "keep_yearly": ("Yearly", "the newest of each of the last n years"),
}


def _count_field(name: str) -> forms.IntegerField:
    label, help_text = RULE_LABELS[name]
    words = f"{label}: a whole number from -1 (every {label.lower()} period) to 100000; 0 turns the rule off."
    return forms.IntegerField(
        label=label,
        help_text=help_text,
        min_value=-1,
        max_value=100_000,
        initial=0,
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "class": "keep-count"}),
        error_messages={
            "required": f"{label}: give a count (0 turns the rule off).",
            "invalid": words,
            "min_value": words,
            "max_value": words,
        },
    )


class KeepFieldsMixin(forms.Form):
    """The six restic count rules, and the empty policy refused as restic refuses it."""

    keep_last = _count_field("keep_last")
    keep_hourly = _count_field("keep_hourly")
    keep_daily = _count_field("keep_daily")
    keep_weekly = _count_field("keep_weekly")
    keep_monthly = _count_field("keep_monthly")
    keep_yearly = _count_field("keep_yearly")

    def planner_policy(self, data: dict[str, Any], *, keep_within: str | None = None) -> retention.Policy | None:
        """The planner's Policy of the cleaned counts, or None with the form's error added."""
        if any(name in self.errors for name in KEEP_FIELDS):
            return None
        try:
            return planner_policy(data, keep_within=keep_within)
        except retention.PolicyError as exc:
            if exc.field and exc.field in self.fields:
                self.add_error(exc.field, exc.message)
            else:
                self.add_error(None, EMPTY_POLICY)
            return None


class BackupPolicyForm(KeepFieldsMixin):
    minute = forms.CharField(
        label="Minute", max_length=64, widget=forms.TextInput(attrs={"size": 8, "placeholder": "0"})
    )
    hour = forms.CharField(label="Hour", max_length=64, widget=forms.TextInput(attrs={"size": 8, "placeholder": "*"}))
    day_of_week = forms.CharField(
        label="Days of the week",
        max_length=64,
        help_text="* for every day, or such as mon-fri or 1,3,5 (0 is Sunday).",
        widget=forms.TextInput(attrs={"size": 8, "placeholder": "*"}),
    )
    max_age_hours = forms.IntegerField(
        label="Overdue after (hours)",
        min_value=1,
        max_value=MAX_AGE_HOURS,
        help_text="Admins are told when the last good run is older than this.",
        error_messages={
            "required": "Give the overdue threshold in hours.",
            "invalid": f"The overdue threshold is a whole number of hours from 1 to {MAX_AGE_HOURS}.",
            "min_value": f"The overdue threshold is a whole number of hours from 1 to {MAX_AGE_HOURS}.",
            "max_value": f"The overdue threshold is a whole number of hours from 1 to {MAX_AGE_HOURS}.",
        },
    )
    enabled = forms.BooleanField(label="Run on the schedule", required=False, help_text="Off: beat runs nothing.")
    # The offsite tier's own fields (the form drops them for the snapshot tier).
    upload_limit_mbps = forms.IntegerField(
        label="Upload limit (Mbit/s)",
        min_value=1,
        max_value=MAX_UPLOAD_MBPS,
        help_text="restic's --limit-upload is in KiB/s: 100 Mbit/s is 12207 KiB/s.",
        error_messages={
            "required": "Give the upload limit in Mbit/s.",
            "invalid": f"The upload limit is a whole number of Mbit/s from 1 to {MAX_UPLOAD_MBPS}.",
            "min_value": f"The upload limit is a whole number of Mbit/s from 1 to {MAX_UPLOAD_MBPS}.",
            "max_value": f"The upload limit is a whole number of Mbit/s from 1 to {MAX_UPLOAD_MBPS}.",
        },
    )
    excludes = forms.CharField(
        label="Left out",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 40, "spellcheck": "false"}),
        help_text=(
            "One restic pattern a line, matched anywhere in each home and dataset (such as .cache or "
            "*.tmp). Scratch is never backed up, nor container layers."
        ),
    )

    def __init__(self, *args: Any, tier: str = "snapshot", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if tier != "restic":
            del self.fields["upload_limit_mbps"]
            del self.fields["excludes"]
        zone = settings.TIME_ZONE
        self.fields["hour"].help_text = f"Cron fields in the server's time zone ({zone}); * is every hour."
        for part in ("minute", "hour", "day_of_week"):
            self.fields[part].error_messages["required"] = f"Give the {part.replace('_', ' ')} (* for every one)."

    def _cron(self, part: str) -> str:
        return ingestion.validate_cron_field(self.cleaned_data.get(part) or "", part)

    def clean_minute(self) -> str:
        return self._cron("minute")

    def clean_hour(self) -> str:
        return self._cron("hour")

    def clean_day_of_week(self) -> str:
        return self._cron("day_of_week")

    def clean_excludes(self) -> list[str]:
        try:
            return parse_excludes(self.cleaned_data.get("excludes") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        self.planner_policy(data)
        return data


class SimulatorForm(KeepFieldsMixin):
    times = forms.CharField(
        label="Snapshot times",
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "mono", "placeholder": EXAMPLE}),
        help_text=f"One ISO 8601 time with its offset per line, such as {EXAMPLE}. Each time's own offset "
        "decides its hour, day and week, as restic does.",
        error_messages={"required": f"Paste at least one snapshot time, one per line, such as {EXAMPLE}."},
    )
    keep_within = forms.CharField(
        label="Within",
        required=False,
        max_length=32,
        help_text="Keep everything newer than this before the newest snapshot, such as 2d or 1y6m (optional).",
        widget=forms.TextInput(attrs={"size": 8}),
    )
    now = forms.CharField(
        label="Now",
        required=False,
        max_length=64,
        help_text="Snapshots after this are in the future (restic's rule); empty: the current time.",
        widget=forms.TextInput(attrs={"placeholder": EXAMPLE}),
    )

    def clean_times(self) -> list[tuple[int, str, datetime]]:
        try:
            return parse_lines(self.cleaned_data["times"])
        except TimesError as exc:
            raise ValidationError(str(exc)) from None

    def clean_now(self) -> datetime | None:
        raw = (self.cleaned_data.get("now") or "").strip()
        if not raw:
            return None
        try:
            return parse_time(raw)
        except ValueError as exc:
            raise ValidationError(f"Now: {exc} (write it like {EXAMPLE}).") from None

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if "keep_within" not in self.errors:
            data["policy"] = self.planner_policy(data, keep_within=(data.get("keep_within") or "").strip() or None)
        return data
