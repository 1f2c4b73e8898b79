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

# Callers need only hostops.btrfs: it re-exports the dataclasses and parsers.
from hostops.btrfs_parse import Chunk as Chunk
from hostops.btrfs_parse import Device as Device
from hostops.btrfs_parse import (
    DeviceStats,
    FsShow,
    FsUsage,
    Qgroup,
    RescanStatus,
    ScrubStatus,
    Subvolume,
    SubvolumeInfo,
    parse_device_stats,
    parse_filesystem_show,
    parse_filesystem_usage,
    parse_qgroup_show,
    parse_rescan_status,
    parse_scrub_status,
    parse_subvolume_list,
    parse_subvolume_show,
)
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


def _btrfs(
    args: Sequence[str], *, path: str, timeout: float = _TIMEOUT, ok: Sequence[int] = (0,), daemonizes: bool = False
) -> RunResult:
    """Run ``btrfs args``; a status outside ``ok`` becomes the domain error its stderr names.
    Paths are absolute by then, so none passes for an option even where btrfs takes no ``--``
    (quota enable/disable, qgroup clear-stale in 6.2)."""
    result = run(["btrfs", *args], timeout=timeout, check=False, env=_ENV, daemonizes=daemonizes)
    if result.returncode not in ok:
        raise _error(result, path)
    return result


def _error(result: RunResult, path: str) -> HostOpsError:
    said = " ".join(line.strip() for line in result.stderr.strip().splitlines()[-2:]) or result.stdout.strip()[-300:]
    lower = said.lower()
    what = " ".join(result.argv[1:3])
    if re.search(r"quotas? not enabled|transport endpoint is not connected", lower):  # ENOTCONN: quotas off
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


def qgroup_show(mount: str, *, sync: bool = False) -> list[Qgroup]:
    """Every qgroup of the filesystem with usage and limits in bytes; QuotasDisabled when off.
    ``sync`` commits pending writes first, so just-written data is counted."""
    args = ["qgroup", "show", "--raw", "-r", "-e", *(["--sync"] if sync else []), "--", checked_path(mount)]
    return parse_qgroup_show(_btrfs(args, path=mount).stdout)


def qgroup_report(mount: str, *, timeout: float = _TIMEOUT) -> tuple[list[Qgroup], bool]:
    """Every qgroup, and whether btrfs says its numbers are inconsistent (after quotas were
    turned on over existing data, or an assignment without a rescan): then start a rescan
    (quota_rescan with wait=False) and treat the figures as approximate until it ends."""
    args = ["qgroup", "show", "--raw", "-r", "-e", "--", checked_path(mount)]
    result = _btrfs(args, path=mount, timeout=timeout)
    return parse_qgroup_show(result.stdout), "inconsistent" in result.stderr.lower()


def qgroup_limit(path: str, size: int | None, *, exclusive: bool = False) -> None:
    """Limit the subvolume at ``path`` to ``size`` bytes (referenced, or exclusive when asked);
    None removes the limit. A write past it fails with EDQUOT.

    btrfs refuses to change the limit of a subvolume that is already over it when asked from
    inside that subvolume (the change itself needs space there), so it is asked from the parent
    folder where that is on the same mount."""
    checked_path(path)
    if size is not None and (type(size) is not int or size <= 0):
        raise ValueError(f"a quota limit is a positive number of bytes, not {size!r}")
    qgroupid = f"0/{subvolume_show(path).id}"
    args = ["qgroup", "limit", *(["-e"] if exclusive else []), "--", "none" if size is None else str(size), qgroupid]
    parent = os.path.dirname(path.rstrip("/")) or "/"
    if path.rstrip("/") and not _is_mount_point(path):  # then the parent is on the same filesystem
        _btrfs([*args, parent], path=path)
    else:
        try:
            _btrfs([*args, path], path=path)
        except HostOpsError as exc:
            if "quota exceeded" not in str(exc).lower():
                raise
            raise HostOpsError(
                f"btrfs refuses to change the limit of {path} from inside it while it is over that limit: "
                f"run btrfs qgroup limit {args[-2]} {qgroupid} on a folder of the same filesystem outside it"
            ) from exc


_GROUP_ID = re.compile(r"[1-7]/[0-9]{1,15}")  # a qgroup above the subvolumes' level 0


def _group_id(qgroupid: str) -> str:
    if not isinstance(qgroupid, str) or not _GROUP_ID.fullmatch(qgroupid):
        raise ValueError(f"{qgroupid!r} is not the id of a qgroup of level 1 or more (like 1/1000)")
    return qgroupid


def subvolume_qgroup(path: str) -> str:
    """The level-0 qgroup of the subvolume at ``path`` ("0/<subvolume id>")."""
    return f"0/{subvolume_show(path).id}"


def qgroup_ensure_group(mount: str, qgroupid: str) -> bool:
    """A qgroup ``qgroupid`` (level 1 or more: a group of subvolumes) on the filesystem of
    ``mount``; True if it was made, False if it was there."""
    args = ["qgroup", "create", _group_id(qgroupid), checked_path(mount)]
    result = _btrfs(args, path=mount, ok=(0, 1))
    if result.returncode == 0:
        return True
    if "file exists" in result.stderr.lower():
        return False
    raise _error(result, mount)


def qgroup_ensure_member(mount: str, child: str, parent: str) -> bool:
    """``child`` (a subvolume's "0/<id>") counted in group ``parent``; True if newly assigned.
    btrfs-progs rescans when the assignment leaves the numbers inconsistent, so the group's
    usage includes what the subvolume already held."""
    if not re.fullmatch(r"0/[0-9]{1,15}", child):
        raise ValueError(f"{child!r} is not a subvolume's qgroup (like 0/257)")
    result = _btrfs(["qgroup", "assign", child, _group_id(parent), checked_path(mount)], path=mount, ok=(0, 1))
    if result.returncode == 0:
        return True
    if "file exists" in result.stderr.lower():
        return False
    raise _error(result, mount)


