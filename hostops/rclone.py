"""rclone 1.60: remotes in a private config file, sync/copy with live progress, one-way checks,
listings (lsjson) and space (about).

Every location that reaches rclone is validated first: ``name:path`` for a configured remote
(name ``^[a-z][a-z0-9_-]{0,31}$``) or an absolute local path; options smuggled as paths, ``..``,
NUL, newlines and other control characters are refused before anything runs. rclone finds its
config through ``RCLONE_CONFIG`` in the child's environment; credentials are read from a secret
file into that config (mode 0600) and never reach argv, logs or error messages.

Bandwidth: rclone's ``--bwlimit`` is in **bytes** per second with binary units (``1M`` is
1 MiB/s = 1,048,576 bytes/s, as rclone's own log says: "Starting bandwidth limiter at
1Mi Byte/s"). A link budget in megabits goes through bwlimit_from_mbps.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostops.errors import HostOpsError, HostOpsTransient, NotFound
from hostops.run import run, run_streaming

RCLONE = "rclone"
_LIST_TIMEOUT = 300
_MESSAGE_LIMIT = 500  # rclone's errors quote whole request URLs

_REMOTE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_OPTION_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DAY = r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)(?:day)?-)?"
_RATE = r"(?:off|\d{1,9}(?:\.\d{1,3})?[BKMGTP]?)"
_UP_DOWN = rf"{_RATE}(?::{_RATE})?"
_ENTRY = rf"{_DAY}(?:[01]\d|2[0-3]):[0-5]\d,{_UP_DOWN}"
_BWLIMIT = re.compile(rf"{_UP_DOWN}|{_ENTRY}(?:[ ;]{_ENTRY})*", re.IGNORECASE)

# Options a remote of each type may carry in the clear, and those that must come from the secret file.
_PLAIN_OPTIONS: dict[str, frozenset[str]] = {
    "local": frozenset({"copy_links", "links", "skip_links", "one_file_system", "no_check_updated"}),
    "drive": frozenset({"client_id", "root_folder_id", "scope", "team_drive", "chunk_size", "stop_on_upload_limit"}),
    # Google Cloud Storage (the seed's migration source): a service account, or OAuth like drive.
    "gcs": frozenset(
        {
            "client_id",
            "project_number",
            "service_account_file",
            "anonymous",
            "object_acl",
            "bucket_acl",
            "bucket_policy_only",
            "location",
            "storage_class",
            "no_check_bucket",
        }
    ),
}
_SECRET_OPTIONS: dict[str, frozenset[str]] = {
    "local": frozenset(),
    "drive": frozenset({"client_secret", "token"}),
    "gcs": frozenset({"client_secret", "token", "service_account_credentials"}),
}

# rclone's exit statuses (https://rclone.org/docs/#exit-code), in words for an admin.
EXIT_MEANINGS: dict[int, str] = {
    0: "finished without error",
    1: "rclone refused the command line (syntax or usage error, or an unknown remote)",
    2: "rclone failed with an error it does not categorise",
    3: "a source or destination directory was not found",
    4: "a source or destination file was not found",
    5: "a temporary error (retrying later may help)",
    6: "less serious errors (some files were not transferred; retrying will not help)",
    7: "a fatal error such as a suspended account or an exhausted quota; retrying will not help",
    8: "the transfer limit set by --max-transfer was reached",
    9: "no files were transferred (--error-on-no-transfer)",
    10: "the time limit set by --max-duration was reached",
}
RETRYABLE_EXIT = 5


# --- locations and options ----------------------------------------------------------------


def validate_remote_name(name: str) -> str:
    """``name`` if it is a remote name this module writes (lower case, 1-32 characters)."""
    if not isinstance(name, str) or not _REMOTE_NAME.fullmatch(name):
        raise HostOpsError(
            f"{name!r} is not a remote name: use a lower-case letter, then up to 31 letters, digits, _ or -."
        )
    return name


def validate_location(location: str) -> str:
    """``location`` if it is an absolute local path or ``remote:path``; raise HostOpsError otherwise."""
    if not isinstance(location, str) or not location:
        raise HostOpsError("An rclone location must be an absolute path or remote:path, not empty.")
    if _CONTROL.search(location):
        raise HostOpsError("An rclone location must not contain NUL, newlines or other control characters.")
    if location.startswith("/"):
        path = location
    else:
        name, colon, path = location.partition(":")
        if not colon or not _REMOTE_NAME.fullmatch(name):
            raise HostOpsError(
                f"{location!r} is neither an absolute local path nor remote:path with a remote name "
                "such as gdrive (options like -rf or --config are never accepted as locations)."
            )
    if ".." in path.split("/"):
        raise HostOpsError(f"{location!r} climbs out of its folder with '..'; give the path without it.")
    return location


def validate_bwlimit(value: str) -> str:
    """``value`` if rclone accepts it as ``--bwlimit``: ``10M``, ``12.5M``, ``off``, ``UP:DOWN``
    or a timetable (``"Mon-08:00,512K 18:00,off"``). Values are bytes/s, K/M/G binary."""
    if not isinstance(value, str) or not _BWLIMIT.fullmatch(value):
        raise HostOpsError(
            f"{value!r} is not an rclone bandwidth limit: use bytes per second such as 10M, 512K or off, "
            "UP:DOWN, or a timetable such as 'Mon-08:00,512K 18:00,off'."
        )
    return value


def bwlimit_from_mbps(mbps: float) -> str:
    """A link budget in megabits per second as an rclone ``--bwlimit`` (KiB/s, rounded down so it
    never exceeds the budget): 100 -> "12207K" (12,499,968 bytes/s). rclone's ``M`` is MiB, so
    "12.5M" would be 13.1 MB/s, about 105 Mbit/s."""
    if not isinstance(mbps, int | float) or not math.isfinite(mbps) or mbps <= 0:
        raise HostOpsError(f"A bandwidth of {mbps!r} Mbit/s is not a positive number.")
    kib = math.floor(mbps * 1_000_000 / 8 / 1024)
    if kib < 1:
        raise HostOpsError(f"{mbps!r} Mbit/s is below rclone's smallest limit (1 KiB/s, about 0.008 Mbit/s).")
    return f"{kib}K"


def _validate_exclude(pattern: str) -> str:
    if not isinstance(pattern, str) or not pattern or _CONTROL.search(pattern):
        raise HostOpsError(f"{pattern!r} is not an exclude pattern: give a non-empty line without control characters.")
    return pattern


# --- the config file -----------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteConfig:
    """One remote of an rclone config: its name, backend type and plain options; the backend's
    credentials (drive: ``client_secret`` and ``token``) come from ``secret_file``, a JSON object
    such as ``{"client_secret": "…", "token": {"access_token": "…", "refresh_token": "…", …}}``.

    Types: ``local`` (plain options only), ``drive`` (client_id, root_folder_id, scope, …) and
    ``gcs`` (project_number, bucket_policy_only, …; ``service_account_credentials``, or
    ``client_secret`` and ``token``, from the secret file).
    """

    name: str
    type: str
    options: Mapping[str, str] = field(default_factory=dict)
    secret_file: str | None = None
    # Secrets given directly (a token an admin pasted, decrypted by the caller), over the file's.
    secrets: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)

    def section(self) -> str:
        """The ``[name]`` section of rclone.conf, secrets included: never log it."""
        validate_remote_name(self.name)
        lines = [f"[{self.name}]", f"type = {self.type}"]
        for key, value in {**self._plain(), **self._secrets()}.items():
            lines.append(f"{key} = {value}")
        return "\n".join(lines) + "\n"

    def _plain(self) -> dict[str, str]:
        allowed = _PLAIN_OPTIONS.get(self.type)
        if allowed is None:
            raise HostOpsError(
                f"Remote {self.name}: type {self.type!r} is not supported (use one of {', '.join(_PLAIN_OPTIONS)})."
            )
        unknown = sorted(set(self.options) - allowed)
        if unknown:
            hint = " (credentials belong in the secret file)" if set(unknown) & _SECRET_OPTIONS[self.type] else ""
            raise HostOpsError(f"Remote {self.name}: option(s) {', '.join(unknown)} not accepted here{hint}.")
        return {key: _option_value(self.name, key, value) for key, value in self.options.items()}

    def _secrets(self) -> dict[str, str]:
        secrets = _read_secret_file(self.name, self.secret_file) if self.secret_file is not None else {}
        unknown = sorted(set(secrets) - _SECRET_OPTIONS[self.type])
        if unknown:
            raise HostOpsError(
                f"Remote {self.name}: the secret file {self.secret_file} has key(s) {', '.join(unknown)}, "
                f"which a {self.type} remote does not take from it."
            )
        given = sorted(set(self.secrets) - _SECRET_OPTIONS[self.type])
        if given:
            raise HostOpsError(f"Remote {self.name}: a {self.type} remote takes no secret {', '.join(given)}.")
        secrets = {**secrets, **self.secrets}
        return {key: _secret_value(self.name, key, value) for key, value in secrets.items()}


def _option_value(remote: str, key: str, value: object) -> str:
    if not isinstance(value, str) or _CONTROL.search(value):
        raise HostOpsError(f"Remote {remote}: option {key} must be one line of text.")
    return value


def _secret_value(remote: str, key: str, value: object) -> str:
    """A secret as one config line: JSON objects (the OAuth token) compact; the value itself is
    never put in a message."""
    text = json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value
    if not isinstance(text, str) or not text or _CONTROL.search(text):
        raise HostOpsError(f"Remote {remote}: secret {key} in the secret file must be a non-empty line or an object.")
    return text


def _read_secret_file(remote: str, path: str) -> dict[str, object]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise HostOpsError(f"Remote {remote}: cannot read the secret file {path} ({exc.strerror}).") from None
    except ValueError:
        # from None: a JSONDecodeError carries the whole text, secrets included
        raise HostOpsError(f"Remote {remote}: the secret file {path} is not a JSON object.") from None
    if not isinstance(data, dict) or not all(_OPTION_KEY.fullmatch(str(key)) for key in data):
        raise HostOpsError(f"Remote {remote}: the secret file {path} must be a JSON object of option names.")
    return data


def write_config(remotes: Sequence[RemoteConfig], directory: str | os.PathLike[str]) -> str:
    """Write ``rclone.conf`` with these remotes into ``directory`` (mode 0600, replaced atomically,
    never readable by others even for a moment) and return its path, for the ``config`` argument.

    rclone writes a refreshed OAuth token back into this file, so keep the directory private and
    writable; writing the file again from the secret file only costs one more token refresh."""
    names = [validate_remote_name(remote.name) for remote in remotes]
    if len(set(names)) != len(names):
        raise HostOpsError(f"Remote names must be unique: {', '.join(names)}.")
    text = "\n".join(remote.section() for remote in remotes)
    target = Path(directory) / "rclone.conf"
    fd, temporary = tempfile.mkstemp(prefix=".rclone.conf.", dir=directory)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return str(target)


def _env(config: str | None) -> dict[str, str]:
    """What the child's environment adds: its config file (/dev/null, no remotes, without one).
    The file is named here rather than with --config so that argv shows nothing of it."""
    return {"RCLONE_CONFIG": config if config is not None else os.devnull}


# --- the JSON log ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One line of rclone's output: level (``error``, ``warning`` (rclone's NOTICE), ``info``,
    ``debug``, or ``text`` for a line that is not JSON), message, object, and the stats if any."""

    level: str
    msg: str
    object: str = ""
    stats: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Progress:
    """A stats line of a running transfer. Bytes; speed in bytes/s; eta and percent None while
    rclone does not know them."""

    bytes: int
    total_bytes: int
    transfers: int
    total_transfers: int
    errors: int
    speed_bps: float
    eta_s: int | None
    percent: float | None


