"""The host's disks, and a BTRFS array planned on them: detect, propose, show the exact commands,
refuse dangerous targets, and apply only after an explicit confirmation.

``parse_lsblk``, ``parse_wipefs``, ``in_use``, ``propose`` and ``render`` are pure; ``list_disks``,
``bcache_supported`` and ``apply`` read or change the host. bcache is never set up here: where
the kernel has it, the plan only names the SSD that could cache the array.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import stat
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hostops.errors import CommandFailed, CommandTimeout, HostOpsError
from hostops.run import run

# MOUNTPOINTS (every mount of a device, not just the first) needs util-linux 2.37; Debian 12 has 2.38.
LSBLK_COLUMNS = "NAME,PATH,SIZE,ROTA,MODEL,SERIAL,TRAN,TYPE,MOUNTPOINTS,FSTYPE,RM,RO,PKNAME,UUID"
SUBVOLUMES = ("homes", "datasets", "scratch", "portal")
_DEVICE = re.compile(r"^/dev/[a-z0-9/_-]+$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_TARGET = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
_NOT_DISKS = ("zram", "ram", "fd", "sr")  # RAM disks, floppies, optical drives
_PARTITION_TABLES = {"gpt", "dos", "PMBR", "atari", "sun", "sgi", "bsd", "mac"}
# The profiles propose may be asked for instead of its choice by count (single is one disk only).
PROFILE_MIN_DISKS = {"raid10": 4, "raid1": 2}
_TIMEOUTS = {"wipefs": 60, "mkfs.btrfs": 900, "mkdir": 30, "mount": 120, "btrfs": 120}


class DiskRefused(HostOpsError):
    """The plan was not applied: a check failed before any command ran."""


class DiskSetupFailed(HostOpsError):
    """A command of the plan failed; the ones before it ran, the ones after it did not."""


@dataclass(frozen=True)
class Disk:
    """A block device as lsblk sees it, with the signatures wipefs finds on it (list_disks only)."""

    name: str
    path: str
    size: int  # bytes
    rotational: bool
    model: str
    serial: str
    transport: str  # "nvme", "sata", "usb", ... or "" (virtio, loop)
    type: str  # "disk", "loop", "part", "lvm", "raid1", "crypt", ...
    mountpoints: tuple[str, ...] = ()  # "[SWAP]" for active swap
    fstype: str | None = None
    children: tuple[Disk, ...] = ()
    removable: bool = False
    read_only: bool = False
    uuid: str | None = None
    signatures: tuple[str, ...] = ()  # what `wipefs -a` would erase: "btrfs", "gpt", "linux_raid_member"
    probe_error: str = ""


@dataclass(frozen=True)
class Plan:
    """A BTRFS array proposed on the free disks. ``commands`` are exact argv lists; ``apply``
    rebuilds them from the other fields and refuses a plan whose commands were changed."""

    profile: str  # "raid10", "raid1", "single", or "none" (nothing to build)
    devices: tuple[str, ...]
    usable_bytes: int
    commands: list[list[str]]
    warnings: list[str]
    refused: dict[str, list[str]]  # disks left out, with the reasons
    needs_confirmation: dict[str, list[str]] = field(default_factory=dict)  # old signatures to wipe
    sizes: dict[str, int] = field(default_factory=dict)
    wipe: dict[str, tuple[str, ...]] = field(default_factory=dict)  # disk -> partitions to wipe first
    label: str = "data"
    mount_target: str = "/srv"
    cache: tuple[str, ...] = ()  # SSDs that could cache the array with bcache (never set up here)

    @property
    def confirmation(self) -> str:
        """What the admin types to confirm: ``wipe sdb sdc sdd sde``."""
        return "wipe " + " ".join(path.removeprefix("/dev/") for path in self.devices)


# --- parsing ------------------------------------------------------------------------------


def parse_lsblk(json_text: str) -> list[Disk]:
    """The devices of ``lsblk --json --bytes --output LSBLK_COLUMNS``, children nested."""
    return [_disk(entry) for entry in json.loads(json_text).get("blockdevices", [])]


def _disk(entry: dict[str, Any]) -> Disk:
    return Disk(
        name=str(entry["name"]),
        path=str(entry.get("path") or f"/dev/{entry['name']}"),
        size=int(entry.get("size") or 0),
        rotational=_flag(entry.get("rota")),
        model=(entry.get("model") or "").strip(),
        serial=(entry.get("serial") or "").strip(),
        transport=entry.get("tran") or "",
        type=entry.get("type") or "",
        mountpoints=tuple(point for point in entry.get("mountpoints") or () if point),
        fstype=entry.get("fstype") or None,
        children=tuple(_disk(child) for child in entry.get("children", ())),
        removable=_flag(entry.get("rm")),
        read_only=_flag(entry.get("ro")),
        uuid=entry.get("uuid") or None,
    )


def _flag(value: object) -> bool:
    """lsblk 2.38 writes JSON booleans; older releases wrote "0"/"1"."""
    return value in (True, 1, "1", "true")


def parse_wipefs(json_text: str) -> list[dict[str, str]]:
    """The signatures of ``wipefs --json <dev>`` (type, uuid, label, offset); [] for none."""
    if not json_text.strip():
        return []
    return [{k: str(v) for k, v in sig.items() if v is not None} for sig in json.loads(json_text)["signatures"]]


def _walk(disk: Disk) -> Iterator[Disk]:
    yield disk
    for child in disk.children:
        yield from _walk(child)


# --- reading the host ---------------------------------------------------------------------


def list_disks() -> list[Disk]:
    """Every block device, with the signatures wipefs finds (lsblk's FSTYPE needs udev, which a
    container or a minimal host lacks; wipefs reads the device itself)."""
    result = run(["lsblk", "--json", "--bytes", "--output", LSBLK_COLUMNS], timeout=30, env={"LC_ALL": "C"})
    return [_probed(disk) for disk in parse_lsblk(result.stdout)]


def _probed(disk: Disk) -> Disk:
    children = tuple(_probed(child) for child in disk.children)
    if disk.type not in ("disk", "loop", "part") or disk.size == 0:
        return replace(disk, children=children)
    probe = run(["wipefs", "--json", "--", disk.path], timeout=30, check=False, env={"LC_ALL": "C"})
    if probe.returncode != 0:
        error = probe.stderr.strip().splitlines()[-1:] or [f"wipefs exited {probe.returncode}"]
        return replace(disk, children=children, probe_error=error[0])
    found = parse_wipefs(probe.stdout)
    kinds = tuple(sig["type"] for sig in found)
    content = [sig for sig in found if sig["type"] not in _PARTITION_TABLES]
    fstype = disk.fstype or (content[0]["type"] if content else None)
    uuid = disk.uuid or (content[0].get("uuid") if content else None)
    return replace(disk, children=children, signatures=kinds, fstype=fstype, uuid=uuid)


def bcache_supported(root: Path = Path("/")) -> bool:
    """Whether this kernel has bcache: loaded (/sys/fs/bcache, /sys/module/bcache), built in, or
    installed as a module under /lib/modules/<release>."""
    if (root / "sys/fs/bcache").exists() or (root / "sys/module/bcache").exists():
        return True
    modules = root / "lib/modules" / platform.release()
    builtin = modules / "modules.builtin"
    if builtin.is_file() and "/bcache.ko" in builtin.read_text(errors="replace"):
        return True
    return any((modules / "kernel/drivers/md/bcache").glob("bcache.ko*"))


# --- what is in use -----------------------------------------------------------------------


def in_use(disk: Disk, among: Sequence[Disk] = ()) -> list[str]:
    """Why ``disk`` must not be wiped, in words: the hard reasons (mounted, root, swap, held by
    RAID/LVM/crypt, a member of a mounted btrfs: never confirmable), then the old signatures (an
    admin may confirm those by name). ``among`` (every disk) finds a mounted btrfs's other members."""
    return _hard_reasons(disk, among) + _signature_reasons(disk)


