"""BTRFS through btrfs-progs: subvolumes, read-only snapshots, quotas (qgroups), usage, device
health, scrub, mkfs and mount. The portal's one door to BTRFS.

Every path is checked before a command runs; the tool's failures become domain errors whose
messages say what went wrong and what to do. Output is parsed by the pure ``parse_*``
functions, each tested on text recorded from the real tools (btrfs-progs 6.2).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hostops.errors import (
    CommandTimeout,
    DeviceMissing,
    HostOpsError,
    NotBtrfs,
    NotFound,
    NotSubvolume,
    QuotasDisabled,
)
from hostops.run import RunResult, run

_TIMEOUT = 60
_RESCAN_TIMEOUT = 600  # a rescan reads every extent: long on a large filesystem
_SYNC_TIMEOUT = 600  # waiting for deleted subvolumes to be cleaned up
_MKFS_TIMEOUT = 300  # mkfs TRIMs whole devices first
# C locale for stable messages; UTC so scrub's start time (printed in local time) is read right.
_ENV = {"LC_ALL": "C", "TZ": "UTC"}
_BTRFS_MAGIC = "9123683e"  # statfs f_type of BTRFS (linux/magic.h)
_SUBVOLUME_INODE = 256  # the root directory of every subvolume has this inode number
PROFILES = frozenset({"single", "dup", "raid0", "raid1", "raid1c3", "raid1c4", "raid10", "raid5", "raid6"})
_OPTION = re.compile(r"[a-z][a-z0-9_]*(=[A-Za-z0-9_/.:,+-]*)?")
_QGROUP_ID = re.compile(r"\d+/\d+")


# --- what comes back ------------------------------------------------------------------------


@dataclass(frozen=True)
class Subvolume:
    """One line of ``btrfs subvolume list``: path is relative to the filesystem's top level."""

    id: int
    gen: int
    top_level: int
    path: str


@dataclass(frozen=True)
class SubvolumeInfo:
    """``btrfs subvolume show``. ``parent_uuid`` is the source of a snapshot, None otherwise."""

    id: int
    uuid: str
    parent_uuid: str | None
    received_uuid: str | None
    created: datetime | None
    readonly: bool
    path: str  # as btrfs prints it: relative to the top level, "/" for the top level itself
    name: str
    generation: int
    parent_id: int
    top_level: int
    snapshots: tuple[str, ...] = ()


@dataclass(frozen=True)
class Qgroup:
    """A quota group with its usage in bytes; a limit is None where none is set."""

    qgroupid: str  # "0/257": level 0 is the subvolume with that id
    referenced: int
    exclusive: int
    max_referenced: int | None
    max_exclusive: int | None
    path: str = ""  # the subvolume's path, "" for the top level or a stale qgroup
    stale: bool = False  # its subvolume was deleted; qgroup_clear_stale removes it

    @property
    def subvolume_id(self) -> int | None:
        level, ident = self.qgroupid.split("/")
        return int(ident) if level == "0" else None


@dataclass(frozen=True)
class RescanStatus:
    running: bool
    current_key: int | None = None


@dataclass(frozen=True)
class Chunk:
    """One allocation class of ``filesystem usage``: Data, Metadata or System."""

    kind: str
    profile: str  # "single", "DUP", "RAID10" … as btrfs prints it
    size: int
    used: int


@dataclass(frozen=True)
class FsUsage:
    """``btrfs filesystem usage -b``, all in bytes. ``free_estimated`` accounts for the profile
    (RAID1 halves it); ``missing`` is the size of absent devices."""

    size: int
    allocated: int
    unallocated: int
    missing: int
    used: int
    free_estimated: int
    free_min: int
    data_ratio: float
    metadata_ratio: float
    data_profile: str
    metadata_profile: str
    system_profile: str
    multiple_profiles: bool
    chunks: tuple[Chunk, ...] = ()


@dataclass(frozen=True)
class Device:
    devid: int
    size: int
    used: int
    path: str  # "" for a missing device


