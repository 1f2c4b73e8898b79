"""SMART through smartctl's JSON: recorded outputs of smartctl 7.x (ATA and NVMe, passing and
failing) parsed, the exit status's bits worded, and the real smartctl on a loop device, which
has no SMART: absent, never failed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from hostops import smart
from hostops.errors import HostOpsError
from tests.loopfs import attach, detach, needs_loop_devices

RECORDED = Path(__file__).parent / "smart"


def recorded(name: str) -> tuple[int, dict[str, Any]]:
    document = json.loads((RECORDED / f"{name}.json").read_text())
    return document["smartctl"]["exit_status"], document


def test_a_healthy_ata_disk_passes_with_its_temperature_and_no_reallocated_sectors() -> None:
    reading = smart.parse_health("/dev/sda", *recorded("ata_passed"))

    assert reading == smart.SmartReading(
        device="/dev/sda", passed=True, temperature_c=34, reallocated_sectors=0, pending_sectors=0
    )


def test_a_failing_ata_disk_says_so_with_its_reallocated_and_pending_sectors_and_the_exit_bits() -> None:
    reading = smart.parse_health("/dev/sda", *recorded("ata_failing"))

    assert reading is not None
    assert reading.passed is False
    assert (reading.temperature_c, reading.reallocated_sectors, reading.pending_sectors) == (41, 3912, 48)
    assert reading.warnings == (
        "the disk reports itself FAILING",
        "prefailure attributes are at or below their thresholds",
        "the disk's error log has errors",
    )


def test_an_nvme_disk_gives_media_errors_and_wear_and_its_failing_verdict() -> None:
    healthy = smart.parse_health("/dev/nvme0n1", *recorded("nvme_passed"))
    failing = smart.parse_health("/dev/nvme0n1", *recorded("nvme_failing"))

    assert healthy == smart.SmartReading(
        device="/dev/nvme0n1", passed=True, temperature_c=38, media_errors=0, percentage_used=3
    )
    assert failing is not None
    assert (failing.passed, failing.temperature_c) == (False, 71)
    assert (failing.media_errors, failing.percentage_used) == (27, 104)
    assert failing.reallocated_sectors is None  # an NVMe disk has no ATA attributes


def test_a_device_smartctl_cannot_open_or_read_is_no_reading_rather_than_a_failure() -> None:
    _status, document = recorded("ata_passed")
    for status in (1, 2, 3):  # bits 0 and 1: command line or device open failed
        assert smart.parse_health("/dev/sda", status | 8, document) is None
    asleep = {"smartctl": {"exit_status": 0}, "device": {"name": "/dev/sdb"}}  # --nocheck=standby,0
    assert smart.parse_health("/dev/sdb", 0, asleep) is None


def test_the_exit_status_bits_are_worded_one_by_one() -> None:
    assert smart.exit_warnings(0) == ()
    assert smart.exit_warnings(4) == ("a SMART command failed or a data structure had a checksum error",)
    assert len(smart.exit_warnings(0b11111100)) == 6


def test_the_scan_keeps_the_disks_it_may_read_and_their_types() -> None:
    _status, document = recorded("scan")

    assert smart.parse_scan(document) == [smart.SmartDevice("/dev/sda", "sat"), smart.SmartDevice("/dev/nvme0", "nvme")]


@pytest.mark.parametrize(
    "name", ["/dev/sda; rm -rf /", "sda", "/dev/../etc/passwd", "/dev/disk/by-id/a b", "/dev/loop0", "-d", ""]
)
def test_a_name_that_is_not_a_disk_is_refused_before_smartctl_runs(name: str) -> None:
    with pytest.raises(HostOpsError, match="not a disk"):
        smart.read_health(smart.SmartDevice(name))


def test_a_bad_device_type_is_refused() -> None:
    with pytest.raises(HostOpsError, match="not a smartctl device type"):
        smart.read_health(smart.SmartDevice("/dev/sda", "sat --xall"))


def test_disks_are_named_for_series_by_their_last_word() -> None:
    assert smart.SmartDevice("/dev/nvme0n1").word == "nvme0n1"
    by_id = smart.SmartDevice("/dev/disk/by-id/ata-ST8000VN004-2M2101_WSD0XXXX")
    assert by_id.word == "ata_st8000vn004_2m2101_wsd0xxxx"


def test_without_smartctl_installed_the_scan_finds_no_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smart, "SMARTCTL", "smartctl-not-installed")

    assert smart.scan() == []


@needs_loop_devices
@pytest.mark.skipif(shutil.which("smartctl") is None, reason="needs smartmontools (scripts/test-setup.sh)")
def test_the_real_smartctl_reports_a_loop_device_as_having_no_smart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = attach(tmp_path / "disk.img", 64 * 1024 * 1024)
    try:
        # Loop devices are not a disk the portal reads in production; the pattern is widened here
        # to let the real smartctl answer for one.
        monkeypatch.setattr(smart, "DEVICE", re.compile(r"/dev/loop\d+"))
        assert smart.read_health(smart.SmartDevice(device)) is None
    finally:
        detach(device)