def _hard_reasons(disk: Disk, among: Sequence[Disk]) -> list[str]:
    reasons = []
    for part in _walk(disk):
        where = "" if part is disk else f"{part.name} "
        for point in part.mountpoints:
            if point == "[SWAP]":
                reasons.append(f"{where}is used as swap")
            elif point == "/":
                reasons.append(f"{where}holds the root filesystem (mounted at /)")
            else:
                reasons.append(f"{where}mounted at {point}")
        if part is not disk and part.type != "part":
            reasons.append(f"held by {part.name} ({part.type}): an active RAID, LVM or encrypted volume")
    reasons += _mounted_btrfs_member(disk, among)
    if disk.read_only:
        reasons.append("is read-only")
    for part in _walk(disk):
        if part.probe_error:
            reasons.append(f"{part.name}: its signatures could not be read ({part.probe_error})")
    return reasons


def _mounted_btrfs_member(disk: Disk, among: Sequence[Disk]) -> list[str]:
    """The kernel lists a multi-device btrfs's mount on one member only; the others share its UUID."""
    members = [part for part in _walk(disk) if part.fstype == "btrfs" and part.uuid and not part.mountpoints]
    for part in members:
        for other in (other for top in among for other in _walk(top)):
            if other.path != part.path and other.uuid == part.uuid and other.mountpoints:
                where = "" if part is disk else f"{part.name} "
                return [f"{where}member of the btrfs filesystem mounted at {other.mountpoints[0]} (with {other.name})"]
    return []


