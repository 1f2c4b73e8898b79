"""The rclone remotes of this server, from settings.RCLONE_REMOTES_JSON (the RCLONE_REMOTES
environment variable): a JSON list of ``{"name", "type", "options", "secret_file"}``.

Ingestion reads them now and backups will too, so this module knows nothing of either: it
turns the setting into hostops.rclone.RemoteConfig objects (ImproperlyConfigured, naming
RCLONE_REMOTES, at the first use of a bad setting; storage/checks.py reports the same at
startup) and writes rclone.conf for the worker. Credentials stay in each secret file, which
only the worker reads, when it writes the config.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from hostops import rclone
from hostops.errors import HostOpsError

SETTING = "RCLONE_REMOTES"
_KEYS = frozenset({"name", "type", "options", "secret_file"})


class RemotesError(ImproperlyConfigured):
    """RCLONE_REMOTES is not a list of remotes this server can use; the message says what to fix."""


def remotes() -> list[rclone.RemoteConfig]:
    """Every configured remote, validated (names, types and plain options; the secret files
    are only read when the config is written). Parsed on each call: the setting is small and
    tests change it."""
    text = settings.RCLONE_REMOTES_JSON
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise RemotesError(f"{SETTING} is not valid JSON ({exc.msg} at character {exc.pos}).") from None
    if not isinstance(data, list):
        raise RemotesError(f'{SETTING} must be a JSON list of remotes such as [{{"name": "gdrive", "type": "drive"}}].')
    found = [_remote(index, item) for index, item in enumerate(data)]
    names = [remote.name for remote in found]
    doubles = sorted({name for name in names if names.count(name) > 1})
    if doubles:
        raise RemotesError(f"{SETTING} names the remote(s) {', '.join(doubles)} more than once.")
    return found


def _remote(index: int, item: Any) -> rclone.RemoteConfig:
    where = f"{SETTING}[{index}]"
    if not isinstance(item, dict):
        raise RemotesError(f"{where} must be an object with name, type, options and secret_file.")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise RemotesError(f"{where} has unknown key(s) {', '.join(unknown)}; use name, type, options, secret_file.")
    name, kind = item.get("name"), item.get("type")
    if not isinstance(name, str) or not isinstance(kind, str):
        raise RemotesError(f"{where} needs a name and a type, both text.")
    where = f"{SETTING} remote {name!r}"
    options = item.get("options") or {}
    if not isinstance(options, dict) or not all(isinstance(value, str) for value in options.values()):
        raise RemotesError(f"{where}: options must be an object of text values.")
    secret_file = item.get("secret_file")
    if secret_file is not None and (not isinstance(secret_file, str) or not os.path.isabs(secret_file)):
        raise RemotesError(f"{where}: secret_file must be an absolute path (or null).")
    remote = rclone.RemoteConfig(name=name, type=kind, options=options, secret_file=secret_file)
    try:
        # Without its secret file, section() checks the name, the type and the plain options only.
        rclone.RemoteConfig(name=name, type=kind, options=options).section()
    except HostOpsError as exc:
        raise RemotesError(f"{SETTING}: {exc}") from None
    return remote


def remote_names() -> list[str]:
    """The names a location may start with (``name:path``)."""
    return [remote.name for remote in remotes()]


def remote_problems() -> list[str]:
    """What is wrong with RCLONE_REMOTES, for the system check; empty when it is fine."""
    try:
        remotes()
    except RemotesError as exc:
        return [str(exc)]
    return []


def rclone_config(secrets: Mapping[str, Mapping[str, object]] | None = None) -> str:
    """Write rclone.conf with every remote, secrets read from their files, into
    settings.RCLONE_CONFIG_DIR (made private, 0700) and return its path. On the worker only:
    rclone writes refreshed tokens back into it. ``secrets`` adds, per remote name, secrets
    over its file's (the Drive token an admin pasted on the Backups page)."""
    configured = remotes()
    if secrets:
        configured = [
            dataclasses.replace(remote, secrets=secrets[remote.name]) if remote.name in secrets else remote
            for remote in configured
        ]
    directory = Path(settings.RCLONE_CONFIG_DIR)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)  # mkdir's mode does not apply to a folder that was already there
    try:
        return rclone.write_config(configured, directory)
    except HostOpsError as exc:
        raise RemotesError(f"{SETTING}: {exc}") from None
