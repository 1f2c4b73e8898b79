"""restic 0.18: the portal's one door to its backup repositories.

Which restic: the program named by ``RESTIC_BINARY`` in the environment (default ``restic`` on the
PATH). Written for and tested with restic 0.18 (Debian 13's package; scripts/test-setup.sh
unpacks it beside Debian 12's). Older releases print less of the JSON read here, and Debian 12's
0.14 lacks forget's "oldest snapshot" rule, so its forget keeps a different set of snapshots.

Secrets: the repository password reaches restic only as ``RESTIC_PASSWORD_FILE`` in the child's
environment (never argv, never a log line), and every message built here has the password
scrubbed out in case restic ever quoted it. The rclone config (Drive's token) is named by
``RCLONE_CONFIG`` in the environment, which restic passes on to the rclone it starts.

Every call runs ``restic --json``: output is JSON lines, and a fatal error is one
``{"message_type":"exit_error"}`` line on stderr whose message is put in the raised error.
Exit statuses (https://restic.readthedocs.io/en/stable/075_scripting.html):

- 0 ok;
- 1 failure -> ResticFailed (``init`` on an existing repository -> RepositoryExists);
- 3 "backup read only part of the source": the snapshot **was** written, so backup() returns its
  BackupSummary with ``partial`` True and the per-file errors (the caller records the snapshot
  and warns); for ``forget`` ("could not remove some snapshots") PartialForget is raised, also
  when restic 0.18.0 reports an undeletable snapshot only in words and exits 0;
- 10 RepositoryMissing, 11 RepositoryLocked (transient: retry, or unlock a stale lock),
  12 WrongPassword, 130 or a signal ResticInterrupted (transient; 0.18.0 ends a SIGINT with
  exit 1 and "context canceled", which is read as an interruption too);
- anything else ResticFailed.

Pure ``parse_*`` functions turn restic's JSON into dataclasses; they are tested on recorded
output of restic 0.18 runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time as _time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo

from hostops.errors import (
    CommandTimeout,
    DumpTooLarge,
    HostOpsError,
    PartialForget,
    RepositoryExists,
    RepositoryLocked,
    RepositoryMissing,
    ResticFailed,
    ResticInterrupted,
    WrongPassword,
)
from hostops.rclone import validate_remote_name
from hostops.run import run_streaming

BINARY_ENV = "RESTIC_BINARY"
_T = TypeVar("_T")

# Timeouts in seconds. The long jobs take theirs as a parameter (a first backup to Drive at
# 100 Mbit/s moves about 1 TB a day).
SHORT_TIMEOUT = 300.0
LIST_TIMEOUT = 900.0
FORGET_TIMEOUT = 3600.0
LONG_TIMEOUT = 24 * 3600.0

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SNAPSHOT_ID = re.compile(r"[0-9a-f]{8,64}|latest")
_LOCK_ID = re.compile(r"[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}")  # no comma: --tag splits on it
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_PROGRAM = re.compile(r"/[A-Za-z0-9._/+-]{1,255}|[a-z][a-z0-9._+-]{0,63}")
_SUBSET = re.compile(r"(?P<n>[1-9]\d{0,5})/(?P<t>[1-9]\d{0,5})|\d{1,2}(?:\.\d{1,3})?%|100%|[1-9]\d{0,12}[KMGT]?")
_WITHIN = re.compile(r"(?=\d)(?:\d{1,4}y)?(?:\d{1,4}m)?(?:\d{1,5}d)?(?:\d{1,6}h)?")
_GROUP_BY = frozenset({"host", "paths", "tags"})
_KEEP_COUNTS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
_KEEP_WITHIN = tuple(f"keep_within{suffix}" for suffix in ("", "_hourly", "_daily", "_weekly", "_monthly", "_yearly"))
_OVERWRITE = ("always", "if-changed", "if-newer", "never")
_MESSAGE_LIMIT = 800
# A restic past its timeout gets SIGINT and this long to stop and remove its lock, then SIGKILL.
_STOP_GRACE = 15.0
_DUMP_CHUNK = 1 << 16


def binary() -> str:
    """The restic program to run: ``$RESTIC_BINARY``, else ``restic`` from the PATH."""
    return os.environ.get(BINARY_ENV) or "restic"


def limit_from_mbps(mbps: float) -> int:
    """A link budget in megabits per second as restic's ``--limit-upload``, which is in **KiB/s**
    (1024 bytes), rounded down so it never exceeds the budget: 100 -> 12207 (12,499,968 bytes/s).
    Limit in one place only: restic's limit, not rclone's ``--bwlimit`` as well."""
    if not isinstance(mbps, int | float) or not math.isfinite(mbps) or mbps <= 0:
        raise HostOpsError(f"A bandwidth of {mbps!r} Mbit/s is not a positive number.")
    kib = math.floor(mbps * 1_000_000 / 8 / 1024)
    if kib < 1:
        raise HostOpsError(f"{mbps!r} Mbit/s is below restic's smallest limit (1 KiB/s, about 0.008 Mbit/s).")
    return kib


# --- the repository --------------------------------------------------------------------------


@dataclass(frozen=True)
class Repository:
    """Where a repository is and how to open it.

    ``location`` is an absolute local path or ``rclone:<remote>:<path>`` (a remote of the rclone
    config at ``rclone_config``, written by hostops.rclone.write_config). ``password_file`` holds
    the password (restic reads it; it is never read into argv). ``rclone_program`` and
    ``rclone_args`` become restic's ``-o rclone.program=`` / ``-o rclone.args=`` (default
    ``serve restic --stdio --b2-hard-delete``). ``limit_upload_kib`` is ``--limit-upload`` in
    KiB/s (see limit_from_mbps); ``cache_dir`` restic's cache (default ``~/.cache/restic``).
    ``retry_lock_s`` makes restic wait up to that long for a conflicting lock to go before it
    gives up with RepositoryLocked (restic's ``--retry-lock``; default: give up at once).
    """

    location: str
    password_file: str
    rclone_config: str | None = None
    rclone_program: str | None = None
    rclone_args: str | None = None
    limit_upload_kib: int | None = None
    cache_dir: str | None = None
    retry_lock_s: int | None = None

    def __post_init__(self) -> None:
        validate_location(self.location)
        _absolute(self.password_file, "The password file")
        if self.rclone_config is not None:
            _absolute(self.rclone_config, "The rclone config")
        if self.cache_dir is not None:
            _absolute(self.cache_dir, "The cache folder")
        if self.rclone_program is not None and not _PROGRAM.fullmatch(self.rclone_program):
            raise HostOpsError(f"{self.rclone_program!r} is not a program name or absolute path for rclone.")
        if self.rclone_args is not None and (_CONTROL.search(self.rclone_args) or not self.rclone_args.strip()):
            raise HostOpsError("rclone_args must be one non-empty line, such as 'serve restic --stdio'.")
        if self.limit_upload_kib is not None and (
            isinstance(self.limit_upload_kib, bool)
            or not isinstance(self.limit_upload_kib, int)
            or not 1 <= self.limit_upload_kib <= 10**9
        ):
            raise HostOpsError(f"limit_upload_kib {self.limit_upload_kib!r} is not a whole number of KiB/s >= 1.")
        if self.retry_lock_s is not None and (
            isinstance(self.retry_lock_s, bool)
            or not isinstance(self.retry_lock_s, int)
            or not 1 <= self.retry_lock_s <= 86400
        ):
            raise HostOpsError(f"retry_lock_s {self.retry_lock_s!r} is not a whole number of seconds, 1 to 86400.")

    def options(self) -> list[str]:
        """The global options naming this repository (nothing secret)."""
        argv = [f"--repo={self.location}"]
        if self.rclone_program is not None:
            argv += ["-o", f"rclone.program={self.rclone_program}"]
        if self.rclone_args is not None:
            argv += ["-o", f"rclone.args={self.rclone_args}"]
        if self.limit_upload_kib is not None:
            argv.append(f"--limit-upload={self.limit_upload_kib}")
        if self.cache_dir is not None:
            argv.append(f"--cache-dir={self.cache_dir}")
        if self.retry_lock_s is not None:
            argv.append(f"--retry-lock={self.retry_lock_s}s")
        return argv

    def env(self) -> dict[str, str]:
        """What the child's environment adds: the password file, the rclone config, and blanks
        over any restic settings the worker's own environment may carry (restic ignores an empty
        variable), so that only this repository and this password are ever used."""
        env = {
            "RESTIC_PASSWORD_FILE": self.password_file,
            "RESTIC_PASSWORD": "",
            "RESTIC_PASSWORD_COMMAND": "",
            "RESTIC_REPOSITORY": "",
            "RESTIC_REPOSITORY_FILE": "",
            "RESTIC_KEY_HINT": "",
        }
        if self.rclone_config is not None:
            env["RCLONE_CONFIG"] = self.rclone_config
        return env


def validate_location(location: str) -> str:
    """``location`` if it is an absolute local path or ``rclone:<remote>:<path>``."""
    if not isinstance(location, str) or not location:
        raise HostOpsError("A repository location must be an absolute path or rclone:<remote>:<path>, not empty.")
    if _CONTROL.search(location):
        raise HostOpsError("A repository location must not contain NUL, newlines or other control characters.")
    if location.startswith("/"):
        path = location
    elif location.startswith("rclone:"):
        name, colon, path = location.removeprefix("rclone:").partition(":")
        if not colon:
            raise HostOpsError(f"{location!r} lacks the remote's path: write rclone:<remote>:<path>.")
        validate_remote_name(name)
    else:
        raise HostOpsError(
            f"{location!r} is not a repository location this portal uses: give an absolute local path "
            "or rclone:<remote>:<path>."
        )
    if ".." in path.split("/"):
        raise HostOpsError(f"{location!r} climbs out of its folder with '..'; give the path without it.")
    return location


def _absolute(path: str, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or _CONTROL.search(path) or ".." in path.split("/"):
        raise HostOpsError(f"{what} must be an absolute path without '..' or control characters, not {path!r}.")
    return path


def _snapshot_id(snapshot_id: str) -> str:
    if not isinstance(snapshot_id, str) or not _SNAPSHOT_ID.fullmatch(snapshot_id):
        raise HostOpsError(f"{snapshot_id!r} is not a snapshot id (8 to 64 hex digits, or latest).")
    return snapshot_id


def _snapshot_path(path: str, what: str = "A path in a snapshot") -> str:
    """A path inside a snapshot: absolute, any bytes but NUL (names may hold newlines)."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise HostOpsError(f"{what} must start with / and hold no NUL, not {path!r}.")
    return path