def _signature_reasons(disk: Disk) -> list[str]:
    reasons = []
    for part in _walk(disk):
        where = "" if part is disk else f"partition {part.name} "
        if part.fstype:
            reasons.append(f"{where}holds an old {part.fstype} signature (a filesystem, RAID or LVM)")
        tables = [kind for kind in part.signatures if kind in _PARTITION_TABLES]
        if tables:
            reasons.append(f"{where}has a partition table ({', '.join(sorted(set(tables)))})")
    return reasons


# --- the proposal -------------------------------------------------------------------------


def propose(
    disks: Sequence[Disk],
    *,
    include_loop: bool = False,
    bcache_available: bool = False,
    label: str = "data",
    mount_target: str = "/srv",
    profile: str | None = None,
    only: Collection[str] | None = None,
) -> Plan:
    """A BTRFS array on the free HDDs (4+ raid10, 2-3 raid1, 1 single with metadata dup), the OS
    disk and anything in use left alone, and the exact commands. Disks that merely hold old
    signatures are in the array but listed in ``needs_confirmation``: apply wipes them only if the
    admin confirms each one by name. Where no HDD is free, the free SSDs make the array.
    ``profile`` overrides the choice by count (raid1 on four disks, say); one the free disks are
    too few for is refused. ``only`` (paths) limits the array to the disks an admin chose; the
    others still count for what is in use (a mounted btrfs's other members)."""
    _check_label(label)
    _check_target(mount_target)
    if profile is not None and profile not in PROFILE_MIN_DISKS:
        raise DiskRefused(f"{profile!r} is not a profile; choose {', '.join(PROFILE_MIN_DISKS)}.")
    refused: dict[str, list[str]] = {}
    hdds, ssds = [], []
    for disk in disks:
        if only is not None and disk.path not in only:
            continue
        reasons = _left_out(disk, disks, include_loop=include_loop)
        if reasons is None:
            continue
        if reasons:
            refused[disk.path] = reasons
        elif disk.rotational or disk.type == "loop":
            hdds.append(disk)
        else:
            ssds.append(disk)
    warnings, cache = _cache_notes(hdds, ssds, refused, bcache_available=bcache_available)
    chosen = hdds or ssds
    if chosen is ssds and ssds:
        warnings.append("No free HDD: the array is made of the free SSDs.")
    if profile is not None and len(chosen) < PROFILE_MIN_DISKS[profile]:
        raise DiskRefused(
            f"{profile} needs at least {PROFILE_MIN_DISKS[profile]} free disks; {len(chosen)} are free to use."
        )
    return _plan(chosen, refused, warnings, cache, profile, label=label, mount_target=mount_target)


