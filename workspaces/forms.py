"""Forms of the workspace pages; each gives its message next to the field."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator

from portal.models import Host
from workspaces.models import Workspace

_NAME_MESSAGE = "Use 1 to 20 lowercase letters and digits, like “gpu2”."


class WorkspaceCreateForm(forms.Form):
    """A member's new workspace: no name for the default one, a name for an extra one."""

    name = forms.CharField(
        max_length=20,
        required=False,
        strip=True,
        validators=[RegexValidator(r"^[a-z0-9]{1,20}$", _NAME_MESSAGE)],
        error_messages={"max_length": _NAME_MESSAGE},
        help_text="Leave empty for your default workspace. Extra ones get their own addresses, like you-gpu2-code.",
    )
    # Set by the "another workspace" form, where a name is required.
    extra = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("extra") and not cleaned.get("name") and "name" not in self.errors:
            self.add_error("name", "Give the new workspace a name, like “gpu2”.")
        return cleaned


class WorkspaceRemoveForm(forms.Form):
    """An admin's removal of a workspace, confirmed by typing its name."""

    confirm = forms.CharField(
        label="Type the workspace's name to confirm",
        max_length=80,
        error_messages={"required": "Type the workspace's name to confirm."},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    delete_data = forms.BooleanField(
        label="Also delete the member's home and scratch folders",
        required=False,
        help_text="Cannot be undone (backups aside). Allowed only for the member's last workspace.",
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.fields["confirm"].help_text = f"Type {workspace.container_name} exactly."

    def clean_confirm(self) -> str:
        value: str = self.cleaned_data["confirm"].strip()
        if value != self.workspace.container_name:
            raise forms.ValidationError(
                f"That is not the workspace's name; type {self.workspace.container_name} exactly.",
                code="mismatch",
            )
        return value


class MemberHostForm(forms.Form):
    """An admin's choice of the GPU server a member works on (workspaces/placement.py)."""

    host = forms.ModelChoiceField(
        queryset=Host.objects.order_by("name"),
        label="Server",
        empty_label=None,
        error_messages={
            "required": "Pick the server the member works on.",
            "invalid_choice": "That server is not known; pick one of the list.",
        },
        help_text="Their new workspaces, their folders and their GPU bookings go to this server.",
    )