@dataclass(frozen=True)
class FsShow:
    label: str | None
    uuid: str
    total_devices: int
    bytes_used: int
    devices: tuple[Device, ...]
    missing: bool  # some device of the filesystem is absent


@dataclass(frozen=True)
class DeviceStats:
    """The error counters of one device since they were last reset. ``device`` is the path, or
    ``devid:N`` for a device that is missing."""

    device: str
    write_io_errs: int
    read_io_errs: int
    flush_io_errs: int
    corruption_errs: int
    generation_errs: int

    @property
    def errors(self) -> int:
        return self.write_io_errs + self.read_io_errs + self.flush_io_errs + self.corruption_errs + self.generation_errs


@dataclass(frozen=True)
class ScrubStatus:
    """``btrfs scrub status -R``. ``status`` is btrfs's word (running, finished, aborted,
    interrupted) or "" when it reports no scrub yet."""

    uuid: str
    status: str
    started: datetime | None
    duration_s: int
    data_bytes_scrubbed: int
    tree_bytes_scrubbed: int
    counters: dict[str, int] = field(default_factory=dict)  # read_errors, csum_errors, …

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def bytes_scrubbed(self) -> int:
        return self.data_bytes_scrubbed + self.tree_bytes_scrubbed

    @property
    def errors(self) -> int:
        """Errors found: read, checksum, verify, superblock and allocation failures."""
        names = ("read_errors", "csum_errors", "verify_errors", "super_errors", "malloc_errors")
        return sum(self.counters.get(name, 0) for name in names)

    @property
    def uncorrectable_errors(self) -> int:
        return self.counters.get("uncorrectable_errors", 0)


# --- checks on what goes in -----------------------------------------------------------------