def left_out(disk: Disk, among: Sequence[Disk], *, include_loop: bool = False) -> list[str] | None:
    """Why propose keeps ``disk`` out of any array, in words: [] when it may be in one, None when
    it is no disk worth naming (a RAM disk, a loop device unless ``include_loop``)."""
    return _left_out(disk, among, include_loop=include_loop)


def _left_out(disk: Disk, disks: Sequence[Disk], *, include_loop: bool) -> list[str] | None:
    """None: not a candidate worth naming (loops, RAM disks, CD drives); []: usable; else why not."""
    if disk.type not in ("disk", "loop") or disk.name.startswith(_NOT_DISKS):
        return None
    if disk.type == "loop" and not include_loop:  # snaps and images: not disks worth naming
        return None
    if disk.size == 0:
        return ["is empty (size 0)"]
    hard = _hard_reasons(disk, disks)
    if hard:
        return hard
    if disk.transport == "usb" or disk.removable:
        return ["is a removable or USB disk: not for the array"]
    return []


def _cache_notes(
    hdds: list[Disk], ssds: list[Disk], refused: dict[str, list[str]], *, bcache_available: bool
) -> tuple[list[str], tuple[str, ...]]:
    if not bcache_available:
        notes = ["bcache: not available in this kernel; the plan leaves it out."]
        if hdds:
            for ssd in ssds:
                refused[ssd.path] = ["an SSD, left out of the HDD array (no bcache to make it a cache)"]
        return notes, ()
    if not hdds or not ssds:
        return ["bcache: available, but there is no free SSD beside free HDDs to cache them."], ()
    for ssd in ssds:
        refused[ssd.path] = ["an SSD that could cache the array with bcache (plan only, not set up here)"]
    names = ", ".join(ssd.path for ssd in ssds)
    notes = [f"bcache: {names} could cache the HDDs; this plan does not set bcache up (plan only)."]
    return notes, tuple(ssd.path for ssd in ssds)


def _plan(
    chosen: list[Disk],
    refused: dict[str, list[str]],
    warnings: list[str],
    cache: tuple[str, ...],
    chosen_profile: str | None,
    **where: str,
) -> Plan:
    profile = chosen_profile or _profile(len(chosen))
    devices = tuple(disk.path for disk in chosen)
    sizes = {disk.path: disk.size for disk in chosen}
    needs = {disk.path: _signature_reasons(disk) for disk in chosen if _signature_reasons(disk)}
    wipe = {disk.path: _wipe_targets(disk) for disk in chosen if disk.path in needs}
    warnings = warnings + _profile_notes(profile, chosen)
    for path, reasons in needs.items():
        warnings.append(f"{path} {'; '.join(reasons)}: it is wiped only if you confirm {path} by name.")
    usable = usable_bytes(profile, list(sizes.values()))
    plan = Plan(profile, devices, usable, [], warnings, refused, needs, sizes, wipe, cache=cache, **where)
    return replace(plan, commands=_commands(plan))


def _profile(count: int) -> str:
    return "raid10" if count >= 4 else {0: "none", 1: "single"}.get(count, "raid1")


def _profile_notes(profile: str, chosen: list[Disk]) -> list[str]:
    notes = []
    if profile == "none":
        notes.append("No free disk for an array: nothing to do.")
    if profile == "raid10" and len(chosen) % 2:
        notes.append(
            f"{len(chosen)} disks: btrfs raid10 takes any number from 4 and uses all of them "
            "(it spreads each chunk's stripes over the disks with the most free space)."
        )
    if profile == "single":
        notes.append("One disk: data single, metadata dup. A failed disk loses everything; back it up.")
    if len({disk.size for disk in chosen}) > 1:
        notes.append("The disks differ in size: the usable space follows btrfs's allocator, not half the total.")
    return notes


