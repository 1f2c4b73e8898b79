"""Disks' SMART health through smartctl's JSON output (smartmontools 7.x): the overall verdict,
the temperature, and the counters that foretell a failing disk (reallocated and pending sectors
on ATA disks; media errors and wear on NVMe). Device names are checked against a strict pattern
before they reach the command line.

smartctl's exit status is a bit mask (smartctl(8), "RETURN VALUES"): bits 0 and 1 mean the
command or the device could not be used at all (a loop device, a virtual disk, no permission),
which is "no SMART here", never a failure; bit 3 is the disk's own "FAILING" verdict; the
others are warnings about the disk's logs and attributes, kept as words on the reading."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from hostops.errors import CommandFailed, HostOpsError
from hostops.run import run

SMARTCTL = "smartctl"
TIMEOUT = 20.0  # seconds for one disk; a sleeping disk is not woken (--nocheck=standby)
DEVICE = re.compile(
    r"/dev/(?:sd[a-z]{1,3}|hd[a-z]|vd[a-z]{1,2}|nvme\d{1,3}(?:n\d{1,3})?|disk/by-id/[A-Za-z0-9._:-]{1,120})"
)
DEVICE_TYPE = re.compile(r"[a-z][a-z0-9_,+-]{0,40}")  # "sat", "nvme", "megaraid,0", "sat+megaraid,1"

# Bits 2 to 7 of the exit status, worded (bits 0 and 1: no SMART reading at all).
EXIT_BITS = {
    2: "a SMART command failed or a data structure had a checksum error",
    3: "the disk reports itself FAILING",
    4: "prefailure attributes are at or below their thresholds",
    5: "some attributes were at or below their thresholds in the past",
    6: "the disk's error log has errors",
    7: "the disk's self-test log has errors",
}
_NO_DEVICE = 0b11

REALLOCATED_SECTORS = 5  # ATA attribute ids
PENDING_SECTORS = 197


@dataclass(frozen=True)
class SmartDevice:
    """A disk smartctl can read: its path and, when --scan named one, the -d type."""

    name: str
    type: str = ""

    @property
    def word(self) -> str:
        """The disk's name for a series: "/dev/sda" is "sda", a by-id link its lowercased tail."""
        tail = self.name.rsplit("/", 1)[1].lower()
        return re.sub(r"[^a-z0-9]+", "_", tail).strip("_")[:32] or "disk"


@dataclass(frozen=True)
class SmartReading:
    """One disk's health now. ``passed`` is None where smartctl gave no verdict; a counter the
    disk does not report is None."""

    device: str
    passed: bool | None
    temperature_c: int | None = None
    reallocated_sectors: int | None = None
    pending_sectors: int | None = None
    media_errors: int | None = None
    percentage_used: int | None = None
    warnings: tuple[str, ...] = ()


def checked_device(device: SmartDevice) -> SmartDevice:
    if not DEVICE.fullmatch(device.name):
        raise HostOpsError(f"{device.name[:80]!r} is not a disk smartctl is allowed to read (/dev/sdX, /dev/nvmeN...)")
    if device.type and not DEVICE_TYPE.fullmatch(device.type):
        raise HostOpsError(f"{device.type[:80]!r} is not a smartctl device type")
    return device


def exit_warnings(status: int) -> tuple[str, ...]:
    """The words for bits 2-7 of smartctl's exit status."""
    return tuple(words for bit, words in EXIT_BITS.items() if status & (1 << bit))


def _smartctl(argv: list[str]) -> tuple[int, dict[str, Any]]:
    """smartctl's exit status and JSON. A missing binary raises CommandFailed (127)."""
    result = run([SMARTCTL, "--json", *argv], timeout=TIMEOUT, check=False)
    try:
        document = json.loads(result.stdout)
    except ValueError as exc:
        raise HostOpsError(f"smartctl {' '.join(argv)} wrote no JSON: {result.stdout[:200]!r}") from exc
    if not isinstance(document, dict):
        raise HostOpsError(f"smartctl {' '.join(argv)} wrote unexpected JSON")
    return result.returncode, document


def parse_scan(document: dict[str, Any]) -> list[SmartDevice]:
    """The disks of ``smartctl --scan --json`` that pass the device pattern."""
    found = []
    for entry in document.get("devices") or []:
        device = SmartDevice(str(entry.get("name", "")), str(entry.get("type", "")))
        if DEVICE.fullmatch(device.name) and (not device.type or DEVICE_TYPE.fullmatch(device.type)):
            found.append(device)
    return found


def scan() -> list[SmartDevice]:
    """The disks smartctl finds on this machine; none where smartctl is not installed."""
    try:
        _status, document = _smartctl(["--scan"])
    except CommandFailed as exc:
        if exc.returncode == 127:
            return []
        raise
    return parse_scan(document)


def _ata_raw(document: dict[str, Any], attribute_id: int) -> int | None:
    for row in (document.get("ata_smart_attributes") or {}).get("table") or []:
        if row.get("id") == attribute_id:
            raw = (row.get("raw") or {}).get("value")
            return int(raw) if isinstance(raw, int) else None
    return None


def parse_health(device: str, status: int, document: dict[str, Any]) -> SmartReading | None:
    """A reading from ``smartctl --json -H -A`` and its exit status; None when the device has
    no SMART (bits 0 or 1, or no verdict and no figure at all)."""
    if status & _NO_DEVICE:
        return None
    verdict = (document.get("smart_status") or {}).get("passed")
    nvme = document.get("nvme_smart_health_information_log") or {}
    temperature = (document.get("temperature") or {}).get("current", nvme.get("temperature"))
    reading = SmartReading(
        device=device,
        passed=verdict if isinstance(verdict, bool) else None,
        temperature_c=temperature if isinstance(temperature, int) else None,
        reallocated_sectors=_ata_raw(document, REALLOCATED_SECTORS),
        pending_sectors=_ata_raw(document, PENDING_SECTORS),
        media_errors=nvme.get("media_errors") if isinstance(nvme.get("media_errors"), int) else None,
        percentage_used=nvme.get("percentage_used") if isinstance(nvme.get("percentage_used"), int) else None,
        warnings=exit_warnings(status),
    )
    if reading.passed is None and reading.temperature_c is None and reading.reallocated_sectors is None:
        return None  # asleep (--nocheck=standby) or no SMART data: nothing to record this time
    return reading


def read_health(device: SmartDevice) -> SmartReading | None:
    """The disk's SMART health now, or None where it has none (or sleeps). Raises
    CommandFailed (127) without smartctl, CommandTimeout past TIMEOUT."""
    checked = checked_device(device)
    argv = ["--health", "--attributes", "--nocheck=standby,0"]
    if checked.type:
        argv += ["--device", checked.type]
    status, document = _smartctl([*argv, checked.name])
    return parse_health(checked.name, status, document)
