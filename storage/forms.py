from __future__ import annotations

from typing import Any

from django import forms

from portal.models import User


class MemberStorageDeleteForm(forms.Form):
    """An admin's deletion of a departed member's home and scratch, confirmed by typing their
    username (the service checks it again, with the member's state)."""

    confirm = forms.CharField(
        label="Type the member's username to confirm",
        max_length=64,
        error_messages={"required": "Type the member's username to confirm."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, member: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.member = member
        self.fields["confirm"].help_text = f"Type {member.username} exactly. This cannot be undone (backups aside)."
        self.auto_id = "id_storage_%s"
