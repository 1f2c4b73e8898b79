"""Typed readers for environment variables that fail fast, naming the variable.

Every secret may also come from a file: ``NAME_FILE=/run/secrets/name`` wins over ``NAME``
(Docker and systemd credentials).
"""

from __future__ import annotations

import ipaddress
import os
import re
from fractions import Fraction
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*$", re.IGNORECASE)


def env_str(name: str, default: str | None = None) -> str:
    """The variable's value (or its ``_FILE``'s content); ImproperlyConfigured if required and unset."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_path!r}: {exc}") from exc
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"{name} is required but not set")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A comma-separated list of addresses or CIDRs ("172.30.0.0/24, 10.0.0.5")."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or network") from exc
    return networks


def parse_size(text: str) -> int:
    """'32G' -> bytes (binary units: K=1024). Raises ValueError with a readable message."""
    match = _SIZE_RE.match(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a size; use a number with K, M, G, T or P, like 32G")
    number, unit = match.groups()
    value = Fraction(number) * _SIZE_UNITS[unit.upper()]  # exact: floats lose bytes past 2**53
    if value.denominator != 1:
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


def format_size_exact(num_bytes: int | None) -> str:
    """Bytes -> the shortest exact form ('32G', '1536M'), so a form shows back precisely the
    value stored: re-saving an untouched form changes nothing."""
    if num_bytes is None:
        return ""
    for unit in ("P", "T", "G", "M", "K"):
        factor = _SIZE_UNITS[unit]
        if num_bytes >= factor and num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}"
    return str(num_bytes)


def format_size(num_bytes: int | None) -> str:
    """Bytes -> a size for people to read: '32G', '23.5G', '512M' (at most one decimal)."""
    if num_bytes is None:
        return ""
    for unit in ("P", "T", "G", "M", "K"):
        factor = _SIZE_UNITS[unit]
        if num_bytes >= factor:
            return f"{num_bytes / factor:.1f}".rstrip("0").rstrip(".") + unit
    return f"{num_bytes}B"


def env_size(name: str, default: str) -> int:
    raw = os.environ.get(name) or default
    try:
        value = parse_size(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from exc
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive size, got {raw!r}")
    return value
