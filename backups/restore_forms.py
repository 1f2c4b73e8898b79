"""Forms of the restore pages: what a member picks in a snapshot, and an admin's restore to a
path. Paths are checked by the same rules the worker applies again (backups/restore.py)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from backups import restore
from backups.models import ResticSnapshot, Snapshot


class PathsField(forms.Field):
    """Every value of a repeated field (one checkbox per entry), each a path inside the snapshot."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[str]:
        if not value:
            return []
        if not isinstance(value, list | tuple):
            value = [value]
        cleaned = []
        for item in value:
            try:
                cleaned.append(restore.checked_relative(str(item)))
            except restore.RestoreError as exc:
                raise ValidationError(str(exc)) from exc
        return cleaned


class RestoreForm(forms.Form):
    """A member's restore: the chosen entries of one folder (``folder`` is where they came from,
    so the page can go back there)."""

    paths = PathsField(required=False)
    folder = forms.CharField(required=False, max_length=4000, strip=False)

    def clean_folder(self) -> str:
        try:
            return restore.checked_relative(self.cleaned_data.get("folder") or "")
        except restore.RestoreError:
            return ""

    def clean_paths(self) -> list[str]:
        paths: list[str] = self.cleaned_data.get("paths") or []
        if not paths:
            raise ValidationError("Tick at least one file or folder to restore.")
        if len(paths) > restore.MAX_ITEMS:
            raise ValidationError(f"At most {restore.MAX_ITEMS} entries at once; restore their folder instead.")
        return paths


class PathForm(forms.Form):
    """``?path=`` of the browser and of a download."""

    path = forms.CharField(required=False, max_length=4000, strip=False)

    def clean_path(self) -> str:
        try:
            return restore.checked_relative(self.cleaned_data.get("path") or "")
        except restore.RestoreError as exc:
            raise ValidationError(str(exc)) from exc


class AdminRestoreForm(forms.Form):
    """Any path of any snapshot (local, or offsite in restic) to a new path under the storage
    root; over existing data only when ``confirm`` repeats the target exactly."""

    snapshot = forms.ModelChoiceField(
        queryset=Snapshot.objects.filter(deleted_at=None).order_by("source", "-taken_at"),
        required=False,
        help_text="A local BTRFS snapshot on this server (hourly, recent); or an offsite one below.",
    )
    offsite = forms.ModelChoiceField(
        queryset=ResticSnapshot.objects.filter(forgotten_at=None).order_by("source", "-taken_at"),
        required=False,
        label="Offsite snapshot",
        help_text="A restic snapshot in the offsite repository (nightly, older), instead of a local one.",
    )
    path = forms.CharField(
        required=False,
        max_length=4000,
        strip=False,
        help_text="A path inside the snapshot, such as projects/report.tex; empty for all of it.",
    )
    target = forms.CharField(max_length=4000, help_text="Where to put it: an absolute path under the storage root.")
    overwrite = forms.BooleanField(required=False, label="Overwrite what is at the target")
    confirm = forms.CharField(
        required=False, max_length=4000, label="Type the target path to confirm overwriting", strip=True
    )

    def clean_path(self) -> str:
        try:
            return restore.checked_relative(self.cleaned_data.get("path") or "")
        except restore.RestoreError as exc:
            raise ValidationError(str(exc)) from exc

    def clean_target(self) -> str:
        try:
            return restore.checked_target(self.cleaned_data["target"])
        except restore.RestoreError as exc:
            raise ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        chosen = [name for name in ("snapshot", "offsite") if data.get(name) is not None]
        if not chosen and not self.has_error("snapshot") and not self.has_error("offsite"):
            self.add_error("snapshot", "Choose the snapshot to restore from: a local one or an offsite one.")
        elif len(chosen) == 2:
            self.add_error("offsite", "Choose one snapshot only: a local one or an offsite one, not both.")
        target = data.get("target")
        if data.get("overwrite") and target and (data.get("confirm") or "").rstrip("/") != target:
            self.add_error("confirm", f"Type {target} exactly to overwrite what is there.")
        if data.get("confirm") and not data.get("overwrite"):
            self.add_error("overwrite", "Tick overwrite as well, or leave the confirmation empty.")
        return data
