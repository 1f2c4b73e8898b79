"""Validators of model fields that need more than a regular expression."""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?P<host>{_LABEL}(?:\.{_LABEL})*|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])"
_TCP_RE = re.compile(rf"{_HOST}:(?P<port>\d{{1,5}})")
_SSH_RE = re.compile(rf"(?:[A-Za-z0-9._-]{{1,64}}@)?{_HOST}(?::(?P<port>\d{{1,5}}))?")
_UNIX_RE = re.compile(r"/[^\s?#]+")

_EXAMPLES = "unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host"
_FORMS = {
    "unix": "A unix:// endpoint is the absolute path of the engine's socket, like unix:///var/run/docker.sock.",
    "tcp": "A tcp:// endpoint is host:port, like tcp://gpu2.corp.example:2376.",
    "ssh": "An ssh:// endpoint is [user@]host[:port], like ssh://portal@gpu2.corp.example.",
}


def validate_docker_url(value: str) -> None:
    """A Docker engine address the portal can connect to (hostops.docker): unix:///path,
    tcp://host:port or ssh://[user@]host[:port]."""
    scheme, separator, rest = value.partition("://")
    if not separator or scheme not in _FORMS:
        raise ValidationError(f"“{value}” is not a Docker endpoint. Use {_EXAMPLES}.", code="invalid")
    pattern = {"unix": _UNIX_RE, "tcp": _TCP_RE, "ssh": _SSH_RE}[scheme]
    match = pattern.fullmatch(rest)
    if match is None or not _parts_in_range(match):
        raise ValidationError(f"“{value}” is not a valid endpoint. {_FORMS[scheme]}", code="invalid")


def _parts_in_range(match: re.Match[str]) -> bool:
    groups = match.groupdict()
    if groups.get("port") is not None and not 1 <= int(groups["port"]) <= 65535:
        return False
    if groups.get("ipv6"):
        try:
            ipaddress.IPv6Address(groups["ipv6"])
        except ValueError:
            return False
    return True


def validate_ssh_address(value: str) -> None:
    """Where members SSH to: a DNS name or an IP address, nothing else (it is written into
    members' SSH configs and X2Go session files)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if len(value) > 253 or not re.fullmatch(rf"{_LABEL}(?:\.{_LABEL})*", value):
            raise ValidationError(
                f"“{value}” is not a host name or an IP address, like gpu2.corp.example or 192.0.2.12.",
                code="invalid",
            ) from None
