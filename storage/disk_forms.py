"""The disk planning page's forms: the choice a plan is made for (GET), and the apply (POST),
which carries the same choice plus what the admin ticked and typed to confirm it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator

from portal.env import format_size
from storage.planning import AUTO, DEFAULT_LABEL, DiskChoice, Survey

# The same rules hostops.disks applies; checked here too so a bad value is explained by its field.
LABEL = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z",
    "Use letters, digits, '-' and '_' (64 at most), starting with a letter or a digit.",
)
MOUNT_TARGET = RegexValidator(
    r"^(/[A-Za-z0-9._-]+)+\Z",
    "Give an absolute folder such as /srv: letters, digits, '.', '_' and '-' between the slashes, no trailing '/'.",
)
DIGEST = RegexValidator(r"^[0-9a-f]{64}\Z", "The page's plan fingerprint is missing; load the page again.")
PROFILE_CHOICES = [
    (AUTO, "By the number of disks (4 or more: raid10; 2-3: raid1; 1: single)"),
    ("raid10", "raid10 (4 disks or more)"),
    ("raid1", "raid1 (2 disks or more)"),
]


def _mount_target(value: str) -> None:
    if "/../" in f"{value}/" or "/./" in f"{value}/":
        raise forms.ValidationError("Give the folder without '.' or '..' parts.")


class DiskChoiceForm(forms.Form):
    devices = forms.MultipleChoiceField(
        label="Disks for the array",
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Tick at least one disk for the array.",
            "invalid_choice": "%(value)s is not a free disk on this server; load the page again.",
        },
    )
    profile = forms.ChoiceField(
        label="Profile", choices=PROFILE_CHOICES, initial=AUTO, error_messages={"invalid_choice": "Choose a profile."}
    )
    label = forms.CharField(
        label="Filesystem label",
        max_length=64,
        initial=DEFAULT_LABEL,
        validators=[LABEL],
        error_messages={"required": "Give the filesystem a label, such as data."},
    )
    mount_target = forms.CharField(
        label="Mount point",
        max_length=200,
        validators=[MOUNT_TARGET, _mount_target],
        help_text="Where the new filesystem is mounted; the storage root (STORAGE_ROOT) unless you say otherwise.",
        error_messages={"required": "Give the folder to mount the filesystem at, such as /srv."},
    )

    def __init__(self, *args: Any, survey: Survey, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rows = {row.disk.path: row.disk for row in survey.rows if row.usable}
        self.fields["devices"].choices = [  # type: ignore[attr-defined]
            (path, f"{path} · {format_size(disk.size)} {disk.model}".strip()) for path, disk in rows.items()
        ]
        self.fields["devices"].initial = list(rows)
        self.fields["mount_target"].initial = settings.STORAGE_ROOT

    def choice(self) -> DiskChoice | None:
        """The choice, if its fields are valid (an apply's other fields may not be)."""
        data = getattr(self, "cleaned_data", {})
        names = ("devices", "profile", "label", "mount_target")
        if any(name not in data for name in names):
            return None
        return DiskChoice(tuple(data["devices"]), data["profile"], data["label"], data["mount_target"])


class DiskApplyForm(DiskChoiceForm):
    confirmed_disks = forms.MultipleChoiceField(
        label="Wipe these disks' old signatures",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "%(value)s is not a disk of this plan."},
    )
    typed_confirmation = forms.CharField(
        label="Type the confirmation",
        max_length=500,
        strip=False,  # exactly what the plan asks for: a stray space is a mismatch
        error_messages={"required": "Type the confirmation shown above the field to apply the plan."},
    )
    plan_digest = forms.CharField(
        widget=forms.HiddenInput, validators=[DIGEST], error_messages={"required": DIGEST.message}
    )

    def __init__(self, *args: Any, survey: Survey, **kwargs: Any) -> None:
        super().__init__(*args, survey=survey, **kwargs)
        for name in ("profile", "label", "mount_target"):
            self.fields[name].widget = forms.HiddenInput()
        self.fields["devices"].widget = forms.MultipleHiddenInput()
        self.fields["confirmed_disks"].choices = self.fields["devices"].choices  # type: ignore[attr-defined]
        self.fields["typed_confirmation"].widget.attrs.update(
            {"autocomplete": "off", "spellcheck": "false", "aria-describedby": "confirmation-text"}
        )

    def show_confirmations(self, needs_confirmation: dict[str, list[str]]) -> None:
        """Offer only the plan's disks that hold old signatures, each with what is on it."""
        self.fields["confirmed_disks"].choices = [  # type: ignore[attr-defined]
            (path, f"{path}: {'; '.join(reasons)}") for path, reasons in needs_confirmation.items()
        ]