def checked_path(path: str) -> str:
    """``path`` if it is absolute and clean (no NUL, newline or ``..``); else ValueError. Runs
    before any command, so a bad path never reaches one."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute path")
    if any(char in path for char in "\0\n\r") or len(path) > 4000:
        raise ValueError(f"{path!r} holds a NUL or line break, or is too long")
    if ".." in path.split("/"):
        raise ValueError(f"{path!r} has a '..' component")
    return path


def _block_device(path: str) -> str:
    checked_path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise NotFound(f"{path} does not exist") from exc
    if not stat.S_ISBLK(mode):
        raise ValueError(f"{path} is not a block device")
    return path


# --- running btrfs ---------------------------------------------------------------------------


def _btrfs(args: Sequence[str], *, path: str, timeout: float = _TIMEOUT, ok: Sequence[int] = (0,)) -> RunResult:
    """Run ``btrfs args``; a status outside ``ok`` becomes the domain error its stderr names.
    Paths are absolute by then, so none passes for an option even where btrfs takes no ``--``
    (quota enable/disable, qgroup clear-stale in 6.2)."""
    result = run(["btrfs", *args], timeout=timeout, check=False, env=_ENV)
    if result.returncode not in ok:
        raise _error(result, path)
    return result


def _error(result: RunResult, path: str) -> HostOpsError:
    said = " ".join(line.strip() for line in result.stderr.strip().splitlines()[-2:]) or result.stdout.strip()[-300:]
    lower = said.lower()
    what = " ".join(result.argv[1:3])
    if "quotas not enabled" in lower or "transport endpoint is not connected" in lower:
        return QuotasDisabled(f"quotas are off on {path}: enable them with btrfs quota enable {path}")
    if "not a btrfs filesystem" in lower or "not a valid btrfs" in lower or "no btrfs on" in lower:
        return NotBtrfs(f"{path} is not on a BTRFS filesystem")
    if "not a btrfs subvolume" in lower:
        return NotSubvolume(f"{path} is an ordinary folder, not a BTRFS subvolume")
    if "no such file or directory" in lower or "can't access" in lower or "cannot access" in lower:
        return NotFound(f"{path} does not exist (btrfs {what}: {said})")
    return HostOpsError(f"btrfs {what} failed on {path}: {said}")


def is_btrfs(path: str) -> bool:
    """Whether ``path`` lies on a BTRFS filesystem (statfs magic, as ``stat -f`` reads it)."""
    result = run(["stat", "-f", "-c", "%t", "--", checked_path(path)], timeout=_TIMEOUT, check=False, env=_ENV)
    if result.returncode != 0:
        raise NotFound(f"{path} does not exist ({result.stderr.strip()})")
    return result.stdout.strip() == _BTRFS_MAGIC


def is_subvolume(path: str) -> bool:
    """Whether ``path`` is the root of a subvolume (or of the top level) rather than a folder."""
    if not is_btrfs(path):
        return False
    info = os.stat(path)
    return stat.S_ISDIR(info.st_mode) and info.st_ino == _SUBVOLUME_INODE


def _require_btrfs(path: str) -> None:
    if not is_btrfs(path):
        raise NotBtrfs(f"{path} is not on a BTRFS filesystem")


# --- subvolumes ------------------------------------------------------------------------------


def subvolume_create(path: str) -> None:
    """Make a subvolume at ``path``; its parent folder must exist on BTRFS."""
    _require_btrfs(os.path.dirname(checked_path(path)) or "/")
    _btrfs(["subvolume", "create", "--", path], path=path)


def ensure_subvolume(path: str) -> bool:
    """A subvolume at ``path``, made unless one is there; True if it was made. A plain folder
    there is an error (NotSubvolume), never silently accepted."""
    checked_path(path)
    if os.path.lexists(path):
        if not is_subvolume(path):
            raise NotSubvolume(f"{path} exists but is not a BTRFS subvolume")
        return False
    subvolume_create(path)
    return True


def subvolume_delete(path: str) -> None:
    """Delete the subvolume (or snapshot) at ``path``; its space is freed in the background."""
    _btrfs(["subvolume", "delete", "--", checked_path(path)], path=path)


def subvolume_list(mount: str) -> list[Subvolume]:
    """Every subvolume of the filesystem ``mount`` is on, snapshots included."""
    return parse_subvolume_list(_btrfs(["subvolume", "list", "--", checked_path(mount)], path=mount).stdout)


def subvolume_show(path: str) -> SubvolumeInfo:
    """Details of the subvolume at ``path``; NotSubvolume for a plain folder."""
    return parse_subvolume_show(_btrfs(["subvolume", "show", "--", checked_path(path)], path=path).stdout)


def snapshot_readonly(source: str, dest: str) -> None:
    """A read-only snapshot of subvolume ``source`` at ``dest`` (which must not exist yet)."""
    checked_path(source)
    if os.path.lexists(checked_path(dest)):
        raise HostOpsError(f"cannot snapshot {source} to {dest}: {dest} already exists")
    _btrfs(["subvolume", "snapshot", "-r", "--", source, dest], path=source)


def subvolume_sync(mount: str, *, timeout: float = _SYNC_TIMEOUT) -> None:
    """Wait until deleted subvolumes are fully cleaned up (their space and qgroups released)."""
    _btrfs(["subvolume", "sync", "--", checked_path(mount)], path=mount, timeout=timeout)


_LIST_LINE = re.compile(r"ID (\d+) gen (\d+) top level (\d+) path (.*)")


def parse_subvolume_list(text: str) -> list[Subvolume]:
    found = []
    for line in text.splitlines():
        match = _LIST_LINE.fullmatch(line.strip())
        if match:
            ident, gen, top, path = match.groups()
            found.append(Subvolume(int(ident), int(gen), int(top), path.removeprefix("<FS_TREE>/")))
    return found


def _fields(text: str) -> dict[str, str]:
    """``Key:<tabs>value`` lines into a dict (the first line of ``subvolume show`` is the path)."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key and not key[0].isdigit():
            pairs.setdefault(key.strip(), value.strip())
    return pairs


def _time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z").astimezone(UTC)
    except ValueError:
        return None


def _none_if_dash(value: str) -> str | None:
    return None if value in ("", "-") else value


