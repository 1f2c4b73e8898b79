"""Forms of the member's own account page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from portal.models import SSHKey, User
from portal.sshkeys import ParsedKey, PrivateKeyError, SSHKeyError, parse_public_key

# One message whoever holds the key: saying whose it is would tell a member who else has it.
KEY_TAKEN_MESSAGE = (
    "This key is already registered on the portal, and a key can belong to one account only. "
    "Create a new one with: ssh-keygen -t ed25519"
)
_PRIVATE_CLEARED = "It was not saved, and the box has been emptied so that the key does not stay on this page."
_EMPTY_KEY_MESSAGE = "Paste a public key, the one line from your ~/.ssh/id_ed25519.pub."


class SSHKeyAddForm(forms.Form):
    """Name and public key of a new SSH key for ``user``; the parsed key is in ``self.parsed``."""

    name = forms.CharField(
        max_length=100,
        required=False,
        help_text="For you to tell your keys apart, e.g. “work laptop”. Defaults to the key's comment.",
    )
    public_key = forms.CharField(
        label="Public key",
        error_messages={"required": _EMPTY_KEY_MESSAGE},
        widget=forms.Textarea(
            attrs={
                "rows": 4,
                "spellcheck": "false",
                "autocomplete": "off",
                "placeholder": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… you@laptop",
            }
        ),
        help_text="The contents of a .pub file, e.g. ~/.ssh/id_ed25519.pub. Never the private key.",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.parsed: ParsedKey | None = None

    @property
    def parsed_key(self) -> ParsedKey:
        """The key of a valid form."""
        if self.parsed is None:
            raise RuntimeError("the form has no valid key; call is_valid() first")
        return self.parsed

    def full_clean(self) -> None:
        super().full_clean()
        if self.has_error("public_key", code="private_key"):
            # The refusal re-renders the form: never with the secret in the box.
            self.data = {**self.data, "public_key": ""}

    def clean_public_key(self) -> str:
        try:
            parsed = parse_public_key(self.cleaned_data["public_key"])
        except PrivateKeyError as exc:
            raise ValidationError(f"{exc} {_PRIVATE_CLEARED}", code="private_key") from exc
        except SSHKeyError as exc:
            raise ValidationError(str(exc), code="invalid_key") from exc
        if SSHKey.objects.filter(fingerprint=parsed.fingerprint).exists():
            raise ValidationError(KEY_TAKEN_MESSAGE, code="key_taken")
        self.parsed = parsed
        return parsed.canonical

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.parsed is None or "name" not in cleaned:
            return cleaned
        name = (cleaned["name"] or self.parsed.comment or self.parsed.key_type)[:100]
        if self.user.ssh_keys.filter(name__iexact=name).exists():
            self.add_error("name", f"You already have a key named “{name}”; choose another name.")
        else:
            cleaned["name"] = name
        return cleaned
