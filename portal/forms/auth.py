"""The break-glass password form: admins only, one generic message for every refusal."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import authenticate
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest

from portal.models import User

# The same words whether the name is unknown, the password wrong or the account no admin,
# so the form never tells a guesser which part was right.
INVALID_LOGIN = "That username and password don't match an admin account."


class BreakglassForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "autofocus": True}),
    )
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        self.request = request
        self.user: User | None = None
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        username, password = cleaned.get("username"), cleaned.get("password")
        if username is None or password is None:
            return cleaned  # a blank field already has its own message
        user = authenticate(self.request, username=username, password=password)
        if not isinstance(user, User) or not _may_use_breakglass(user):
            raise ValidationError(INVALID_LOGIN, code="invalid_login")
        self.user = user
        return cleaned

    @property
    def credentials_refused(self) -> bool:
        """True when a username and password were checked and refused (a failed attempt)."""
        return self.has_error(NON_FIELD_ERRORS, "invalid_login")


def _may_use_breakglass(user: User) -> bool:
    return user.is_active and user.is_staff and user.status != User.Status.SUSPENDED