def parse_subvolume_show(text: str) -> SubvolumeInfo:
    lines = text.splitlines()
    pairs = _fields(text)
    if not lines or "Subvolume ID" not in pairs:
        raise HostOpsError(f"unexpected output from btrfs subvolume show: {text[:200]!r}")
    marker = next((i for i, line in enumerate(lines) if line.strip() == "Snapshot(s):"), len(lines))
    return SubvolumeInfo(
        id=int(pairs["Subvolume ID"]),
        uuid=pairs.get("UUID", ""),
        parent_uuid=_none_if_dash(pairs.get("Parent UUID", "")),
        received_uuid=_none_if_dash(pairs.get("Received UUID", "")),
        created=_time(pairs.get("Creation time", "")),
        readonly="readonly" in pairs.get("Flags", "").split(),
        path=lines[0].strip(),
        name=pairs.get("Name", ""),
        generation=int(pairs.get("Generation", "0")),
        parent_id=int(pairs.get("Parent ID", "0")),
        top_level=int(pairs.get("Top level ID", "0")),
        snapshots=tuple(line.strip() for line in lines[marker + 1 :] if line.strip()),
    )


# --- quotas ----------------------------------------------------------------------------------


def quota_enable(mount: str) -> None:
    """Turn quotas on; the kernel then rescans in the background (see quota_rescan_status)."""
    _btrfs(["quota", "enable", checked_path(mount)], path=mount)


def quota_disable(mount: str) -> None:
    """Turn quotas off (all qgroups and their limits are dropped)."""
    _btrfs(["quota", "disable", checked_path(mount)], path=mount)


def quota_rescan(mount: str, *, wait: bool = True, timeout: float = _RESCAN_TIMEOUT) -> None:
    """Recount every qgroup. With ``wait`` block until done, at most ``timeout`` seconds: past it
    CommandTimeout is raised and the kernel carries on (poll quota_rescan_status). Without, only
    start it; one already running is left to finish."""
    checked_path(mount)
    try:
        _btrfs(["quota", "rescan", *(["-w"] if wait else []), "--", mount], path=mount, timeout=timeout)
    except CommandTimeout as exc:
        raise CommandTimeout(f"the quota rescan of {mount} ran past {timeout:g}s; it goes on in the kernel") from exc
    except HostOpsError as exc:
        if wait or "in progress" not in str(exc):
            raise


def quota_rescan_status(mount: str) -> RescanStatus:
    """Whether a quota rescan is running on the filesystem of ``mount``."""
    return parse_rescan_status(_btrfs(["quota", "rescan", "-s", "--", checked_path(mount)], path=mount).stdout)


def parse_rescan_status(text: str) -> RescanStatus:
    match = re.search(r"rescan operation running \(current key (-?\d+)\)", text)
    if match:
        return RescanStatus(running=True, current_key=int(match[1]))
    if "no rescan operation in progress" in text:
        return RescanStatus(running=False)
    raise HostOpsError(f"unexpected output from btrfs quota rescan -s: {text[:200]!r}")


def qgroup_show(mount: str, *, sync: bool = False) -> list[Qgroup]:
    """Every qgroup of the filesystem with usage and limits in bytes; QuotasDisabled when off.
    ``sync`` commits pending writes first, so just-written data is counted."""
    args = ["qgroup", "show", "--raw", "-r", "-e", *(["--sync"] if sync else []), "--", checked_path(mount)]
    return parse_qgroup_show(_btrfs(args, path=mount).stdout)


def _limit(value: str) -> int | None:
    return None if value == "none" else int(value)


def parse_qgroup_show(text: str) -> list[Qgroup]:
    """Rows of ``btrfs qgroup show --raw -r -e``: id, rfer, excl, max_rfer, max_excl, path."""
    found = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5 or not _QGROUP_ID.fullmatch(parts[0]):
            continue
        path = parts[5].strip() if len(parts) > 5 else ""
        found.append(
            Qgroup(
                qgroupid=parts[0],
                referenced=int(parts[1]),
                exclusive=int(parts[2]),
                max_referenced=_limit(parts[3]),
                max_exclusive=_limit(parts[4]),
                path="" if path in ("<toplevel>", "<stale>") else path,
                stale=path == "<stale>",
            )
        )
    return found


