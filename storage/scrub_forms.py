"""The scrub schedule's form on the storage page: the first <weekday> of each month at a time
of day in the server's time zone."""

from __future__ import annotations

from django import forms
from django.conf import settings

DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")  # cron's 0-6


class ScrubScheduleForm(forms.Form):
    enabled = forms.BooleanField(label="Scrub every month", required=False, help_text="Off: only Scrub now starts one.")
    day_of_week = forms.TypedChoiceField(
        label="On the first … of each month",
        choices=[(str(number), name) for number, name in enumerate(DAYS)],
        coerce=int,
        error_messages={
            "required": "Choose the day of the week.",
            "invalid_choice": "%(value)s is not a day of the week: choose Sunday to Saturday.",
        },
    )
    hour = forms.IntegerField(
        label="Hour",
        min_value=0,
        max_value=23,
        error_messages={
            "required": "Give the hour (0-23).",
            "invalid": "The hour is a whole number from 0 to 23.",
            "min_value": "The hour is a whole number from 0 to 23.",
            "max_value": "The hour is a whole number from 0 to 23.",
        },
    )
    minute = forms.IntegerField(
        label="Minute",
        min_value=0,
        max_value=59,
        error_messages={
            "required": "Give the minute (0-59).",
            "invalid": "The minute is a whole number from 0 to 59.",
            "min_value": "The minute is a whole number from 0 to 59.",
            "max_value": "The minute is a whole number from 0 to 59.",
        },
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        zone = settings.TIME_ZONE
        self.fields["hour"].help_text = f"In the server's time zone ({zone})."
        for name in ("hour", "minute"):
            self.fields[name].widget.attrs["inputmode"] = "numeric"
