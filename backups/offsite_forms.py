"""The forms of the Offsite repository page: the typed location that confirms "Create
repository", the lock "Break stale lock" names, and the pasted Google Drive token."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator


class BlankTextarea(forms.Textarea):
    """A textarea that renders empty whatever was posted: a pasted token is never sent back to
    the browser, not even with the error that refused it."""

    def format_value(self, value: Any) -> None:
        return None


class CreateRepositoryForm(forms.Form):
    location = forms.CharField(
        label="Type the location to confirm",
        max_length=500,
        help_text="Exactly as shown above; restic then creates an empty repository there.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "class": "mono"}),
    )


class BreakLockForm(forms.Form):
    lock_id = forms.CharField(
        max_length=64,
        validators=[RegexValidator(r"^[0-9a-f]{64}$", "That is not a lock of the repository (64 hex digits).")],
    )


class DriveTokenForm(forms.Form):
    token = forms.CharField(
        label="Token",
        strip=False,
        help_text='The JSON object that rclone authorize "drive" printed, from { to }. It is kept encrypted and '
        "never shown again.",
        widget=BlankTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false", "class": "mono"}),
    )
