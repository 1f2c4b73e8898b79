"""The ingestion job form: every field checked with the words an admin needs to fix it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from hostops import rclone
from hostops.errors import HostOpsError
from storage import ingestion
from storage.models import IngestionJob

MAX_MBPS = 100_000


class IngestionJobForm(forms.ModelForm):  # type: ignore[type-arg]
    bwlimit_mbps = forms.IntegerField(
        label="Bandwidth limit (Mbit/s)",
        initial=100,
        min_value=1,
        max_value=MAX_MBPS,
        error_messages={
            "required": "Give a bandwidth limit in Mbit/s (100 for the customer link).",
            "invalid": "Give the bandwidth limit as a whole number of Mbit/s.",
            "min_value": "The bandwidth limit must be at least 1 Mbit/s.",
            "max_value": f"The bandwidth limit can be at most {MAX_MBPS:,} Mbit/s (100 Gbit/s).",
        },
    )

    class Meta:
        model = IngestionJob
        fields = list(ingestion.JOB_FIELDS)
        labels = {
            "source": "Source (remote:path)",
            "target_kind": "Copy to",
            "target": "Target",
            "check_after": "Check afterwards",
            "enabled": "Enabled (runs on its schedule)",
            "schedule_minute": "Minute",
            "schedule_hour": "Hour",
            "schedule_day_of_week": "Days of the week",
        }
        help_texts = {
            "name": "Lowercase letters, digits and '-'; the schedule's beat entry is storage-ingestion-<name>.",
            "target": "A dataset folder such as customer-data/daily (under the shared datasets), "
            "or remote:path on another remote.",
            "schedule_minute": "Leave minute and hour empty to run the job by hand only.",
            "schedule_day_of_week": "* for every day, or such as mon-fri or 1,3,5 (0 is Sunday).",
        }
        error_messages = {
            "name": {
                "required": "Give the job a name.",
                "unique": "A job with this name exists already; choose another name.",
            },
            "source": {"required": "Give the source as remote:path."},
            "target": {"required": "Give the target: a dataset folder, or remote:path."},
        }
        widgets = {
            "description": forms.TextInput(),
            "schedule_minute": forms.TextInput(attrs={"placeholder": "0", "size": 8}),
            "schedule_hour": forms.TextInput(attrs={"placeholder": "4", "size": 8}),
            "schedule_day_of_week": forms.TextInput(attrs={"placeholder": "*", "size": 8}),
        }

    def clean_source(self) -> str:
        return ingestion.validate_source(self.cleaned_data["source"])

    def _cron(self, part: str) -> str:
        value: str = (self.cleaned_data.get(f"schedule_{part}") or "").strip()
        return ingestion.validate_cron_field(value, part) if value else ""

    def clean_schedule_minute(self) -> str:
        return self._cron("minute")

    def clean_schedule_hour(self) -> str:
        return self._cron("hour")

    def clean_schedule_day_of_week(self) -> str:
        return self._cron("day_of_week") or "*"

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        kind, target = data.get("target_kind"), (data.get("target") or "").strip()
        if target and kind:
            try:
                if kind == IngestionJob.TargetKind.DATASET:
                    data["target"] = ingestion.validate_dataset_path(target)
                else:
                    data["target"] = ingestion.validate_remote_target(target)
            except ValidationError as exc:
                self.add_error("target", exc)
        minute, hour = data.get("schedule_minute"), data.get("schedule_hour")
        if "schedule_minute" not in self.errors and "schedule_hour" not in self.errors and bool(minute) != bool(hour):
            self.add_error(
                "schedule_hour", "Give both a minute and an hour, or leave both empty to run the job by hand only."
            )
        return data

    def bwlimit_words(self) -> str:
        """ "100 Mbit/s is passed to rclone as --bwlimit 12207K (KiB/s)" for the value shown."""
        value = self["bwlimit_mbps"].value()
        try:
            mbps = int(value)  # type: ignore[arg-type]
            return f"{mbps} Mbit/s is passed to rclone as --bwlimit {rclone.bwlimit_from_mbps(mbps)} (KiB/s)."
        except (TypeError, ValueError, HostOpsError):
            return "100 Mbit/s is passed to rclone as --bwlimit 12207K (KiB/s)."
