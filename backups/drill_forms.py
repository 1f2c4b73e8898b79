"""The restore drill's schedule form on the Backups overview: a day of the month and a time of
day in the server's time zone (backups.drill_schedule checks the same again)."""

from __future__ import annotations

from django import forms
from django.conf import settings

from backups.drill_schedule import LAST_DAY


def _whole(name: str, low: int, high: int) -> dict[str, str]:
    words = f"The {name} is a whole number from {low} to {high}."
    return {"required": f"Give the {name} ({low}-{high}).", "invalid": words, "min_value": words, "max_value": words}


class DrillScheduleForm(forms.Form):
    enabled = forms.BooleanField(
        label="Run the drill every month", required=False, help_text="Off: only Run drill now starts one."
    )
    day_of_month = forms.IntegerField(
        label="Day of the month",
        min_value=1,
        max_value=LAST_DAY,
        help_text=f"1 to {LAST_DAY}, so that every month has it.",
        error_messages=_whole("day", 1, LAST_DAY),
    )
    hour = forms.IntegerField(label="Hour", min_value=0, max_value=23, error_messages=_whole("hour", 0, 23))
    minute = forms.IntegerField(label="Minute", min_value=0, max_value=59, error_messages=_whole("minute", 0, 59))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["hour"].help_text = f"In the server's time zone ({settings.TIME_ZONE})."
        for name in ("day_of_month", "hour", "minute"):
            self.fields[name].widget.attrs["inputmode"] = "numeric"