def _tags(tags: Iterable[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        raise HostOpsError("tags is a list of tags, not one string.")
    values = list(tags)
    for tag in values:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise HostOpsError(f"{tag!r} is not a tag: letters, digits and ._:@+=/- only, no comma, at most 128.")
    return values


def _host(host: str) -> str:
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        raise HostOpsError(f"{host!r} is not a host name for restic (letters, digits, . _ -).")
    return host


def _group_by(group_by: str) -> str:
    parts = [part for part in group_by.split(",") if part] if isinstance(group_by, str) else None
    if parts is None or not set(parts) <= _GROUP_BY or len(set(parts)) != len(parts):
        raise HostOpsError(f"{group_by!r} is not a grouping: use host, paths and tags, comma-separated, or ''.")
    return ",".join(parts)


# --- running restic --------------------------------------------------------------------------


def command_argv(repo: Repository | None, *args: str) -> list[str]:
    """``restic --json [repository options] <args>``: what every call here runs. Nothing secret
    is in it (tests assert so)."""
    return [binary(), "--json", *(repo.options() if repo is not None else []), *args]


@dataclass
class _Outcome:
    """What a finished restic said besides its JSON on stdout."""

    argv: list[str]
    returncode: int
    exit_error: str = ""
    errors: list[str] = field(default_factory=list)
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    stdout_lines: list[str] = field(default_factory=list)
    unremoved: list[str] = field(default_factory=list)  # snapshot ids forget reported it could not remove


# restic 0.18.0's forget reports a snapshot it could not delete only in words, and exits 0.
_UNREMOVED = re.compile(r"unable to remove snapshot/([0-9a-f]{64}) from the repository")
# restic's retrying backend says "Save(<data/…>) failed: …" when it gives up on a file of the
# repository (a pack, an index, a snapshot; a lock's refresh is left to restic): the command
# cannot succeed. restic 0.18.0 does not always end then: a backup to a full disk was seen
# printing status lines for minutes after it, so the portal stops it there (SIGINT first, so
# it removes its lock).
_SAVE_GAVE_UP = re.compile(r"^Save\(<(?:data|index|snapshot)/[0-9a-f]+>\) failed: ")


class _GaveUp(Exception):
    """Raised from the line handler to stop a restic that gave up on saving a file."""


def _restic(
    repo: Repository | None,
    args: Sequence[str],
    *,
    timeout: float,
    on_json: Callable[[dict[str, Any]], None] | None = None,
    keep_stdout: bool = False,
    env: Mapping[str, str] | None = None,
) -> _Outcome:
    """Run restic, hand each JSON object of stdout to ``on_json`` (in this thread) and collect
    stderr's errors; the exit status is left to the caller."""
    argv = command_argv(repo, *args)
    outcome = _Outcome(argv=argv, returncode=0)
    if repo is not None and not os.path.isfile(repo.password_file):
        raise ResticFailed(
            f"The password file {repo.password_file} of the repository at {repo.location} is missing.",
            exit_code=1,
            argv=argv,
        )

    def on_line(stream: str, line: str) -> None:
        if stream == "stdout":
            if keep_stdout:
                outcome.stdout_lines.append(line)
            if on_json is not None:
                data = _json_object(line)
                if data is not None:
                    on_json(data)
            return
        data = _json_object(line)
        if data is None:
            if line.strip():
                outcome.stderr_tail.append(line.strip())
            unremoved = _UNREMOVED.search(line)
            if unremoved:
                outcome.unremoved.append(unremoved[1])
            if _SAVE_GAVE_UP.match(line):
                raise _GaveUp(line.strip())
        elif data.get("message_type") == "exit_error":
            outcome.exit_error = str(data.get("message", "")).strip()
        elif data.get("message_type") == "error":
            outcome.errors.append(error_text(data))
        else:
            outcome.stderr_tail.append(line.strip())

    child_env = {**(repo.env() if repo is not None else {}), **(env or {})}
    try:
        outcome.returncode = run_streaming(
            # A restic that is not there is run bare, so the error says "command not found"
            # rather than setpriv's words.
            [*(_die_with_parent() if shutil.which(argv[0]) else ()), *argv],
            on_line,
            timeout=timeout,
            env=child_env,
            interrupt_grace=_STOP_GRACE,
            spool=True,  # a worker killed mid-run must not take restic down by a broken pipe, lock left
        )
    except _GaveUp as gave_up:  # run_streaming has stopped it
        raise ResticFailed(
            f"restic {args[0]} on {_where(repo)} could not write to the repository and was stopped: "
            f"{_scrub(str(gave_up), repo)}",
            exit_code=1,  # what restic exits with when it ends on such an error itself
            argv=argv,
        ) from None
    return outcome


@functools.cache
def _die_with_parent() -> tuple[str, ...]:
    """``setpriv --pdeathsig INT --``: restic gets SIGINT when the thread that started it dies
    (a worker killed mid-backup), so it stops the way Ctrl-C stops it, removing its lock from
    the repository, instead of running on unwatched. Its output is spooled to files
    (run_streaming's ``spool``): with pipes, its words as it stops would meet a broken pipe and
    the Go runtime would end it by SIGPIPE, its lock left behind (seen in CI). Empty where
    util-linux's setpriv is missing (restic then runs as it is)."""
    setpriv = shutil.which("setpriv")
    return (setpriv, "--pdeathsig", "INT", "--") if setpriv else ()


def _json_object(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def error_text(data: Mapping[str, Any]) -> str:
    """A ``{"message_type":"error"}`` line in words: ``<item>: <message>``."""
    error = data.get("error")
    message = str(error.get("message", "")) if isinstance(error, dict) else str(error or "")
    item = str(data.get("item") or "")
    return f"{item}: {message}" if item and item not in message else message


def _scrub(text: str, repo: Repository | None) -> str:
    """``text`` without the repository's password, should restic ever quote it, and cut to a
    readable length."""
    if repo is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            secret = Path(repo.password_file).read_text(encoding="utf-8").strip("\r\n")
            if len(secret) >= 3:
                text = text.replace(secret, "[password]")
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _restic_words(outcome: _Outcome) -> str:
    """What restic said about its failure: the exit_error message, else the last error lines."""
    if outcome.exit_error:
        text = outcome.exit_error
    elif outcome.errors:
        text = "; ".join(outcome.errors[-3:])
    else:
        text = " / ".join(list(outcome.stderr_tail)[-3:])
    return text.removeprefix("Fatal: ").strip() or "no message"


_LOCK_HOLDER = re.compile(r"locked (?:exclusively )?by (PID \d+ on \S+ by \S+)")
_LOCK_AGE = re.compile(r"lock was created at [^(]*\(([0-9.hms]+) ago\)")


def _where(repo: Repository | None) -> str:
    return repo.location if repo is not None else "(no repository)"


def failure(command: str, outcome: _Outcome, repo: Repository | None) -> ResticFailed:
    """The domain error for a restic that exited non-zero (not 3, which callers handle)."""
    code, argv, words = outcome.returncode, outcome.argv, _scrub(_restic_words(outcome), repo)
    where = _where(repo)
    if code == 10:
        return RepositoryMissing(
            f"No repository at {where}: an admin creates it with 'Create repository'.", exit_code=code, argv=argv
        )
    if code == 11:
        holder_match, age_match = _LOCK_HOLDER.search(words), _LOCK_AGE.search(words)
        holder = holder_match[1] if holder_match else ""
        age = parse_go_duration(age_match[1]) if age_match else None
        detail = f" by {holder}" if holder else ""
        detail += f" (lock taken {_human_age(age)} ago)" if age is not None else ""
        return RepositoryLocked(
            f"The repository at {where} is locked{detail}: restic {command} did not run. A running job lets go "
            "when it ends; a lock left by a killed job is removed with 'Unlock'.",
            exit_code=code,
            argv=argv,
            holder=holder,
            age_s=age,
        )
    if code == 12:
        return WrongPassword(
            f"The password in {repo.password_file if repo else 'the password file'} does not open the "
            f"repository at {where}.",
            exit_code=code,
            argv=argv,
        )
    if code == 130 or code < 0 or (code == 1 and _was_interrupted(outcome)):
        how = f"killed by signal {-code}" if code < 0 else "interrupted"
        return ResticInterrupted(
            f"restic {command} on {where} was {how} before it finished.", exit_code=code, argv=argv
        )
    if command == "init" and "already exists" in words:
        return RepositoryExists(
            f"There is already a repository at {where}; nothing was changed.", exit_code=code, argv=argv
        )
    label = f"exit {code}" if code in (1, 2) else f"exit {code}, a status restic does not document"
    return ResticFailed(f"restic {command} on {where} failed ({label}): {words}", exit_code=code, argv=argv)


def _was_interrupted(outcome: _Outcome) -> bool:
    """restic 0.18.0 ends a SIGINT with exit 1 ("signal interrupt received, cleaning up", then
    "…: context canceled"), not the documented 130."""
    return any("signal interrupt received" in line for line in outcome.stderr_tail) or outcome.exit_error.endswith(
        "context canceled"
    )


def parse_go_duration(text: str) -> float | None:
    """Go's time.Duration text ("2.05s", "1h2m3.5s", "350ms") in seconds; None if not one."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * units[unit] for number, unit in parts)


def _human_age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _readable(command: str, outcome: _Outcome, parse: Callable[[str], _T]) -> _T:
    """``parse`` applied to the command's stdout; output it cannot read (a restic that changed
    its JSON) is a ResticFailed that says so, not a stray ValueError."""
    try:
        return parse("\n".join(outcome.stdout_lines))
    except (ValueError, KeyError, TypeError, AttributeError, HostOpsError) as exc:
        raise ResticFailed(
            f"restic {command} printed output this portal cannot read ({type(exc).__name__}); is it restic 0.18?",
            exit_code=outcome.returncode,
            argv=outcome.argv,
        ) from exc


def _check(command: str, outcome: _Outcome, repo: Repository | None) -> None:
    if outcome.returncode != 0:
        raise failure(command, outcome, repo)


# --- snapshots -------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """restic's RFC 3339 time (nanoseconds, ``Z`` or an offset) as an aware datetime (microseconds)."""
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        raise HostOpsError(f"restic gave a time this module cannot read: {text!r}")
    fraction = (match[2] or "")[:6].ljust(6, "0")
    zone = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(f"{match[1]}.{fraction}{zone}")


@dataclass(frozen=True)
class Snapshot:
    """One snapshot as ``snapshots --json`` lists it; ``time`` keeps the offset restic stored
    (the wall clock forget's buckets use). ``summary`` is restic's backup summary (0.17+), empty
    for older snapshots."""

    id: str
    short_id: str
    time: datetime
    paths: tuple[str, ...]
    hostname: str
    username: str
    tags: tuple[str, ...]
    parent: str | None
    tree: str
    program_version: str = ""
    summary: Mapping[str, Any] = field(default_factory=dict)


def snapshot_from_json(data: Mapping[str, Any]) -> Snapshot:
    """One snapshot object of restic's JSON as a Snapshot."""
    return Snapshot(
        id=str(data["id"]),
        short_id=str(data.get("short_id") or str(data["id"])[:8]),
        time=parse_time(str(data["time"])),
        paths=tuple(data.get("paths") or ()),
        hostname=str(data.get("hostname", "")),
        username=str(data.get("username", "")),
        tags=tuple(data.get("tags") or ()),
        parent=data.get("parent"),
        tree=str(data.get("tree", "")),
        program_version=str(data.get("program_version", "")),
        summary=dict(data.get("summary") or {}),
    )


def parse_snapshots(text: str) -> list[Snapshot]:
    """``snapshots --json`` (one JSON array) as Snapshots, oldest first as restic lists them."""
    data = json.loads(text) if text.strip() else []
    if not isinstance(data, list):
        raise HostOpsError("restic snapshots --json did not give a list.")
    return [snapshot_from_json(item) for item in data]


_VERSION_LINE = re.compile(r"restic (\d+\.\d+\.\d+)")


def version(*, timeout: float = SHORT_TIMEOUT) -> str:
    """restic's version, such as "0.18.0". Releases before 0.17 print it as a line of text
    ("restic 0.14.0 compiled with go1.19.8 on linux/amd64") whatever --json says, so that is
    read too: the version check must be able to name an old restic."""
    found: list[str] = []
    outcome = _restic(
        None, ["version"], timeout=timeout, keep_stdout=True, on_json=lambda d: found.append(str(d.get("version", "")))
    )
    _check("version", outcome, None)
    if not found or not found[0]:
        text = _VERSION_LINE.search("\n".join(outcome.stdout_lines))
        found = [text[1]] if text else []
    if not found or not found[0]:
        raise ResticFailed("restic version gave no version.", exit_code=0, argv=outcome.argv)
    return found[0]


def version_tuple(text: str) -> tuple[int, ...]:
    """ "0.18.0" -> (0, 18, 0), for comparing releases; () for text that is no version."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(?:[-+~].*)?", text.strip())
    return tuple(int(part) for part in match.groups(default="0")) if match else ()


def repository_id(repo: Repository, *, timeout: float = SHORT_TIMEOUT) -> str:
    """The repository's id from ``cat config``, read without a lock: the cheapest proof that
    the repository is there and the password opens it (one key derivation, one small file).
    RepositoryMissing or WrongPassword otherwise."""
    outcome = _restic(repo, ["cat", "config", "--no-lock"], timeout=timeout, keep_stdout=True)
    _check("cat config", outcome, repo)
    return _readable("cat config", outcome, lambda text: str(json.loads(text)["id"]))


def init(repo: Repository, *, timeout: float = SHORT_TIMEOUT) -> str:
    """Create the repository (only ever on an admin's explicit request) and return its id.
    RepositoryExists if there is one already."""
    found: list[str] = []
    outcome = _restic(repo, ["init"], timeout=timeout, on_json=lambda d: found.append(str(d.get("id", ""))))
    _check("init", outcome, repo)
    return found[0] if found else ""


def snapshots(
    repo: Repository,
    *,
    tags: Sequence[str] | None = None,
    paths: Sequence[str] | None = None,
    host: str | None = None,
    timeout: float = LIST_TIMEOUT,
) -> list[Snapshot]:
    """The snapshots, oldest first; with ``tags`` only those carrying all of them, with
    ``paths`` only those of exactly these paths."""
    args = ["snapshots"]
    if tags:
        args.append(f"--tag={','.join(_tags(tags))}")
    for path in paths or ():
        args.append(f"--path={_snapshot_path(path, 'A snapshot path')}")
    if host is not None:
        args.append(f"--host={_host(host)}")
    outcome = _restic(repo, args, timeout=timeout, keep_stdout=True)
    _check("snapshots", outcome, repo)
    return _readable("snapshots", outcome, parse_snapshots)


# --- progress, backup ------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """A status line of a running backup or restore: percent 0-100; files and bytes done of the
    totals restic knows so far (backup scans while it saves, so totals grow); seconds_remaining
    None until restic estimates; current_files the files being read right now."""

    percent: float
    files_done: int
    total_files: int
    bytes_done: int
    total_bytes: int
    seconds_remaining: int | None
    current_files: tuple[str, ...]
    error_count: int


def parse_status(data: Mapping[str, Any]) -> Progress:
    """A ``{"message_type":"status"}`` object of backup or restore as a Progress."""
    remaining = data.get("seconds_remaining")
    return Progress(
        percent=round(100 * float(data.get("percent_done") or 0.0), 2),
        files_done=int(data.get("files_done", data.get("files_restored", 0)) or 0),
        total_files=int(data.get("total_files") or 0),
        bytes_done=int(data.get("bytes_done", data.get("bytes_restored", 0)) or 0),
        total_bytes=int(data.get("total_bytes") or 0),
        seconds_remaining=None if remaining is None else int(remaining),
        current_files=tuple(data.get("current_files") or ()),
        error_count=int(data.get("error_count") or 0),
    )


@dataclass(frozen=True)
class BackupSummary:
    """The summary of a finished backup. ``partial`` (restic's exit 3): the snapshot was written
    but some source files could not be read; ``errors`` says which (the last 100). Bytes are
    bytes; ``duration`` seconds."""

    snapshot_id: str
    files_new: int
    files_changed: int
    files_unmodified: int
    dirs_new: int
    dirs_changed: int
    dirs_unmodified: int
    data_added: int
    data_added_packed: int
    total_files_processed: int
    total_bytes_processed: int
    duration: float
    partial: bool = False
    errors: tuple[str, ...] = ()


def parse_backup_summary(
    data: Mapping[str, Any], *, partial: bool = False, errors: Sequence[str] = ()
) -> BackupSummary:
    """A ``{"message_type":"summary"}`` object of backup as a BackupSummary."""

    def count(key: str) -> int:
        return int(data.get(key) or 0)

    return BackupSummary(
        snapshot_id=str(data.get("snapshot_id") or ""),
        files_new=count("files_new"),
        files_changed=count("files_changed"),
        files_unmodified=count("files_unmodified"),
        dirs_new=count("dirs_new"),
        dirs_changed=count("dirs_changed"),
        dirs_unmodified=count("dirs_unmodified"),
        data_added=count("data_added"),
        data_added_packed=count("data_added_packed"),
        total_files_processed=count("total_files_processed"),
        total_bytes_processed=count("total_bytes_processed"),
        duration=float(data.get("total_duration") or 0.0),
        partial=partial,
        errors=tuple(errors),
    )


class _JsonRun:
    """Collects the JSON lines of a backup or restore: status lines to the callback, the
    summary kept, error lines (stdout or stderr) counted and the last 100 kept."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self.on_progress = on_progress
        self.summary: dict[str, Any] | None = None
        self.errors: deque[str] = deque(maxlen=100)

    def __call__(self, data: dict[str, Any]) -> None:
        kind = data.get("message_type")
        if kind == "status" and self.on_progress is not None:
            self.on_progress(parse_status(data))
        elif kind == "summary":
            self.summary = data
        elif kind == "error":
            self.errors.append(error_text(data))


def _time_option(moment: datetime) -> tuple[str, dict[str, str]]:
    """``--time`` and the TZ restic must read it in. restic parses ``--time`` in its local zone
    and stores the offset, which is the wall clock forget's daily buckets use; so an IANA zone is
    kept (TZ=<zone>), any other offset becomes UTC."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise HostOpsError("A backup time must be an aware datetime (with its time zone).")
    zone = moment.tzinfo.key if isinstance(moment.tzinfo, ZoneInfo) else "UTC"
    local = moment.astimezone(ZoneInfo(zone))
    return f"--time={local:%Y-%m-%d %H:%M:%S}", {"TZ": zone}


def backup(
    repo: Repository,
    paths: Sequence[str],
    *,
    time: datetime | None = None,
    tags: Sequence[str] = (),
    host: str | None = None,
    excludes: Sequence[str] = (),
    exclude_file: str | None = None,
    one_file_system: bool = True,
    exclude_caches: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    progress_fps: float | None = None,
    timeout: float = LONG_TIMEOUT,
) -> BackupSummary:
    """Back up ``paths`` (absolute) into a new snapshot and return its summary.

    ``time`` (aware) is the snapshot's time, such as the time of the BTRFS snapshot backed up;
    ``host`` and ``tags`` label it (forget groups by them). ``excludes`` are restic patterns,
    ``exclude_file`` a file of them. ``on_progress`` gets a Progress per status line
    (``progress_fps`` a second, restic's default 60; 0.0166 is about once a minute). A partly
    read source is not an error: see BackupSummary.partial.
    """
    if isinstance(paths, str) or not paths:
        raise HostOpsError("backup takes a non-empty list of absolute paths.")
    args = ["backup"]
    env: dict[str, str] = {}
    if time is not None:
        option, env = _time_option(time)
        args.append(option)
    args += [f"--tag={tag}" for tag in _tags(tags)]
    if host is not None:
        args.append(f"--host={_host(host)}")
    if isinstance(excludes, str):
        raise HostOpsError("excludes is a list of patterns, not one string.")
    for pattern in excludes:
        if not isinstance(pattern, str) or not pattern or _CONTROL.search(pattern):
            raise HostOpsError(f"{pattern!r} is not an exclude pattern: one non-empty line.")
        args.append(f"--exclude={pattern}")
    if exclude_file is not None:
        args.append(f"--exclude-file={_absolute(exclude_file, 'The exclude file')}")
    if one_file_system:
        args.append("--one-file-system")
    if exclude_caches:
        args.append("--exclude-caches")
    args += ["--", *(_absolute(path, "A backup path") for path in paths)]
    if progress_fps is not None:
        env["RESTIC_PROGRESS_FPS"] = _fps(progress_fps)
    collector = _JsonRun(on_progress)
    outcome = _restic(repo, args, timeout=timeout, on_json=collector, env=env)
    errors = [*collector.errors, *outcome.errors][-100:]
    if outcome.returncode not in (0, 3):
        raise failure("backup", outcome, repo)
    if collector.summary is None:
        outcome.errors = errors
        raise ResticFailed(
            f"restic backup on {repo.location} ended without a summary: {_scrub(_restic_words(outcome), repo)}",
            exit_code=outcome.returncode,
            argv=outcome.argv,
        )
    return parse_backup_summary(
        collector.summary, partial=outcome.returncode == 3, errors=[_scrub(e, repo) for e in errors]
    )


def _fps(value: float) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value) or not 0.001 <= value <= 1000:
        raise HostOpsError(f"progress_fps {value!r} must be between 0.001 and 1000 status lines a second.")
    return f"{value:g}"


# --- forget ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeepReason:
    """Why forget keeps a snapshot: restic's ``matches`` ("daily snapshot", "oldest daily
    snapshot", "last snapshot", ...) and the counters left per rule, when restic gives them."""

    snapshot_id: str
    matches: tuple[str, ...]
    counters: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ForgetGroup:
    """One group forget applied the policy to (by host/paths/tags): what it keeps and removes."""

    host: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    keep: tuple[Snapshot, ...]
    remove: tuple[Snapshot, ...]
    reasons: tuple[KeepReason, ...]

    def reason_for(self, snapshot_id: str) -> KeepReason | None:
        """The reason a kept snapshot is kept (full or short id)."""
        return next(
            (reason for reason in self.reasons if reason.snapshot_id.startswith(snapshot_id[:8])),
            None,
        )


def parse_forget(text: str) -> list[ForgetGroup]:
    """``forget --json``: a JSON array of groups on one line. With ``--prune`` restic prints its
    prune report as text after it, which is skipped here."""
    line = next((line for line in text.splitlines() if line.startswith("[")), None)
    if line is None:
        return []
    groups = []
    for item in json.loads(line):
        reasons = tuple(
            KeepReason(
                snapshot_id=str(reason["snapshot"]["id"]),
                matches=tuple(reason.get("matches") or ()),
                counters={str(k): int(v) for k, v in (reason.get("counters") or {}).items()},
            )
            for reason in item.get("reasons") or ()
        )
        groups.append(
            ForgetGroup(
                host=str(item.get("host") or ""),
                paths=tuple(item.get("paths") or ()),
                tags=tuple(item.get("tags") or ()),
                keep=tuple(snapshot_from_json(s) for s in item.get("keep") or ()),
                remove=tuple(snapshot_from_json(s) for s in item.get("remove") or ()),
                reasons=reasons,
            )
        )
    return groups


def policy_args(policy: Mapping[str, int | str]) -> list[str]:
    """forget's ``--keep-*`` options from ``{"keep_daily": 7, "keep_weekly": 52, ...}``: counts
    are whole numbers >= 1 (or -1 for unlimited); ``keep_within*`` durations like "7d", "1y6m".
    An empty policy is refused (it would say nothing of what to keep)."""
    if not isinstance(policy, Mapping) or not policy:
        raise HostOpsError("A retention policy needs at least one keep_* rule; an empty one is refused.")
    args = []
    for key, value in policy.items():
        flag = "--" + str(key).replace("_", "-")
        if key in _KEEP_COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or not (value >= 1 or value == -1):
                raise HostOpsError(f"{key} must be a whole number of snapshots >= 1 (or -1 for all), not {value!r}.")
            args.append(f"{flag}={value}")
        elif key in _KEEP_WITHIN:
            if not isinstance(value, str) or not _WITHIN.fullmatch(value):
                raise HostOpsError(
                    f"{key} must be a duration in restic's units y, m, d, h (such as 7d, 1y6m, 36h), not {value!r}."
                )
            args.append(f"{flag}={value}")
        else:
            raise HostOpsError(f"{key!r} is not a retention rule ({', '.join(_KEEP_COUNTS + _KEEP_WITHIN)}).")
    return args


def forget(
    repo: Repository,
    policy: Mapping[str, int | str],
    *,
    group_by: str = "host,paths",
    tags: Sequence[str] | None = None,
    dry_run: bool = False,
    prune: bool = False,
    timeout: float = FORGET_TIMEOUT,
) -> list[ForgetGroup]:
    """Apply ``policy`` (see policy_args) to each group of snapshots (``group_by``: host, paths,
    tags, comma-separated; '' for one group) and return what restic kept and removed, with why.
    ``tags`` limits it to snapshots carrying them; ``dry_run`` removes nothing; ``prune`` also
    deletes the data no snapshot uses any more (slow: give a long ``timeout``).

    Snapshots restic decided to remove but could not delete raise PartialForget, carrying the
    groups and their ids: on exit 3 as documented, and also when restic (0.18.0 does) only says
    "unable to remove snapshot/<id>" on stderr and exits 0."""
    args = ["forget", *policy_args(policy), f"--group-by={_group_by(group_by)}"]
    if tags:
        args.append(f"--tag={','.join(_tags(tags))}")
    if dry_run:
        args.append("--dry-run")
    if prune:
        if dry_run:
            raise HostOpsError("A dry run cannot prune; ask for one or the other.")
        args.append("--prune")
    outcome = _restic(repo, args, timeout=timeout, keep_stdout=True)
    groups = _readable("forget", outcome, parse_forget)
    if outcome.returncode in (0, 3) and (outcome.returncode == 3 or outcome.unremoved):
        count = len(outcome.unremoved)
        which = f" {count} snapshot{'s' if count != 1 else ''} ({', '.join(i[:8] for i in outcome.unremoved)})"
        failed = [line for line in outcome.stderr_tail if "failed:" in line]
        reason = failed[-1] if failed else _restic_words(outcome)
        raise PartialForget(
            f"restic forget on {repo.location} could not remove{which if count else ' some snapshots'}: "
            f"{_scrub(reason, repo)}",
            exit_code=outcome.returncode,
            argv=outcome.argv,
            groups=groups,
            unremoved=tuple(outcome.unremoved),
        )
    _check("forget", outcome, repo)
    return groups


# --- ls, restore, dump -----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One entry of a snapshot's tree (``ls --json``). ``path`` is absolute inside the snapshot;
    names restic could not write as UTF-8 come with U+FFFD in place of the odd bytes (restic's
    JSON does that), so such a name is shown, not restored by name."""

    name: str
    type: str
    path: str
    size: int | None
    mtime: datetime | None
    mode: int
    permissions: str
    uid: int
    gid: int
    inode: int = 0
    link_target: str = ""


def parse_node(data: Mapping[str, Any]) -> Node:
    """A ``{"message_type":"node"}`` object (or 0.16's ``struct_type`` node) as a Node."""
    mtime = data.get("mtime")
    try:
        when = parse_time(str(mtime)) if mtime else None
    except HostOpsError:
        when = None
    return Node(
        name=str(data.get("name", "")),
        type=str(data.get("type", "")),
        path=str(data.get("path", "")),
        size=None if data.get("size") is None else int(data["size"]),
        mtime=when,
        mode=int(data.get("mode") or 0),
        permissions=str(data.get("permissions", "")),
        uid=int(data.get("uid") or 0),
        gid=int(data.get("gid") or 0),
        inode=int(data.get("inode") or 0),
        link_target=str(data.get("linktarget") or ""),
    )


def _is_node(data: Mapping[str, Any]) -> bool:
    return data.get("message_type", data.get("struct_type")) == "node"


def ls(
    repo: Repository,
    snapshot_id: str,
    path: str = "/",
    *,
    recursive: bool = False,
    limit: int = 100_000,
    timeout: float = LIST_TIMEOUT,
) -> list[Node]:
    """The entries of ``path`` in the snapshot (the folder itself first, then what is in it;
    every level below too with ``recursive``). Read line by line; past ``limit`` entries
    HostOpsError (a file browser asks folder by folder). A path not in the snapshot gives []."""
    args = ["ls", _snapshot_id(snapshot_id), "--", _snapshot_path(path)]
    if recursive:
        args.insert(1, "--recursive")
    nodes: list[Node] = []

    def on_json(data: dict[str, Any]) -> None:
        if _is_node(data):
            if len(nodes) >= limit:
                raise HostOpsError(f"{path} holds more than {limit} entries; list a folder further down.")
            nodes.append(parse_node(data))

    outcome = _restic(repo, args, timeout=timeout, on_json=on_json)
    _check("ls", outcome, repo)
    return nodes


def walk(
    repo: Repository, snapshot_id: str, path: str, on_node: Callable[[Node], None], *, timeout: float = LIST_TIMEOUT
) -> int:
    """Hand every entry of ``path`` and all below it in the snapshot to ``on_node``, one at a
    time as restic prints them, keeping none: a dataset of millions of files is read in
    constant memory (the restore drill samples from it this way). Returns how many were
    handed; a path not in the snapshot gives 0."""
    args = ["ls", "--recursive", _snapshot_id(snapshot_id), "--", _snapshot_path(path)]
    count = 0

    def on_json(data: dict[str, Any]) -> None:
        nonlocal count
        if _is_node(data):
            count += 1
            on_node(parse_node(data))

    outcome = _restic(repo, args, timeout=timeout, on_json=on_json)
    _check("ls", outcome, repo)
    return count


@dataclass(frozen=True)
class RestoreSummary:
    """A finished restore: files and bytes restored (restic's counts), skipped (already there,
    the same), whether they were verified by reading them back, seconds taken."""

    total_files: int
    files_restored: int
    files_skipped: int
    total_bytes: int
    bytes_restored: int
    bytes_skipped: int
    verified: bool
    duration: float
    errors: tuple[str, ...] = ()


def parse_restore_summary(
    data: Mapping[str, Any], *, verified: bool, duration: float, errors: Sequence[str] = ()
) -> RestoreSummary:
    """A restore ``{"message_type":"summary"}`` object as a RestoreSummary."""

    def count(key: str) -> int:
        return int(data.get(key) or 0)

    return RestoreSummary(
        total_files=count("total_files"),
        files_restored=count("files_restored"),
        files_skipped=count("files_skipped"),
        total_bytes=count("total_bytes"),
        bytes_restored=count("bytes_restored"),
        bytes_skipped=count("bytes_skipped"),
        verified=verified,
        duration=round(duration, 3),
        errors=tuple(errors),
    )


def restore(
    repo: Repository,
    snapshot_id: str,
    target: str,
    *,
    subdir: str | None = None,
    include: Sequence[str] = (),
    verify: bool = True,
    overwrite: str = "always",
    on_progress: Callable[[Progress], None] | None = None,
    progress_fps: float | None = None,
    timeout: float = LONG_TIMEOUT,
) -> RestoreSummary:
    """Restore the snapshot (or its folder ``subdir``, restic's ``<snapshot>:<subdir>``, so that
    the folder's contents land directly in ``target``) into ``target``, an absolute path restic
    creates. ``include`` (paths relative to subdir, as restic matches them) limits it to some
    files. ``verify`` reads every restored file back and compares it with the snapshot; a
    mismatch or an unwritable file fails the restore (ResticFailed with restic's count).
    ``overwrite`` is restic's rule for files already in ``target``: always (restic's default),
    if-changed, if-newer or never."""
    if overwrite not in _OVERWRITE:
        raise HostOpsError(f"overwrite {overwrite!r} is not one of {', '.join(_OVERWRITE)}.")
    source = _snapshot_id(snapshot_id)
    if subdir is not None:
        source = f"{source}:{_snapshot_path(subdir, 'The folder to restore')}"
    args = ["restore", source, f"--target={_absolute(target, 'The restore target')}"]
    if isinstance(include, str):
        raise HostOpsError("include is a list of paths, not one string.")
    args += [f"--include={_snapshot_path(item, 'An included path')}" for item in include]
    if verify:
        args.append("--verify")
    args.append(f"--overwrite={overwrite}")
    env = {"RESTIC_PROGRESS_FPS": _fps(progress_fps)} if progress_fps is not None else {}
    collector = _JsonRun(on_progress)
    started = _time.monotonic()
    outcome = _restic(repo, args, timeout=timeout, on_json=collector, env=env)
    _check("restore", outcome, repo)
    errors = [_scrub(error, repo) for error in [*collector.errors, *outcome.errors]]
    summary = collector.summary or {}
    elapsed = summary.get("seconds_elapsed")
    duration = float(elapsed) if isinstance(elapsed, int | float) else _time.monotonic() - started
    return parse_restore_summary(summary, verified=verify, duration=duration, errors=errors)


def dump(
    repo: Repository,
    snapshot_id: str,
    path: str,
    out: BinaryIO,
    *,
    max_bytes: int,
    timeout: float = LIST_TIMEOUT,
) -> int:
    """Write the file ``path`` of the snapshot to ``out`` (a folder comes as a tar) and return
    the bytes written. Past ``max_bytes`` restic is stopped and DumpTooLarge raised (``out``
    then holds an incomplete start); a path not in the snapshot is ResticFailed."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise HostOpsError("max_bytes must be a whole number of bytes >= 0.")
    argv = command_argv(repo, "dump", _snapshot_id(snapshot_id), "--", _snapshot_path(path))
    if not os.path.isfile(repo.password_file):
        raise ResticFailed(
            f"The password file {repo.password_file} of the repository at {repo.location} is missing.",
            exit_code=1,
            argv=argv,
        )
    outcome = _Outcome(argv=argv, returncode=0)
    written = _pump_binary(argv, out, env=repo.env(), max_bytes=max_bytes, timeout=timeout, outcome=outcome)
    if written > max_bytes:
        raise DumpTooLarge(f"{path} is larger than {max_bytes} bytes; restic dump was stopped.")
    _check("dump", outcome, repo)
    return written


def _pump_binary(
    argv: list[str], out: BinaryIO, *, env: Mapping[str, str], max_bytes: int, timeout: float, outcome: _Outcome
) -> int:
    """Run ``argv`` (no shell, own session), copy its stdout to ``out`` in chunks, parse its
    stderr; stop it once more than ``max_bytes`` came or past ``timeout``. Returns the bytes
    written (max_bytes + 1 when stopped for size); sets outcome.returncode and its errors.
    hostops.run is text-only, and a dump is bytes."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise ResticFailed(f"{argv[0]}: command not found", exit_code=127, argv=argv) from exc
    if proc.stdout is None or proc.stderr is None:  # pragma: no cover - both are PIPE
        raise HostOpsError("restic dump started without its pipes.")
    stdout = proc.stdout.fileno()
    stderr_lines: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    overdue = threading.Event()

    def expire() -> None:
        overdue.set()
        _killpg(proc)

    timer = threading.Timer(timeout, expire)
    timer.start()
    written = 0
    try:
        while chunk := os.read(stdout, _DUMP_CHUNK):
            if written + len(chunk) > max_bytes:
                out.write(chunk[: max_bytes - written])
                written = max_bytes + 1
                _killpg(proc)
                break
            out.write(chunk)
            written += len(chunk)
    except BaseException:
        _killpg(proc)
        raise
    finally:
        proc.wait()
        timer.cancel()
        reader.join(timeout=5)
        proc.stdout.close()
        if not reader.is_alive():
            proc.stderr.close()
    if overdue.is_set():
        raise CommandTimeout(f"{argv[0]} dump ran past {timeout:g}s and was killed")
    outcome.returncode = proc.returncode
    for raw in stderr_lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        data = _json_object(line)
        if data is not None and data.get("message_type") == "exit_error":
            outcome.exit_error = str(data.get("message", "")).strip()
        elif line.strip():
            outcome.stderr_tail.append(line.strip())
    return written


def _killpg(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


# --- check -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """``check``'s verdict: errors found, packs that are damaged (their ids), and restic's
    advice to run ``repair index`` or ``prune``. ``errors`` are restic's error lines."""

    num_errors: int
    broken_packs: tuple[str, ...]
    suggest_repair_index: bool
    suggest_prune: bool
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No error, nothing broken."""
        return self.num_errors == 0 and not self.broken_packs and not self.errors


def parse_check_summary(data: Mapping[str, Any], *, errors: Sequence[str] = ()) -> CheckResult:
    """check's ``{"message_type":"summary"}`` as a CheckResult."""
    return CheckResult(
        num_errors=int(data.get("num_errors") or 0),
        broken_packs=tuple(data.get("broken_packs") or ()),
        suggest_repair_index=bool(data.get("suggest_repair_index")),
        suggest_prune=bool(data.get("suggest_prune")),
        errors=tuple(errors),
    )


def validate_subset(subset: str) -> str:
    """``subset`` if ``check --read-data-subset`` takes it: ``n/t`` (slice n of t, 1 <= n <= t),
    ``x%`` or a size such as ``50G``."""
    match = _SUBSET.fullmatch(subset) if isinstance(subset, str) else None
    if match is None or (match["n"] is not None and int(match["n"]) > int(match["t"])):
        raise HostOpsError(f"{subset!r} is not a data subset: use n/t (such as 3/12), a percentage or a size.")
    return subset


def check(repo: Repository, *, read_data_subset: str | None = None, timeout: float = LONG_TIMEOUT) -> CheckResult:
    """Check the repository's structure, and read back the packs of ``read_data_subset`` (such as
    "3/12": a twelfth a month covers everything in a year). Errors found in the repository are a
    CheckResult with ok False; a check that could not run raises."""
    args = ["check"]
    if read_data_subset is not None:
        args.append(f"--read-data-subset={validate_subset(read_data_subset)}")
    summary: list[dict[str, Any]] = []
    errors: list[str] = []

    def on_json(data: dict[str, Any]) -> None:
        if data.get("message_type") == "summary":
            summary.append(data)
        elif data.get("message_type") == "error":
            errors.append(error_text(data))

    outcome = _restic(repo, args, timeout=timeout, on_json=on_json)
    all_errors = [_scrub(error, repo) for error in [*errors, *outcome.errors]]
    if outcome.returncode == 1 and summary:
        return parse_check_summary(summary[-1], errors=all_errors)
    _check("check", outcome, repo)
    return parse_check_summary(summary[-1] if summary else {}, errors=all_errors)


# --- stats -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoStats:
    """``stats --json``: ``total_size`` in bytes (what the repository stores, compressed, in
    ``raw-data`` mode; what a restore would write in ``restore-size`` mode), the files and
    folders counted (restore-size only), snapshots covered, and for raw-data the size before compression and
    the ratio."""

    mode: str
    total_size: int
    snapshots_count: int
    total_file_count: int | None = None
    total_uncompressed_size: int | None = None
    compression_ratio: float | None = None


_STATS_MODES = ("raw-data", "restore-size")


def parse_stats(data: Mapping[str, Any], *, mode: str) -> RepoStats:
    """stats' JSON object as RepoStats."""

    def optional(key: str) -> int | None:
        return None if data.get(key) is None else int(data[key])

    ratio = data.get("compression_ratio")
    return RepoStats(
        mode=mode,
        total_size=int(data.get("total_size") or 0),
        snapshots_count=int(data.get("snapshots_count") or 0),
        total_file_count=optional("total_file_count"),
        total_uncompressed_size=optional("total_uncompressed_size"),
        compression_ratio=None if ratio is None else float(ratio),
    )


def stats(
    repo: Repository, snapshot_id: str | None = None, *, mode: str = "raw-data", timeout: float = LIST_TIMEOUT
) -> RepoStats:
    """How big the repository is (``raw-data``: bytes stored, all snapshots or one), or what
    restoring a snapshot would write (``restore-size``)."""
    if mode not in _STATS_MODES:
        raise HostOpsError(f"stats mode {mode!r} is not one of {', '.join(_STATS_MODES)}.")
    args = ["stats", f"--mode={mode}", *([_snapshot_id(snapshot_id)] if snapshot_id is not None else [])]
    outcome = _restic(repo, args, timeout=timeout, keep_stdout=True)
    _check("stats", outcome, repo)
    return _readable("stats", outcome, lambda text: parse_stats(json.loads(text), mode=mode))


# --- locks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    """A lock file of the repository: who made it (host, user, pid), when, exclusive or not, and
    its age in seconds when listed. restic counts a lock stale after 30 minutes without refresh,
    or at once when its process is gone from the same host."""

    id: str
    time: datetime
    hostname: str
    username: str
    pid: int
    exclusive: bool
    age_s: float


def parse_lock(lock_id: str, data: Mapping[str, Any], *, now: datetime) -> Lock:
    """``cat lock <id>``'s JSON object as a Lock, aged at ``now``."""
    when = parse_time(str(data["time"]))
    return Lock(
        id=lock_id,
        time=when,
        hostname=str(data.get("hostname", "")),
        username=str(data.get("username", "")),
        pid=int(data.get("pid") or 0),
        exclusive=bool(data.get("exclusive")),
        age_s=max((now - when).total_seconds(), 0.0),
    )


def _lock_from_text(lock_id: str, text: str, *, now: datetime) -> Lock:
    return parse_lock(lock_id, json.loads(text), now=now)


def list_locks(repo: Repository, *, timeout: float = SHORT_TIMEOUT) -> list[Lock]:
    """The repository's locks (read without taking one), oldest first. A lock that vanishes
    between the listing and its reading (its job ended) is left out."""
    outcome = _restic(repo, ["list", "locks", "--no-lock"], timeout=timeout, keep_stdout=True)
    _check("list locks", outcome, repo)
    now = datetime.now(UTC)
    locks = []
    for lock_id in (line.strip() for line in outcome.stdout_lines):
        if not _LOCK_ID.fullmatch(lock_id):
            continue
        shown = _restic(repo, ["cat", "lock", lock_id, "--no-lock"], timeout=timeout, keep_stdout=True)
        if shown.returncode != 0:
            if shown.returncode in (10, 12):
                raise failure("cat lock", shown, repo)
            continue  # gone meanwhile
        locks.append(_readable("cat lock", shown, functools.partial(_lock_from_text, lock_id, now=now)))
    return sorted(locks, key=lambda lock: lock.time)


# restic's rule (internal/restic/lock.go, Stale): a lock not refreshed for 30 minutes is stale;
# so is one made on this host whose process is gone. restic refreshes its locks every 5 minutes.
STALE_AFTER_S = 30 * 60


def is_stale(lock: Lock, *, hostname: str | None = None) -> bool:
    """Whether ``restic unlock`` would remove ``lock``: older than STALE_AFTER_S, or made on this
    host (``hostname``, default this machine's) by a process that no longer exists. Read where
    restic runs (the worker), since only there does the PID mean anything."""
    if lock.age_s > STALE_AFTER_S:
        return True
    if lock.hostname != (hostname if hostname is not None else socket.gethostname()):
        return False  # another machine's job: only its age tells
    return not _process_exists(lock.pid)


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:  # restic, too, counts any failure to signal it as gone
        return False
    return True


_REMOVED_LOCKS = re.compile(r"successfully removed (\d+) locks?")


def unlock(repo: Repository, *, remove_all: bool = False, timeout: float = SHORT_TIMEOUT) -> int:
    """Remove stale locks (restic's rule: see Lock) and return how many went; with
    ``remove_all`` every lock, also those of jobs still running, which an admin does only when
    sure nothing runs."""
    args = ["unlock", *(["--remove-all"] if remove_all else [])]
    outcome = _restic(repo, args, timeout=timeout, keep_stdout=True)
    _check("unlock", outcome, repo)
    said = _REMOVED_LOCKS.search("\n".join([*outcome.stdout_lines, *outcome.stderr_tail]))
    return int(said[1]) if said else 0


__all__ = [
    "BackupSummary",
    "CheckResult",
    "ForgetGroup",
    "KeepReason",
    "Lock",
    "Node",
    "Progress",
    "RepoStats",
    "Repository",
    "RestoreSummary",
    "Snapshot",
    "backup",
    "check",
    "dump",
    "forget",
    "init",
    "is_stale",
    "limit_from_mbps",
    "list_locks",
    "ls",
    "restore",
    "snapshots",
    "stats",
    "unlock",
    "version",
    "version_tuple",
    "walk",
]