def qgroup_limit(path: str, size: int | None, *, exclusive: bool = False) -> None:
    """Limit the subvolume at ``path`` to ``size`` bytes (referenced, or exclusive when asked);
    None removes the limit. A write past it fails with EDQUOT.

    btrfs refuses to change the limit of a subvolume that is already over it when asked from
    inside that subvolume (the change itself needs space there), so it is asked from the parent
    folder where that is on the same mount."""
    checked_path(path)
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise ValueError(f"a quota limit is a positive number of bytes, not {size!r}")
    qgroupid = f"0/{subvolume_show(path).id}"
    args = ["qgroup", "limit", *(["-e"] if exclusive else []), "--", "none" if size is None else str(size), qgroupid]
    parent = os.path.dirname(path.rstrip("/")) or "/"
    if path.rstrip("/") and not _is_mount_point(path) and is_btrfs(parent):
        _btrfs([*args, parent], path=path)
    else:
        _btrfs([*args, path], path=path)


def _is_mount_point(path: str) -> bool:
    """Whether ``path`` is itself mounted (os.path.ismount mistakes every subvolume for one)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        points = {_unescape(line.split()[4]) for line in mountinfo if len(line.split()) > 4}
    return real in points


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)


def qgroup_clear_stale(mount: str, *, timeout: float = _SYNC_TIMEOUT) -> list[str]:
    """Drop the qgroups of deleted subvolumes; returns their ids. Waits (``timeout``) for the
    deletions to be cleaned up first: btrfs refuses (EBUSY) to drop a qgroup still in use."""
    before = {group.qgroupid for group in qgroup_show(mount) if group.stale}
    subvolume_sync(mount, timeout=timeout)
    after = {group.qgroupid for group in qgroup_show(mount) if group.stale}
    if after:
        _btrfs(["qgroup", "clear-stale", mount], path=mount)
    return sorted(before | after)


# --- filesystem ------------------------------------------------------------------------------


def filesystem_usage(mount: str) -> FsUsage:
    """Sizes, allocation and profiles of the filesystem ``mount`` is on, in bytes."""
    return parse_filesystem_usage(_btrfs(["filesystem", "usage", "-b", "--", checked_path(mount)], path=mount).stdout)


_CHUNK = re.compile(r"(Data|Metadata|System),(\S+): Size:(\d+), Used:(\d+)")


def parse_filesystem_usage(text: str) -> FsUsage:
    pairs = _fields(text)
    if "Device size" not in pairs:
        raise HostOpsError(f"unexpected output from btrfs filesystem usage: {text[:200]!r}")

    def number(key: str) -> int:
        return int(pairs.get(key, "0").split()[0])

    free_min = re.search(r"\(min: (\d+)\)", pairs.get("Free (estimated)", ""))
    chunks = tuple(Chunk(m[1], m[2], int(m[3]), int(m[4])) for m in _CHUNK.finditer(text))
    profile = {chunk.kind: chunk.profile for chunk in chunks}
    return FsUsage(
        size=number("Device size"),
        allocated=number("Device allocated"),
        unallocated=number("Device unallocated"),
        missing=number("Device missing"),
        used=number("Used"),
        free_estimated=number("Free (estimated)"),
        free_min=int(free_min[1]) if free_min else number("Free (estimated)"),
        data_ratio=float(pairs.get("Data ratio", "0")),
        metadata_ratio=float(pairs.get("Metadata ratio", "0")),
        data_profile=profile.get("Data", ""),
        metadata_profile=profile.get("Metadata", ""),
        system_profile=profile.get("System", ""),
        multiple_profiles=pairs.get("Multiple profiles", "no") != "no",
        chunks=chunks,
    )


def filesystem_show(mount_or_device: str) -> FsShow:
    """Label, UUID and devices of a filesystem, by a path on it or one of its devices."""
    target = checked_path(mount_or_device)
    return parse_filesystem_show(_btrfs(["filesystem", "show", "--raw", "--", target], path=target).stdout)


_LABEL = re.compile(r"Label: (?:'(.*)'|none)\s+uuid: ([0-9a-f-]{36})")
_DEVICE = re.compile(r"devid\s+(\d+) size (\d+) used (\d+) path\s*(.*)")
_TOTAL = re.compile(r"Total devices (\d+) FS bytes used (\d+)")


def parse_filesystem_show(text: str) -> FsShow:
    label = _LABEL.search(text)
    total = _TOTAL.search(text)
    if label is None or total is None:
        raise HostOpsError(f"unexpected output from btrfs filesystem show: {text[:200]!r}")
    devices = []
    for line in text.splitlines():
        match = _DEVICE.fullmatch(line.strip())
        if match:
            path = match[4].strip()
            devices.append(Device(int(match[1]), int(match[2]), int(match[3]), "" if path == "MISSING" else path))
    missing = "missing" in text.lower() or len(devices) < int(total[1])
    return FsShow(label[1], label[2], int(total[1]), int(total[2]), tuple(devices), missing)


def device_stats(mount: str) -> list[DeviceStats]:
    """Each device's error counters (all zero on a healthy filesystem)."""
    # -c: exit 64 when a counter is non-zero; the counters are printed all the same.
    result = _btrfs(["device", "stats", "-c", "--", checked_path(mount)], path=mount, ok=(0, 64))
    return parse_device_stats(result.stdout)