# A plain line as Go's log package writes it: "2026/12/02 06:58:26 Failed to copy: …"
_PLAIN_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:(ERROR|NOTICE|INFO|DEBUG) *: )?")


def parse_log_line(line: str) -> LogLine | None:
    """One output line of ``rclone --use-json-log`` as a LogLine; None for a blank line. A line
    that is not JSON (rclone's last words "Failed to copy: …", usage text) has level ``error``
    when it reports a failure, else ``text``."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and "level" in data:
            stats = data.get("stats")
            return LogLine(
                level=str(data["level"]),
                msg=str(data.get("msg", "")).strip(),
                object=str(data.get("object", "")),
                stats=stats if isinstance(stats, dict) else None,
            )
    match = _PLAIN_PREFIX.match(text)
    msg = text[match.end() :] if match else text
    failed = msg.startswith(("Failed to", "Fatal error", "Error:")) or (match is not None and match[1] == "ERROR")
    return LogLine(level="error" if failed else "text", msg=msg)


def progress_from_stats(stats: Mapping[str, Any]) -> Progress:
    """rclone's stats object (as in ``rc core/stats``) as a Progress."""
    done, total = int(stats.get("bytes") or 0), int(stats.get("totalBytes") or 0)
    eta = stats.get("eta")
    return Progress(
        bytes=done,
        total_bytes=total,
        transfers=int(stats.get("transfers") or 0),
        total_transfers=int(stats.get("totalTransfers") or 0),
        errors=int(stats.get("errors") or 0),
        speed_bps=float(stats.get("speed") or 0.0),
        eta_s=None if eta is None else int(eta),
        percent=round(100 * done / total, 1) if total else None,
    )


