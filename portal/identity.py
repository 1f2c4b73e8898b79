"""Linux identity rules, shared by models, forms and the host side."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

LINUX_USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

# Names of system accounts and groups on Debian/Ubuntu hosts and in our images, plus names
# that would be confused with the portal's own roles. A member can never be any of these.
RESERVED_USERNAMES = frozenset(
    {
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "nobody",
        "nogroup",
        "systemd-network",
        "systemd-resolve",
        "systemd-timesync",
        "systemd-coredump",
        "messagebus",
        "syslog",
        "_apt",
        "sshd",
        "polkitd",
        "avahi",
        "pulse",
        "rtkit",
        "colord",
        "saned",
        "lightdm",
        "sddm",
        "xrdp",
        "x2gouser",
        "postgres",
        "redis",
        "docker",
        "sudo",
        "adm",
        "wheel",
        "staff",
        "users",
        "admin",
        "administrator",
        "portal",
        "guacamole",
        "guacd",
        "traefik",
        "jupyter",
        "ubuntu",
        "debian",
        "operator",
        "shadow",
        "utmp",
        "video",
        "audio",
        "render",
        "input",
        "kvm",
        "tty",
        "disk",
        "dialout",
        "cdrom",
        "floppy",
        "tape",
        "voice",
        "plugdev",
        "netdev",
        "src",
        "ssl-cert",
    }
)


def validate_linux_username(value: str) -> None:
    """Raise ValidationError unless ``value`` is a safe, non-reserved Linux login name."""
    if not isinstance(value, str) or not LINUX_USERNAME_RE.fullmatch(value):
        raise ValidationError(
            "A username is 1 to 32 characters: lowercase letters, digits, '_' or '-', "
            "starting with a lowercase letter or '_'.",
            code="invalid_username",
        )
    if value in RESERVED_USERNAMES:
        raise ValidationError(f"'{value}' is reserved for the system.", code="reserved_username")


def suggest_username(email: str) -> str:
    """A valid username derived from an e-mail's local part ('Jane.Doe+x@' -> 'jane_doe')."""
    local = email.split("@", 1)[0].split("+", 1)[0].lower()
    cleaned = re.sub(r"[^a-z0-9_-]", "_", local).strip("-")
    if not cleaned or not re.match(r"[a-z_]", cleaned[0]):
        cleaned = f"u_{cleaned}"
    cleaned = cleaned[:32]
    if cleaned in RESERVED_USERNAMES:
        cleaned = f"{cleaned[:30]}_u"
    return cleaned
