"""parse_public_key against real keys (made with cryptography and ssh-keygen) and bad pastes."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import struct
import subprocess
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.sshkeys import ParsedKey, SSHKeyError, parse_public_key

_CURVES = {256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}


@cache
def private_key(kind: str, bits: int = 0) -> object:
    """A real private key, made once per test session (RSA 4096 is slow to generate)."""
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ecdsa":
        return ec.generate_private_key(_CURVES[bits]())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    raise ValueError(kind)


def public_line(kind: str, bits: int = 0, comment: str = "") -> str:
    """The key as a .pub file holds it: '<type> <base64>[ comment]'."""
    public = private_key(kind, bits).public_key()  # type: ignore[attr-defined]
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}" if comment else line


def fresh_ed25519_line(comment: str = "") -> str:
    """A new, never-registered ed25519 key."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}" if comment else line


def private_text(fmt: serialization.PrivateFormat) -> str:
    return (
        private_key("ed25519")
        .private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())  # type: ignore[attr-defined]
        .decode()
    )


def expected_fingerprint(line: str) -> str:
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def sk_ed25519_line(*, with_application: bool = True) -> str:
    """A FIDO security-key public key (ssh-keygen -t ed25519-sk needs the hardware token)."""
    raw = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    blob = _ssh_string(b"sk-ssh-ed25519@openssh.com") + _ssh_string(raw)
    if with_application:
        blob += _ssh_string(b"ssh:")
    return f"sk-ssh-ed25519@openssh.com {base64.b64encode(blob).decode()} token"


@pytest.mark.parametrize(
    ("kind", "bits", "key_type"),
    [
        ("ed25519", 0, "ssh-ed25519"),
        ("ecdsa", 256, "ecdsa-sha2-nistp256"),
        ("ecdsa", 384, "ecdsa-sha2-nistp384"),
        ("ecdsa", 521, "ecdsa-sha2-nistp521"),
        ("rsa", 2048, "ssh-rsa"),
        ("rsa", 4096, "ssh-rsa"),
    ],
)
def test_it_accepts_real_keys_of_every_allowed_type(kind: str, bits: int, key_type: str) -> None:
    line = public_line(kind, bits, comment="alice@laptop")
    parsed = parse_public_key(line)
    assert parsed == ParsedKey(
        key_type=key_type,
        bits=bits or 256,
        fingerprint=expected_fingerprint(line),
        comment="alice@laptop",
        canonical=line,
    )


def test_it_accepts_a_security_key_and_measures_it() -> None:
    parsed = parse_public_key(sk_ed25519_line())
    assert (parsed.key_type, parsed.bits, parsed.comment) == ("sk-ssh-ed25519@openssh.com", 256, "token")


def test_it_refuses_a_security_key_whose_data_is_incomplete() -> None:
    with pytest.raises(SSHKeyError, match="damaged"):
        parse_public_key(sk_ed25519_line(with_application=False))


def test_it_tolerates_surrounding_whitespace_and_a_windows_line_end() -> None:
    line = public_line("ed25519")
    parsed = parse_public_key(f"\n  {line}   laptop \r\n\n")
    assert parsed.canonical == f"{line} laptop"
    assert parsed.comment == "laptop"


def test_the_canonical_line_has_no_comment_when_the_key_had_none() -> None:
    line = public_line("ed25519")
    assert parse_public_key(line).canonical == line


def test_different_keys_get_different_fingerprints() -> None:
    assert parse_public_key(fresh_ed25519_line()).fingerprint != parse_public_key(fresh_ed25519_line()).fingerprint


SSH_KEYGEN = shutil.which("ssh-keygen")


def _ssh_keygen(*args: str) -> str:
    assert SSH_KEYGEN is not None
    return subprocess.run([SSH_KEYGEN, *args], check=True, capture_output=True, text=True, timeout=60).stdout


@pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen is not installed")
@pytest.mark.parametrize(("key_type", "extra"), [("ed25519", []), ("rsa", ["-b", "3072"]), ("ecdsa", ["-b", "384"])])
def test_it_agrees_with_ssh_keygen_on_keys_it_made(tmp_path: Path, key_type: str, extra: list[str]) -> None:
    key_file = tmp_path / "id"
    _ssh_keygen("-q", "-t", key_type, *extra, "-N", "", "-C", "alice@ssh-keygen", "-f", str(key_file))
    parsed = parse_public_key(key_file.with_suffix(".pub").read_text())
    bits, fingerprint = _ssh_keygen("-l", "-E", "sha256", "-f", str(key_file.with_suffix(".pub"))).split()[:2]
    assert (parsed.bits, parsed.fingerprint, parsed.comment) == (int(bits), fingerprint, "alice@ssh-keygen")


def _flip_one_base64_char(line: str) -> str:
    key_type, data = line.split()[:2]
    index = len(data) // 2
    replacement = "A" if data[index] != "A" else "B"
    return f"{key_type} {data[:index]}{replacement}{data[index + 1 :]}"


REFUSALS = [
    ("", "Paste a public key"),
    ("   \n\t ", "Paste a public key"),
    ("hello world", "does not look like an SSH public key"),
    ("AAAAC3NzaC1lZDI1NTE5AAAAIE", "does not look like an SSH public key"),
    ("ssh-ed25519", "missing its data"),
    ("x" * 20_000, "far too long"),
]


