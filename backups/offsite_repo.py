"""The offsite tier's repository as settings describe it, and the Google Drive token an admin
pastes once.

``BACKUP_RESTIC_REPOSITORY`` names the repository: an absolute path (a disk, or a test) or
``rclone:<remote>:<path>``, where the remote is one of RCLONE_REMOTES. restic starts rclone for
it with the rclone.conf the worker writes (storage.remotes.rclone_config), so a Drive remote's
credentials come from its secret_file or from the token pasted on the Backups page, which is
kept here encrypted (Fernet, its key derived from SECRET_KEY): the web process writes it, the
worker reads it when it writes rclone.conf, and no page, log or audit row ever shows it again.
A new SECRET_KEY makes the stored token unreadable; the page then asks for it again.

The password is ``BACKUP_RESTIC_PASSWORD_FILE`` (or ``RESTIC_PASSWORD_FILE``): restic reads the
file itself, so the password is never in argv, in the environment or in this process.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction

from backups.models import BackupPolicy, BackupSecret
from hostops import restic
from hostops.errors import (
    HostOpsError,
    PartialForget,
    RepositoryExists,
    RepositoryLocked,
    RepositoryMissing,
    ResticInterrupted,
    WrongPassword,
)
from portal.audit import AuditContext, audit_record
from portal.locks import advisory_lock
from portal.models import User
from storage import remotes

TOKEN_KEYS = ("access_token", "refresh_token")
# One job on the repository at a time (the night's backup and forget, the drill's restore and
# check, creating it, breaking a lock): a PostgreSQL session advisory lock, gone with its session.
# Its own namespace: restores lock (0x5253 "RS", operation id), which once included (0x5253, 1).
_REPO_LOCK = (0x5250, 1)  # "RP"
_TOKEN_LIMIT = 16 * 1024
_HKDF_INFO = b"portal backups: pasted rclone tokens"


class OffsiteNotConfigured(Exception):
    """The offsite tier cannot run: the message says what to set."""


class TokenError(ValueError):
    """A pasted token that is not one; the message says why (never what was pasted)."""


# --- where the repository is -----------------------------------------------------------------


def location() -> str:
    """BACKUP_RESTIC_REPOSITORY, checked; OffsiteNotConfigured when unset or unusable."""
    value = settings.BACKUP_RESTIC_REPOSITORY.strip()
    if not value:
        raise OffsiteNotConfigured(
            "No offsite repository is set up: set BACKUP_RESTIC_REPOSITORY (rclone:<remote>:<path> for "
            "Google Drive, or an absolute path) and BACKUP_RESTIC_PASSWORD_FILE, then create the repository here."
        )
    try:
        restic.validate_location(value)
    except HostOpsError as exc:
        raise OffsiteNotConfigured(f"BACKUP_RESTIC_REPOSITORY: {exc}") from None
    remote = remote_name(value)
    if remote is not None:
        try:
            names = remotes.remote_names()
        except remotes.RemotesError as exc:
            raise OffsiteNotConfigured(str(exc)) from None
        if remote not in names:
            raise OffsiteNotConfigured(
                f"BACKUP_RESTIC_REPOSITORY names the rclone remote {remote!r}, which RCLONE_REMOTES does not define"
                f"{' (it defines ' + ', '.join(names) + ')' if names else ''}."
            )
    return value


def remote_name(value: str) -> str | None:
    """The rclone remote of an ``rclone:<remote>:<path>`` location; None for a local path."""
    if not value.startswith("rclone:"):
        return None
    return value.removeprefix("rclone:").split(":", 1)[0]


def remote_type(name: str) -> str | None:
    for remote in remotes.remotes():
        if remote.name == name:
            return remote.type
    return None


def problem() -> str | None:
    """What keeps the tier from running, as the page says it; None when it is set up (the
    password file is only checked by the worker, which alone can read it)."""
    try:
        location()
    except OffsiteNotConfigured as exc:
        return str(exc)
    return None


def describe() -> str:
    """The repository as pages show it: the location (it names no secret)."""
    return settings.BACKUP_RESTIC_REPOSITORY.strip()


def explain(exc: HostOpsError) -> str:
    """A failure of restic in the words the Backups pages show, in this one place for the whole
    tier: exit 10 no repository, 11 locked, 12 wrong password, 130 interrupted, 3 (forget) some
    snapshots not removed (a backup's exit 3 is a result: see partial_words); anything else is
    restic's own message, which hostops has scrubbed of the password."""
    where = describe()
    if isinstance(exc, RepositoryMissing):
        return (
            f"There is no repository at {where} (restic exit 10). None is ever made by itself: "
            "create it with 'Create repository' on the Offsite repository page."
        )
    if isinstance(exc, WrongPassword):
        return (
            "The password file does not open this repository (restic exit 12): "
            f"{settings.BACKUP_RESTIC_PASSWORD_FILE} holds another password than the one {where} was created with. "
            "Put that password in it; nothing was changed."
        )
    if isinstance(exc, RepositoryLocked):
        held = f" by {exc.holder}" if exc.holder else ""
        held += f" for {age_words(exc.age_s)}" if exc.age_s is not None else ""
        return (
            f"The repository is locked{held} (restic exit 11): another job is using it. A running job lets go "
            "when it ends; a lock left by a killed job is removed with 'Break stale lock' on the Offsite "
            "repository page."
        )
    if isinstance(exc, ResticInterrupted):
        return (
            f"restic was interrupted before it finished (exit {exc.exit_code}); running it again carries on from "
            "what the repository already holds."
        )
    if isinstance(exc, PartialForget):
        return (
            "restic forget could not remove some of the snapshots it was to remove (exit 3); they stay until the "
            "next run removes them."
        )
    if isinstance(exc, RepositoryExists):
        return f"There is already a repository at {where}; nothing was changed."
    return str(exc)


def partial_words(errors: tuple[str, ...] | list[str]) -> str:
    """A backup's exit 3 in words: the snapshot was written, without the files it names."""
    first = f": {errors[0]}" if errors else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (
        "restic read only part of the source (exit 3); the snapshot was written without what it could not "
        f"read{first}{more}."
    )


def age_words(seconds: float) -> str:
    """An age as the pages say it: "40 s", "12 min", "3.5 h", "2.0 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def repository(*, for_backup: bool = False) -> restic.Repository:
    """The repository, for the worker: writes rclone.conf first when it is on an rclone remote.
    ``for_backup`` adds the policy's upload limit (in KiB/s, restic's unit; see
    restic.limit_from_mbps): reads, restores and checks are not limited."""
    where = location()
    password_file = settings.BACKUP_RESTIC_PASSWORD_FILE
    if not os.path.isabs(password_file):
        raise OffsiteNotConfigured(f"BACKUP_RESTIC_PASSWORD_FILE must be an absolute path, not {password_file!r}.")
    if not os.path.isfile(password_file):
        raise OffsiteNotConfigured(
            f"The repository's password file {password_file} is missing on the worker. Create it (one line, "
            "mode 0600, kept safe: without it the backups cannot be read) or set BACKUP_RESTIC_PASSWORD_FILE."
        )
    config = None
    remote = remote_name(where)
    if remote is not None:
        token = stored_token(remote)
        try:
            config = remotes.rclone_config({remote: {"token": token}} if token is not None else None)
        except remotes.RemotesError as exc:
            raise OffsiteNotConfigured(str(exc)) from None
    limit = None
    if for_backup:
        limit = restic.limit_from_mbps(BackupPolicy.of(BackupPolicy.Tier.RESTIC).upload_limit_mbps)
    cache = settings.BACKUP_RESTIC_CACHE_DIR or None
    if cache is not None:
        os.makedirs(cache, mode=0o700, exist_ok=True)
    return restic.Repository(
        location=where, password_file=password_file, rclone_config=config, limit_upload_kib=limit, cache_dir=cache
    )


def repo_lock() -> AbstractContextManager[bool]:
    """Try to become the one job using the repository; yields whether it succeeded."""
    return advisory_lock(*_REPO_LOCK)


def mount_path(source: str) -> str:
    """The fixed path the hour's snapshot of ``source`` ("homes/alice") is mounted at while restic
    reads it, which is the path restic stores: ls, restore and the drill name files under it."""
    if not source or source.startswith("/") or ".." in source.split("/"):
        raise ValueError(f"{source!r} is not a source name")
    return posixpath.join(settings.BACKUP_RESTIC_MOUNT_ROOT, source)


# --- the pasted token ------------------------------------------------------------------------


def _fernet() -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        settings.SECRET_KEY.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


def _secret_name(remote: str) -> str:
    return f"rclone-token:{remote}"


def parse_token(text: str) -> dict[str, Any]:
    """The JSON that ``rclone authorize "drive"`` prints, checked: an object with an access and
    a refresh token. The error never quotes the text."""
    text = (text or "").strip()
    if not text:
        raise TokenError('Paste the token: the JSON that `rclone authorize "drive"` printed.')
    if len(text) > _TOKEN_LIMIT:
        raise TokenError(f"That is longer than any token ({len(text)} characters); paste only the JSON object.")
    try:
        data = json.loads(text)
    except ValueError:
        raise TokenError(
            "That is not JSON. Paste the whole object rclone printed, from { to }, "
            'such as {"access_token":"…","token_type":"Bearer","refresh_token":"…","expiry":"…"}.'
        ) from None
    if not isinstance(data, dict):
        raise TokenError("The token must be a JSON object, from { to }.")
    missing = [key for key in TOKEN_KEYS if not isinstance(data.get(key), str) or not data.get(key)]
    if missing:
        raise TokenError(f"The token has no {' and no '.join(missing)}; paste the whole object rclone printed.")
    if not all(isinstance(value, str | int | float) for value in data.values()):
        raise TokenError("The token's values must be plain text or numbers.")
    return data


@dataclass(frozen=True)
class TokenInfo:
    remote: str
    set_at: datetime
    set_by: User | None
    readable: bool  # False after SECRET_KEY changed: the page asks for the token again


def token_info(remote: str) -> TokenInfo | None:
    row = BackupSecret.objects.select_related("set_by").filter(name=_secret_name(remote)).first()
    if row is None:
        return None
    return TokenInfo(remote=remote, set_at=row.set_at, set_by=row.set_by, readable=_decrypt(row) is not None)


def _decrypt(row: BackupSecret) -> dict[str, Any] | None:
    try:
        data = json.loads(_fernet().decrypt(row.ciphertext.encode("ascii")))
    except (InvalidToken, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stored_token(remote: str) -> dict[str, Any] | None:
    """The pasted token of ``remote``, decrypted (worker only: it goes into rclone.conf)."""
    row = BackupSecret.objects.filter(name=_secret_name(remote)).first()
    if row is None:
        return None
    token = _decrypt(row)
    if token is None:
        raise OffsiteNotConfigured(
            f"The stored token of remote {remote} cannot be read any more (SECRET_KEY changed). "
            "Paste it again on the Backups page."
        )
    return token


def token_save(*, remote: str, text: str, actor: User, context: AuditContext) -> TokenInfo:
    """Keep the token an admin pasted for ``remote`` (a Drive remote of the repository),
    replacing any earlier one. Audited without a word of the token."""
    if remote_type(remote) != "drive":
        raise TokenError(f"{remote} is not a Google Drive remote of RCLONE_REMOTES; a token is only kept for one.")
    token = parse_token(text)
    ciphertext = _fernet().encrypt(json.dumps(token, separators=(",", ":")).encode("utf-8")).decode("ascii")
    with transaction.atomic():
        row, created = BackupSecret.objects.update_or_create(
            name=_secret_name(remote), defaults={"ciphertext": ciphertext, "set_by": actor}
        )
        audit_record(
            action="backups.drive_token_set",
            actor=actor,
            target=row,
            context=context,
            remote=remote,
            replaced=not created,
        )
    return TokenInfo(remote=remote, set_at=row.set_at, set_by=actor, readable=True)


def token_clear(*, remote: str, actor: User, context: AuditContext) -> bool:
    with transaction.atomic():
        row = BackupSecret.objects.filter(name=_secret_name(remote)).first()
        if row is None:
            return False
        audit_record(action="backups.drive_token_cleared", actor=actor, target=row, context=context, remote=remote)
        row.delete()
    return True