_STAT = re.compile(r"\[(.+)\]\.(\w+)\s+(\d+)")


def parse_device_stats(text: str) -> list[DeviceStats]:
    counters: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        match = _STAT.fullmatch(line.strip())
        if match:
            counters.setdefault(match[1], {})[match[2]] = int(match[3])
    names = ("write_io_errs", "read_io_errs", "flush_io_errs", "corruption_errs", "generation_errs")
    return [DeviceStats(device, *(values.get(name, 0) for name in names)) for device, values in counters.items()]


# --- scrub -----------------------------------------------------------------------------------


def scrub_start(mount: str) -> bool:
    """Start a scrub in the background; False if one is already running (it is left alone)."""
    try:
        _btrfs(["scrub", "start", "--", checked_path(mount)], path=mount)
    except HostOpsError as exc:
        if "already running" in str(exc):
            return False
        raise
    return True


def scrub_start_foreground(mount: str, *, timeout: float) -> ScrubStatus:
    """Scrub and wait for the result (at most ``timeout`` seconds, then the scrub is cancelled
    and CommandTimeout raised). Uncorrectable errors are in the status, not an exception."""
    checked_path(mount)
    try:
        # exit 3: uncorrectable errors found, which the status reports.
        result = _btrfs(["scrub", "start", "-B", "-R", "--", mount], path=mount, timeout=timeout, ok=(0, 3))
    except CommandTimeout:
        scrub_cancel(mount)
        raise
    return parse_scrub_status(result.stdout)


def scrub_status(mount: str) -> ScrubStatus:
    """The running or last scrub of the filesystem ``mount`` is on, summed over its devices."""
    return parse_scrub_status(_btrfs(["scrub", "status", "-R", "--", checked_path(mount)], path=mount).stdout)


def scrub_cancel(mount: str) -> bool:
    """Stop a running scrub; False when none was running."""
    try:
        _btrfs(["scrub", "cancel", "--", checked_path(mount)], path=mount)
    except HostOpsError as exc:
        if "not running" in str(exc):
            return False
        raise
    return True