def usable_bytes(profile: str, sizes: Sequence[int]) -> int:
    """Data space btrfs can allocate (before metadata). Each raid1 chunk is on 2 disks, each raid10
    chunk on at least 4, in equal parts: so no disk can hold more than 1/2 (raid1) or 1/4 (raid10)
    of all the raw space used, and the usable space is half of that (raid1: min(total/2, total -
    largest), the rule btrfs's calculator gives)."""
    if profile == "single":
        return sum(sizes)
    width = {"raid1": 2, "raid10": 4}.get(profile, 0)
    if not width or len(sizes) < width:
        return 0
    ordered = sorted(sizes, reverse=True)
    for capped in range(width):  # the `capped` largest disks are only partly used
        raw = sum(ordered[capped:]) * width // (width - capped)
        if all(size * width >= raw for size in ordered[:capped]) and ordered[capped] * width <= raw:
            return raw // 2
    return 0


def _wipe_targets(disk: Disk) -> tuple[str, ...]:
    """Partitions with a signature, wiped before the disk's own partition table goes."""
    return tuple(part.path for part in _walk(disk) if part is not disk and (part.fstype or part.signatures))


def _commands(plan: Plan) -> list[list[str]]:
    if plan.profile == "none":
        return []
    commands = []
    for disk in plan.devices:
        if disk in plan.wipe:
            commands += [["wipefs", "-a", part] for part in plan.wipe[disk]]
            commands.append(["wipefs", "-a", disk])
    data, metadata = (plan.profile, plan.profile) if plan.profile != "single" else ("single", "dup")
    target = plan.mount_target
    commands.append(["mkfs.btrfs", "-L", plan.label, "-d", data, "-m", metadata, *plan.devices])
    commands.append(["mkdir", "-p", target])
    commands.append(["mount", "-t", "btrfs", plan.devices[0], target])
    commands.append(["btrfs", "quota", "enable", target])
    commands += [["btrfs", "subvolume", "create", f"{target}/{name}"] for name in SUBVOLUMES]
    return commands


def render(plan: Plan) -> str:
    """The plan as a sysadmin would read and type it: notes as comments, one command a line."""
    lines = [f"# {_summary(plan)}"]
    lines += [f"# left alone: {path}: {'; '.join(reasons)}" for path, reasons in plan.refused.items()]
    lines += [f"# {warning}" for warning in plan.warnings]
    lines += [shlex.join(argv) for argv in plan.commands]
    if plan.commands:
        lines.append(f"# then add to /etc/fstab: LABEL={plan.label} {plan.mount_target} btrfs defaults 0 0")
    return "\n".join(lines) + "\n"


def _summary(plan: Plan) -> str:
    if plan.profile == "none":
        return "No array: no free disk."
    if plan.usable_bytes >= 10**12:
        usable = f"{plan.usable_bytes / 1e12:.1f} TB ({plan.usable_bytes / 2**40:.1f} TiB)"
    else:  # small disks (test loops, a spare SSD): "0.0 TB" would say nothing
        usable = f"{plan.usable_bytes / 1e9:.1f} GB ({plan.usable_bytes / 2**30:.1f} GiB)"
    return f"btrfs {plan.profile} over {len(plan.devices)} disks, about {usable} usable"


# --- applying -----------------------------------------------------------------------------


def apply(
    plan: Plan,
    *,
    confirmed_disks: Iterable[str],
    typed_confirmation: str,
    expected_confirmation: str,
    on_output: Callable[[str], None],
) -> None:
    """Run the plan's commands, after checking again (lsblk, wipefs) that each disk is present,
    the same size, and free: a disk that holds an old signature must be in ``confirmed_disks``
    (by path or name); one that is mounted or held is refused even so. Each command's output goes
    to ``on_output`` once it ends; the first failure stops the run with DiskSetupFailed."""
    if not expected_confirmation or typed_confirmation != expected_confirmation:
        raise DiskRefused(f"The confirmation does not match: type {expected_confirmation!r}. Nothing was run.")
    if plan.profile == "none":
        raise DiskRefused("The plan has no disk to make an array of. Nothing was run.")
    confirmed = {name if name.startswith("/dev/") else f"/dev/{name}" for name in confirmed_disks}
    stray = sorted(confirmed - set(plan.devices))
    if stray:
        raise DiskRefused(f"{', '.join(stray)} is not in the plan; confirm only its disks. Nothing was run.")
    _check_plan(plan)
    _recheck(plan, confirmed, list_disks())
    _check_target_free(plan.mount_target)
    for argv in plan.commands:
        _run_step(argv, on_output)


