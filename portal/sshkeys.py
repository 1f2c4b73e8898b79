"""Parse and judge an OpenSSH public key as a member pastes it.

Only a bare ``<type> <base64> [comment]`` line is accepted: authorized_keys options such as
``command=`` or ``from=`` are refused (the portal writes the file, the member doesn't get to
change what the key may do), as are private keys, DSA and RSA below 2048 bits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

MIN_RSA_BITS = 2048
MAX_KEY_TEXT = 16_384
_EC_BITS = {"ecdsa-sha2-nistp256": 256, "ecdsa-sha2-nistp384": 384, "ecdsa-sha2-nistp521": 521}
_SK_TYPES = ("sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
ALLOWED_TYPES = ("ssh-ed25519", "ssh-rsa", *_EC_BITS, *_SK_TYPES)
_COMMENT_RE = re.compile(r"^[\x20-\x7e]{0,200}$")


class SSHKeyError(ValueError):
    """The text is not an acceptable public key; the message says why, for the member."""


class PrivateKeyError(SSHKeyError):
    """The text holds a private key: a secret that must not be stored or shown again."""


def looks_private(text: str) -> bool:
    return "PRIVATE KEY" in text or text.lstrip().startswith("PuTTY-User-Key-File")


@dataclass(frozen=True)
class ParsedKey:
    key_type: str
    bits: int
    fingerprint: str  # "SHA256:<base64 without padding>", as ssh-keygen -l prints it
    comment: str
    canonical: str  # "<type> <base64> <comment>", the line that goes into authorized_keys


def _fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _blob_type(blob: bytes) -> str:
    # The key blob starts with its own type as an SSH string; it must match the line's type.
    if len(blob) < 4:
        raise SSHKeyError("The key data is too short to be a public key.")
    (length,) = struct.unpack(">I", blob[:4])
    return blob[4 : 4 + length].decode("ascii", "replace")


def _bits(key_type: str, line: str) -> int:
    # Security-key (sk-) types load too, so their data is checked like any other key's.
    try:
        key = load_ssh_public_key(line.encode())
    except (ValueError, UnsupportedAlgorithm, NotImplementedError) as exc:  # compressed EC points raise the last
        raise SSHKeyError("The key data is damaged: it does not decode as a public key.") from exc
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    raise SSHKeyError(f"{key_type} keys are not accepted.")


def _single_line(text: str) -> str:
    """The one non-blank line of ``text``, after the checks that need the whole paste."""
    text = (text or "").strip()
    if not text:
        raise SSHKeyError("Paste a public key, the one line from your ~/.ssh/id_ed25519.pub.")
    # Before the length check: a private key inside a long paste still gets its own message.
    if looks_private(text):
        raise PrivateKeyError("This is a PRIVATE key. Never share it; paste the .pub file instead.")
    if len(text) > MAX_KEY_TEXT:
        raise SSHKeyError("That is far too long for a public key.")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise SSHKeyError("Paste exactly one key, on one line.")
    return lines[0]


def _check_type(parts: list[str]) -> str:
    key_type = parts[0]
    if key_type in ALLOWED_TYPES:
        return key_type
    if key_type == "ssh-dss":
        raise SSHKeyError("DSA keys are insecure and not accepted; use ssh-keygen -t ed25519.")
    if "=" in key_type or "," in key_type or (len(parts) > 1 and parts[1] in ALLOWED_TYPES):
        raise SSHKeyError("Key options (like command= or from=) are not allowed; paste the bare key.")
    raise SSHKeyError(
        "This does not look like an SSH public key; it should start with ssh-ed25519, ssh-rsa or ecdsa-sha2-…"
    )


def _check_comment(parts: list[str]) -> str:
    comment = parts[2].strip() if len(parts) > 2 else ""
    if not _COMMENT_RE.fullmatch(comment):
        raise SSHKeyError("The comment after the key may only hold printable ASCII (200 characters at most).")
    # Two keys pasted on one line would otherwise pass with the second as the first's comment.
    if any(word in (*ALLOWED_TYPES, "ssh-dss") for word in comment.split()):
        raise SSHKeyError("Paste exactly one key, on one line.")
    return comment


def parse_public_key(text: str) -> ParsedKey:
    """Return the parsed key or raise SSHKeyError with a message naming the problem."""
    parts = _single_line(text).split(None, 2)
    key_type = _check_type(parts)
    if len(parts) < 2:
        raise SSHKeyError("The key is missing its data after the type.")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SSHKeyError("The key data is not valid base64; copy the whole line again.") from exc
    if _blob_type(blob) != key_type:
        raise SSHKeyError("The key data does not match its type; copy the whole line again.")
    comment = _check_comment(parts)
    bits = _bits(key_type, f"{key_type} {parts[1]}")
    if key_type == "ssh-rsa" and bits < MIN_RSA_BITS:
        raise SSHKeyError(f"This RSA key has {bits} bits; at least {MIN_RSA_BITS} are required.")
    canonical = f"{key_type} {parts[1]}" + (f" {comment}" if comment else "")
    return ParsedKey(key_type, bits, _fingerprint(blob), comment, canonical)