def _duration(value: str) -> int:
    parts = [int(part) for part in re.findall(r"\d+", value)][-3:]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def _scrub_time(value: str) -> datetime | None:
    # btrfs prints ctime()-style local time; it runs with TZ=UTC.
    try:
        return datetime.strptime(" ".join(value.split()), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_scrub_status(text: str) -> ScrubStatus:
    pairs = _fields(text)
    uuid = pairs.get("UUID") or next(iter(re.findall(r"scrub \w+ for ([0-9a-f-]{36})", text)), "")
    if not uuid:
        raise HostOpsError(f"unexpected output from btrfs scrub status: {text[:200]!r}")
    counters = {key: int(value) for key, value in pairs.items() if re.fullmatch(r"[a-z_]+", key) and value.isdigit()}
    return ScrubStatus(
        uuid=uuid,
        status=pairs.get("Status", ""),
        started=_scrub_time(pairs.get("Scrub started", "") or pairs.get("Scrub resumed", "")),
        duration_s=_duration(pairs.get("Duration", "0")),
        data_bytes_scrubbed=counters.pop("data_bytes_scrubbed", 0),
        tree_bytes_scrubbed=counters.pop("tree_bytes_scrubbed", 0),
        counters=counters,
    )


# --- mkfs and mount --------------------------------------------------------------------------


def mkfs(
    devices: Sequence[str],
    *,
    data_profile: str,
    metadata_profile: str,
    label: str = "",
    force: bool = False,
    timeout: float = _MKFS_TIMEOUT,
) -> None:
    """A new BTRFS over ``devices`` (block devices). A device that holds a filesystem is refused
    unless ``force`` is passed, which erases it."""
    if isinstance(devices, str) or not devices:
        raise ValueError("mkfs takes a list of one or more devices")
    for profile in (data_profile, metadata_profile):
        if profile.lower() not in PROFILES:
            raise ValueError(f"{profile!r} is not a BTRFS profile ({', '.join(sorted(PROFILES))})")
    if len(label.encode()) > 255 or not label.isprintable() or label.startswith("-"):
        raise ValueError(f"{label!r} is not a usable filesystem label")
    for device in devices:
        _block_device(device)
    argv = ["mkfs.btrfs", "-q", "-d", data_profile.lower(), "-m", metadata_profile.lower()]
    argv += (["-L", label] if label else []) + (["-f"] if force else []) + ["--", *devices]
    result = run(argv, timeout=timeout, check=False, env=_ENV)
    if result.returncode != 0:
        said = " ".join(line.strip() for line in result.stderr.splitlines() if line.startswith("ERROR"))
        hint = " (pass force=True to erase it)" if "existing filesystem" in said else ""
        raise HostOpsError(f"mkfs.btrfs on {', '.join(devices)} failed: {said or result.stderr.strip()}{hint}")


def mount(device: str, target: str, options: Sequence[str] = ()) -> None:
    """Mount the BTRFS on ``device`` at folder ``target``. DeviceMissing when a device of the
    filesystem is absent (mount with the ``degraded`` option to go on without it)."""
    checked_path(device)
    checked_path(target)
    for option in options:
        if not _OPTION.fullmatch(option):
            raise ValueError(f"{option!r} is not a mount option")
    argv = ["mount", "-t", "btrfs", *(["-o", ",".join(options)] if options else []), "--", device, target]
    result = run(argv, timeout=_TIMEOUT, check=False, env=_ENV)
    if result.returncode == 0:
        return
    try:
        missing = filesystem_show(device).missing
    except HostOpsError:
        missing = False
    if missing and "degraded" not in options:
        raise DeviceMissing(
            f"cannot mount {device}: a device of its BTRFS filesystem is missing; "
            "replace it, or mount with the degraded option to reach the data"
        )
    raise HostOpsError(f"cannot mount {device} at {target}: {result.stderr.strip()}")


def umount(target: str) -> None:
    """Unmount the filesystem mounted at ``target``."""
    result = run(["umount", "--", checked_path(target)], timeout=_TIMEOUT, check=False, env=_ENV)
    if result.returncode != 0:
        raise HostOpsError(f"cannot unmount {target}: {result.stderr.strip()}")