# --- sync and copy -------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferResult:
    """A finished sync or copy. ``errors`` is rclone's count; ``error_message`` says what the exit
    status means and rclone's last error line ("" when ok)."""

    ok: bool
    exit_code: int
    bytes: int
    transfers: int
    errors: int
    elapsed_s: float
    error_message: str = ""

    @property
    def retryable(self) -> bool:
        """rclone said the failure was temporary (exit 5)."""
        return self.exit_code == RETRYABLE_EXIT

    def raise_for_status(self) -> None:
        """Raise HostOpsTransient for a temporary failure, HostOpsError for any other; nothing when ok."""
        if self.ok:
            return
        raise (HostOpsTransient if self.retryable else HostOpsError)(self.error_message)


def sync(
    source: str,
    dest: str,
    *,
    timeout: float,
    config: str | None = None,
    bwlimit: str | None = None,
    dry_run: bool = False,
    excludes: Sequence[str] = (),
    on_progress: Callable[[Progress], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    stats_interval: float = 1.0,
    retries: int = 3,
    low_level_retries: int = 10,
) -> TransferResult:
    """Make ``dest`` the same as ``source``: copy what is new or changed and **delete** from
    ``dest`` what ``source`` lacks. See copy() for the arguments."""
    argv = transfer_argv(
        "sync",
        source,
        dest,
        bwlimit=bwlimit,
        dry_run=dry_run,
        excludes=excludes,
        stats_interval=stats_interval,
        retries=retries,
        low_level_retries=low_level_retries,
    )
    return _transfer(argv, config=config, on_progress=on_progress, on_error=on_error, timeout=timeout)


def copy(
    source: str,
    dest: str,
    *,
    timeout: float,
    config: str | None = None,
    bwlimit: str | None = None,
    dry_run: bool = False,
    excludes: Sequence[str] = (),
    on_progress: Callable[[Progress], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    stats_interval: float = 1.0,
    retries: int = 3,
    low_level_retries: int = 10,
) -> TransferResult:
    """Copy what is new or changed from ``source`` to ``dest``, deleting nothing.

    Locations are absolute local paths or ``remote:path`` of the remotes in ``config`` (a file
    from write_config). ``bwlimit`` is rclone's (bytes/s; see bwlimit_from_mbps), ``excludes``
    rclone filter patterns; ``retries`` (whole runs) and ``low_level_retries`` (each request)
    are rclone's. ``on_progress`` gets a Progress every ``stats_interval`` seconds, in
    this thread; ``on_error`` each error line rclone reports, as it comes. A failure of rclone
    is a TransferResult with ok False (raise_for_status turns it into an error); past
    ``timeout`` seconds rclone is killed and CommandTimeout raised.
    """
    argv = transfer_argv(
        "copy",
        source,
        dest,
        bwlimit=bwlimit,
        dry_run=dry_run,
        excludes=excludes,
        stats_interval=stats_interval,
        retries=retries,
        low_level_retries=low_level_retries,
    )
    return _transfer(argv, config=config, on_progress=on_progress, on_error=on_error, timeout=timeout)


def transfer_argv(
    command: str,
    source: str,
    dest: str,
    *,
    bwlimit: str | None = None,
    dry_run: bool = False,
    excludes: Sequence[str] = (),
    stats_interval: float = 1.0,
    retries: int = 3,
    low_level_retries: int = 10,
) -> list[str]:
    """The argv of ``rclone sync|copy``, every part validated; values are joined to their flags
    (``--exclude=…``) so none can be read as an option."""
    if command not in ("sync", "copy"):
        raise HostOpsError(f"{command!r} is not a transfer command (sync or copy).")
    if isinstance(excludes, str):
        raise HostOpsError("excludes is a list of patterns, not one string.")
    if not 0.05 <= stats_interval <= 600 or not 1 <= retries <= 10 or not 1 <= low_level_retries <= 100:
        raise HostOpsError("stats_interval must be 0.05-600 seconds, retries 1-10 and low_level_retries 1-100.")
    argv = [RCLONE, command, validate_location(source), validate_location(dest)]
    argv += ["--use-json-log", "-v", f"--stats={stats_interval:g}s", "--stats-log-level=NOTICE"]
    argv += [f"--retries={retries}", f"--low-level-retries={low_level_retries}"]
    if bwlimit is not None:
        argv.append(f"--bwlimit={validate_bwlimit(bwlimit)}")
    if dry_run:
        argv.append("--dry-run")
    argv += [f"--exclude={_validate_exclude(pattern)}" for pattern in excludes]
    return argv


def _transfer(
    argv: list[str],
    *,
    config: str | None,
    on_progress: Callable[[Progress], None] | None,
    on_error: Callable[[str], None] | None = None,
    timeout: float,
) -> TransferResult:
    log = TransferLog(argv[1])

    def on_line(stream: str, line: str) -> None:
        last = log.errors[-1] if log.errors else None
        progress = log.feed(line)
        if progress is not None and on_progress is not None:
            on_progress(progress)
        if on_error is not None and log.errors and log.errors[-1] is not last:  # a new line (a new object)
            on_error(log.errors[-1])

    started = time.monotonic()
    exit_code = run_streaming(argv, on_line, timeout=timeout, env=_env(config))
    return log.result(exit_code, elapsed_s=time.monotonic() - started)


class TransferLog:
    """What a sync or copy said, line by line (pure: no process here): its stats and error lines."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.errors: deque[str] = deque(maxlen=100)  # a run with a million failures keeps the last
        self.last: Progress = progress_from_stats({})

    def feed(self, line: str) -> Progress | None:
        """Take one output line; the Progress when it was a stats line."""
        parsed = parse_log_line(line)
        if parsed is None:
            return None
        if parsed.stats is not None:
            self.last = progress_from_stats(parsed.stats)
            return self.last
        if parsed.level == "error":
            self.errors.append(f"{parsed.object}: {parsed.msg}" if parsed.object else parsed.msg)
        return None

    def result(self, exit_code: int, *, elapsed_s: float) -> TransferResult:
        """The TransferResult of the run that ended with ``exit_code``."""
        return TransferResult(
            ok=exit_code == 0,
            exit_code=exit_code,
            bytes=self.last.bytes,
            transfers=self.last.transfers,
            errors=self.last.errors,
            elapsed_s=round(elapsed_s, 3),
            error_message="" if exit_code == 0 else failure_message(self.command, exit_code, self.errors),
        )


def failure_message(command: str, exit_code: int, errors: Sequence[str]) -> str:
    """``rclone <command> failed (exit N: meaning): <rclone's last error line>``."""
    meaning = EXIT_MEANINGS.get(exit_code, "an exit status rclone does not document")
    message = f"rclone {command} failed (exit {exit_code}: {meaning})"
    return f"{message}: {_telling(errors)}" if errors else f"{message}."


_SUMMARY = re.compile(r"^(?:Attempt \d+/\d+ failed|Failed to )")


def _telling(errors: Sequence[str]) -> str:
    """The last error that names its cause ("…/missing: error reading source root directory:
    directory not found") rather than rclone's summaries ("Attempt 3/3 failed…", "Failed to copy…")."""
    specific = [error for error in errors if not _SUMMARY.match(error)]
    line = (specific or list(errors))[-1]
    return line if len(line) <= _MESSAGE_LIMIT else line[: _MESSAGE_LIMIT - 1] + "…"


# --- listing and checking ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One file or folder of lsjson: path relative to the listed location, size in bytes (-1 for
    a folder), modification time as rclone writes it (RFC 3339)."""

    path: str
    size: int
    mod_time: str
    is_dir: bool


def lsjson(
    location: str, *, config: str | None = None, recursive: bool = False, timeout: float = _LIST_TIMEOUT
) -> list[Entry]:
    """The files and folders at ``location`` (all levels when ``recursive``)."""
    argv = [RCLONE, "lsjson", validate_location(location), "--use-json-log"] + (["--recursive"] if recursive else [])
    result = run(argv, timeout=timeout, env=_env(config), check=False)
    if result.returncode != 0:
        raise _listing_error("lsjson", result.returncode, result.stderr)
    return parse_lsjson(result.stdout)


def parse_lsjson(text: str) -> list[Entry]:
    """rclone lsjson's JSON array as Entries."""
    return [
        Entry(path=item["Path"], size=int(item["Size"]), mod_time=item.get("ModTime", ""), is_dir=bool(item["IsDir"]))
        for item in json.loads(text)
    ]


@dataclass(frozen=True)
class Usage:
    """What ``rclone about`` says of a remote's space, in bytes; None where the backend does not
    tell (Drive adds trashed and other; local has neither)."""

    total: int | None
    used: int | None
    free: int | None
    trashed: int | None = None


def about(location: str, *, config: str | None = None, timeout: float = _LIST_TIMEOUT) -> Usage:
    """The space of the remote (or local filesystem) holding ``location``: Drive's quota, for one."""
    argv = [RCLONE, "about", validate_location(location), "--json", "--use-json-log"]
    result = run(argv, timeout=timeout, env=_env(config), check=False)
    if result.returncode != 0:
        raise _listing_error("about", result.returncode, result.stderr)
    return parse_about(result.stdout)


def parse_about(text: str) -> Usage:
    """rclone about --json's object as a Usage."""
    data = json.loads(text)
    return Usage(*(None if data.get(key) is None else int(data[key]) for key in ("total", "used", "free", "trashed")))


@dataclass(frozen=True)
class CheckResult:
    """A one-way check of ``dest`` against ``source`` (sizes and hashes): how many files match,
    differ, are missing from ``dest``, or could not be compared; with their paths."""

    matching: int
    differing: tuple[str, ...]
    missing_on_dest: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Every file of the source is in the destination, the same."""
        return not (self.differing or self.missing_on_dest or self.errors)


def check(
    source: str, dest: str, *, config: str | None = None, download: bool = False, timeout: float = _LIST_TIMEOUT
) -> CheckResult:
    """Compare every file of ``source`` with ``dest`` (one way: files only in ``dest`` are not
    counted), by size and hash, or by content with ``download``. Raises NotFound when a side does
    not exist and HostOpsError when rclone could not compare at all."""
    argv = [RCLONE, "check", validate_location(source), validate_location(dest), "--one-way", "--combined=-"]
    argv += ["--use-json-log"] + (["--download"] if download else [])
    result = run(argv, timeout=timeout, env=_env(config), check=False)
    report = parse_combined(result.stdout)
    if result.returncode == 0 or (result.returncode == 1 and not report.ok):
        return report
    raise _listing_error("check", result.returncode, result.stderr)


def parse_combined(text: str) -> CheckResult:
    """``rclone check --combined`` lines: ``= path`` same, ``* path`` differs, ``+ path`` only in
    the source, ``- path`` only in the destination (not asked for one way), ``! path`` error."""
    kinds: dict[str, list[str]] = {"=": [], "*": [], "+": [], "-": [], "!": []}
    for line in text.splitlines():
        if len(line) > 2 and line[0] in kinds and line[1] == " ":
            kinds[line[0]].append(line[2:])
    return CheckResult(
        matching=len(kinds["="]),
        differing=tuple(kinds["*"]),
        missing_on_dest=tuple(kinds["+"]),
        errors=tuple(kinds["!"]),
    )


def _listing_error(command: str, exit_code: int, stderr: str) -> HostOpsError:
    errors = [
        f"{line.object}: {line.msg}" if line.object else line.msg
        for line in map(parse_log_line, stderr.splitlines())
        if line is not None and line.level == "error"
    ]
    message = failure_message(command, exit_code, errors)
    if exit_code in (3, 4):
        return NotFound(message)
    return (HostOpsTransient if exit_code == RETRYABLE_EXIT else HostOpsError)(message)
