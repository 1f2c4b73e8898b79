"""The history page's filter."""

from __future__ import annotations

from django import forms

from backups.models import BackupRun


class HistoryFilterForm(forms.Form):
    """Which kind of run to list; an unknown kind is refused with words, and the page lists all."""

    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[("", "All runs"), *BackupRun.Kind.choices],
        error_messages={"invalid_choice": "There is no kind of run called “%(value)s”; pick one from the list."},
    )