def qgroup_destroy_group(mount: str, qgroupid: str) -> bool:
    """Remove group ``qgroupid``; False if there was none. Refused (HostOpsError) while
    subvolumes are still assigned to it."""
    result = _btrfs(["qgroup", "destroy", _group_id(qgroupid), checked_path(mount)], path=mount, ok=(0, 1))
    if result.returncode == 0:
        return True
    lower = result.stderr.lower()
    if "no such file" in lower or "not found" in lower or "invalid argument" in lower:
        return False
    if "busy" in lower:
        raise HostOpsError(f"the qgroup {qgroupid} on {mount} still has subvolumes in it; delete them first")
    raise _error(result, mount)


def qgroup_limit_group(mount: str, qgroupid: str, size: int | None) -> None:
    """Limit what the subvolumes of group ``qgroupid`` reference together to ``size`` bytes
    (None: no limit). A write past it fails with EDQUOT in any of them."""
    if size is not None and (type(size) is not int or size <= 0):
        raise ValueError(f"a quota limit is a positive number of bytes, not {size!r}")
    limit = "none" if size is None else str(size)
    _btrfs(["qgroup", "limit", "--", limit, _group_id(qgroupid), checked_path(mount)], path=mount)


def _is_mount_point(path: str) -> bool:
    """Whether ``path`` is itself mounted (os.path.ismount mistakes every subvolume for one)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        points = {_unescape(line.split()[4]) for line in mountinfo if len(line.split()) > 4}
    return real in points


def mount_point_of(path: str) -> str:
    """The mount point ``path`` lies under (the longest one that holds it)."""
    real = os.path.realpath(checked_path(path))
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        points = [_unescape(line.split()[4]) for line in mountinfo if len(line.split()) > 4]
    holding = [point for point in points if real == point or real.startswith(point.rstrip("/") + "/")]
    return max(holding, key=len, default="/")


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)


_CLEAR_STALE_TRIES = 3


def qgroup_clear_stale(mount: str, *, timeout: float = _SYNC_TIMEOUT) -> list[str]:
    """Drop the qgroups of deleted subvolumes; returns their ids. Waits (``timeout``) for the
    deletions to be cleaned up first: btrfs refuses (EBUSY) to drop a qgroup still in use.
    (Kernels since about 6.10 drop an emptied subvolume's qgroup themselves at that point.)"""
    stale = [group.qgroupid for group in qgroup_show(mount) if group.stale]
    # A commit now hands the deleted subvolumes to the cleaner, instead of at the next periodic
    # commit (30 s by default).
    _btrfs(["filesystem", "sync", "--", mount], path=mount)
    subvolume_sync(mount, timeout=timeout)
    for attempt in range(1, _CLEAR_STALE_TRIES + 1):
        try:
            _btrfs(["qgroup", "clear-stale", mount], path=mount)
            break
        except NotFound as exc:
            # The kernel dropped a stale qgroup itself between btrfs listing the stale ones and
            # deleting it (kernels since about 6.10 do, once the cleaner is done with the
            # subvolume; seen in CI): that one is gone as asked, and a new pass does the rest.
            if "cannot delete qgroup" not in str(exc) or attempt == _CLEAR_STALE_TRIES:
                raise
    left = [group.qgroupid for group in qgroup_show(mount) if group.stale]
    if left:
        raise HostOpsError(f"the qgroups {', '.join(left)} on {mount} are still in use; try again later")
    return stale


# --- filesystem ------------------------------------------------------------------------------


def filesystem_usage(mount: str) -> FsUsage:
    """Sizes, allocation and profiles of the filesystem ``mount`` is on, in bytes."""
    return parse_filesystem_usage(_btrfs(["filesystem", "usage", "-b", "--", checked_path(mount)], path=mount).stdout)


def filesystem_show(mount_or_device: str) -> FsShow:
    """Label, UUID and devices of a filesystem, by a path on it or one of its devices."""
    target = checked_path(mount_or_device)
    if os.path.isdir(target) and not _is_mount_point(target):
        target = mount_point_of(target)  # btrfs shows a filesystem by its mount point only
    return parse_filesystem_show(_btrfs(["filesystem", "show", "--raw", "--", target], path=target).stdout)


def device_stats(mount: str) -> list[DeviceStats]:
    """Each device's error counters (all zero on a healthy filesystem)."""
    # -c: exit 64 when a counter is non-zero; the counters are printed all the same.
    result = _btrfs(["device", "stats", "-c", "--", checked_path(mount)], path=mount, ok=(0, 64))
    return parse_device_stats(result.stdout)


# --- scrub -----------------------------------------------------------------------------------


def scrub_start(mount: str) -> bool:
    """Start a scrub in the background; False if one is already running (it is left alone).
    Returns at once: the background btrfs process that runs the scrub keeps the output it
    inherited, so it is not waited for (run's ``daemonizes``)."""
    checked_path(mount)
    # btrfs 6.2 says "Scrub is already running." first and two lines of advice after it.
    result = _btrfs(["scrub", "start", "--", mount], path=mount, daemonizes=True, ok=range(256))
    if result.returncode == 0:
        return True
    if "already running" in result.stderr.lower():
        return False
    raise _error(result, mount)


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
        if not _OPTION.fullmatch(option) or ".." in option.split("/"):
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
