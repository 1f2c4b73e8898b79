"""What btrfs-progs prints, read into frozen dataclasses: pure functions, no commands run here.
Each parser is tested on output recorded from the real tools (btrfs-progs 6.2); hostops.btrfs
runs the commands and re-exports all of this."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hostops.errors import HostOpsError

_QGROUP_ID = re.compile(r"\d+/\d+")


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
        # Snapshot paths sit four tabs deep; the quota lines after them (quotas on) one tab.
        snapshots=tuple(line.strip() for line in lines[marker + 1 :] if line.startswith("\t\t\t\t")),
    )


def parse_rescan_status(text: str) -> RescanStatus:
    match = re.search(r"rescan operation running \(current key (-?\d+)\)", text)
    if match:
        return RescanStatus(running=True, current_key=int(match[1]))
    if "no rescan operation in progress" in text:
        return RescanStatus(running=False)
    raise HostOpsError(f"unexpected output from btrfs quota rescan -s: {text[:200]!r}")


def _limit(value: str) -> int | None:
    return None if value == "none" else int(value)


_MEMBERS = re.compile(r"<\d+ member qgroups?>")


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
                # a group above level 0 shows "<N member qgroups>" where a subvolume shows its path
                path="" if path in ("<toplevel>", "<stale>") or _MEMBERS.fullmatch(path) else path,
                stale=path == "<stale>",
            )
        )
    return found


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


_STAT = re.compile(r"\[(.+)\]\.(\w+)\s+(\d+)")


def parse_device_stats(text: str) -> list[DeviceStats]:
    counters: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        match = _STAT.fullmatch(line.strip())
        if match:
            counters.setdefault(match[1], {})[match[2]] = int(match[3])
    names = ("write_io_errs", "read_io_errs", "flush_io_errs", "corruption_errs", "generation_errs")
    return [DeviceStats(device, *(values.get(name, 0) for name in names)) for device, values in counters.items()]


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