def _check_plan(plan: Plan) -> None:
    """Every path valid, and the commands exactly those the plan's fields give."""
    _check_label(plan.label)
    _check_target(plan.mount_target)
    if plan.commands != _commands(plan):
        raise DiskRefused("The plan's commands do not match its disks; make the plan again. Nothing was run.")
    for path in [*plan.devices, *(part for parts in plan.wipe.values() for part in parts)]:
        _check_device(path)


def _recheck(plan: Plan, confirmed: set[str], disks: list[Disk]) -> None:
    found = {disk.path: disk for disk in disks}
    problems = []
    for path in plan.devices:
        disk = found.get(path)
        if disk is None or disk.type not in ("disk", "loop"):
            problems.append(f"{path} is not among the disks any more")
            continue
        if disk.size != plan.sizes.get(path):
            problems.append(f"{path} changed size since the plan was made")
        problems += [f"{path} {reason}" for reason in _hard_reasons(disk, disks)]
        signatures = _signature_reasons(disk)
        if signatures and path not in confirmed:
            problems.append(f"{path} {'; '.join(signatures)}: confirm {path} by name to wipe it")
        elif signatures and path not in plan.needs_confirmation:
            problems.append(f"{path} gained a signature since the plan was made; make the plan again")
    if problems:
        raise DiskRefused("Refused, nothing was run: " + "; ".join(problems) + ".")


def _run_step(argv: list[str], on_output: Callable[[str], None]) -> None:
    command = shlex.join(argv)
    on_output(f"$ {command}")
    try:
        result = run(argv, timeout=_TIMEOUTS[argv[0]], env={"LC_ALL": "C"})
    except CommandFailed as exc:
        for line in (exc.stdout + exc.stderr).splitlines():
            on_output(line)
        tail = (exc.stderr or exc.stdout).strip().splitlines()[-1:] or [""]
        raise DiskSetupFailed(
            f"`{command}` failed (exit {exc.returncode}): {tail[0]} The commands before it ran, "
            "the rest did not; check the disks (lsblk, btrfs filesystem show) before trying again."
        ) from exc
    except CommandTimeout as exc:
        raise DiskSetupFailed(f"`{command}` ran past its time and was killed; the rest did not run.") from exc
    for line in (result.stdout + result.stderr).splitlines():
        on_output(line)


def _check_target_free(target: str) -> None:
    """Mounting over a mount point or a folder with files would hide what is there."""
    if os.path.ismount(target):
        raise DiskRefused(f"{target} is a mount point already; pick another target. Nothing was run.")
    if os.path.isdir(target) and any(os.scandir(target)):
        raise DiskRefused(f"{target} is not empty: the new filesystem would hide its files. Nothing was run.")


def _check_device(path: str) -> None:
    if not _DEVICE.fullmatch(path) or ".." in path:
        raise DiskRefused(f"{path!r} is not a device path (/dev/...). Nothing was run.")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise DiskRefused(f"{path} does not exist ({exc.strerror}). Nothing was run.") from exc
    if not stat.S_ISBLK(mode):
        raise DiskRefused(f"{path} is not a block device. Nothing was run.")


def _check_label(label: str) -> None:
    if not _LABEL.fullmatch(label):
        raise DiskRefused(f"{label!r} is not a filesystem label: letters, digits, '-' and '_', 64 at most.")


def _check_target(target: str) -> None:
    if not _TARGET.fullmatch(target) or "/../" in f"{target}/" or "/./" in f"{target}/":
        raise DiskRefused(f"{target!r} is not an absolute path for the mount point.")