@pytest.mark.parametrize(("text", "message"), REFUSALS)
def test_it_refuses_text_that_is_no_key(text: str, message: str) -> None:
    with pytest.raises(SSHKeyError, match=re.escape(message)):
        parse_public_key(text)


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.OpenSSH, serialization.PrivateFormat.PKCS8])
def test_it_refuses_a_private_key_and_says_so(fmt: serialization.PrivateFormat) -> None:
    with pytest.raises(SSHKeyError, match="PRIVATE key"):
        parse_public_key(private_text(fmt))


def test_it_refuses_a_putty_private_key() -> None:
    with pytest.raises(SSHKeyError, match="PRIVATE key"):
        parse_public_key("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: me\n")


def _mpint(value: int) -> bytes:
    return _ssh_string(value.to_bytes(value.bit_length() // 8 + 1, "big"))


def test_it_refuses_a_dsa_key() -> None:
    # Built by hand: cryptography's own DSA-to-OpenSSH export is deprecated.
    weak = dsa.generate_private_key(key_size=1024)  # noqa: S505 - the weak key is what is refused
    numbers = weak.public_key().public_numbers()
    params = numbers.parameter_numbers
    blob = _ssh_string(b"ssh-dss") + b"".join(_mpint(n) for n in (params.p, params.q, params.g, numbers.y))
    with pytest.raises(SSHKeyError, match="DSA keys are insecure"):
        parse_public_key(f"ssh-dss {base64.b64encode(blob).decode()} old@box")


def test_it_refuses_an_rsa_key_below_2048_bits() -> None:
    with pytest.raises(SSHKeyError, match="1024 bits; at least 2048"):
        parse_public_key(public_line("rsa", 1024))


@pytest.mark.parametrize(
    "prefix",
    ['command="/bin/sh -c evil"', 'from="10.0.0.0/8"', "no-pty", 'restrict,command="x"', "cert-authority"],
)
def test_it_refuses_authorized_keys_options(prefix: str) -> None:
    with pytest.raises(SSHKeyError, match="options"):
        parse_public_key(f"{prefix} {public_line('ed25519')}")


def test_it_refuses_two_keys_on_two_lines() -> None:
    with pytest.raises(SSHKeyError, match="exactly one key"):
        parse_public_key(f"{fresh_ed25519_line('a')}\n{fresh_ed25519_line('b')}")


def test_it_refuses_two_keys_pasted_on_one_line() -> None:
    with pytest.raises(SSHKeyError, match="exactly one key"):
        parse_public_key(f"{fresh_ed25519_line()} {fresh_ed25519_line('b')}")


def test_it_refuses_base64_that_does_not_decode() -> None:
    key_type, data = public_line("ed25519").split()
    with pytest.raises(SSHKeyError, match="not valid base64"):
        parse_public_key(f"{key_type} {data[:-3]}")


def test_it_refuses_a_key_with_a_damaged_byte() -> None:
    with pytest.raises(SSHKeyError, match="damaged"):
        parse_public_key(_flip_one_base64_char(public_line("ecdsa", 256)))


def test_it_refuses_a_key_whose_type_does_not_match_its_data() -> None:
    data = public_line("ed25519").split()[1]
    with pytest.raises(SSHKeyError, match="does not match its type"):
        parse_public_key(f"ssh-rsa {data}")


def test_it_refuses_a_comment_with_control_or_non_ascii_characters() -> None:
    with pytest.raises(SSHKeyError, match="printable ASCII"):
        parse_public_key(f"{public_line('ed25519')} caf\u00e9\x07")


# --- properties: whatever is pasted, the parser either returns a key or says what's wrong ---

_VALID_LINES = st.sampled_from([("ed25519", 0), ("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521), ("rsa", 2048)]).map(
    lambda kind_bits: public_line(*kind_bits, comment="me@host")
)


def _parse_or_refuse(text: str) -> ParsedKey | None:
    try:
        return parse_public_key(text)
    except SSHKeyError as exc:
        message = str(exc)
    assert message, "every refusal carries a message for the member"
    return None


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_text_is_either_a_key_or_a_refusal(text: str) -> None:
    _parse_or_refuse(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=_VALID_LINES, data=st.data())
def test_damaged_copies_of_real_keys_are_either_keys_or_refusals(line: str, data: st.DataObject) -> None:
    key_type, blob, comment = line.split()
    mutation = data.draw(st.sampled_from(["truncate", "flip", "prefix", "suffix", "splice"]))
    if mutation == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    elif mutation == "flip":
        index = data.draw(st.integers(0, len(blob) - 1))
        blob = blob[:index] + data.draw(st.characters(codec="ascii")) + blob[index + 1 :]
    elif mutation == "splice":
        raw = bytearray(base64.b64decode(blob))
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
        blob = base64.b64encode(bytes(raw)).decode()
    text = f"{key_type} {blob} {comment}"
    if mutation == "prefix":
        text = data.draw(st.text(max_size=40)) + text
    elif mutation == "suffix":
        text = text + data.draw(st.text(max_size=40))
    parsed = _parse_or_refuse(text)
    if parsed is not None:
        # Anything accepted must be a well-formed line whose fingerprint matches its data.
        assert parsed.canonical.split()[0] == parsed.key_type
        assert parsed.fingerprint == expected_fingerprint(parsed.canonical)
