"""The minute sample's disks' health: BTRFS device error counters read from a real loop
filesystem (all zero) and from recorded output with errors, and SMART figures from recorded
smartctl readings; no smartctl, "off" or a disk without SMART is no row, never a zero."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings

from hostops import btrfs, smart
from monitoring import collect
from monitoring.models import Sample, series_problem
from portal.models import Notification, User
from tests.loopfs import loop_btrfs, needs_loop_devices

RECORDED = Path(__file__).parent / "recorded"
SMART_RECORDED = Path(__file__).parent.parent / "hostops" / "smart"
COUNTERS = ("write_io_errs", "read_io_errs", "flush_io_errs", "corruption_errs", "generation_errs")

pytestmark = pytest.mark.usefixtures("no_cpu_reading")


@needs_loop_devices
@pytest.mark.django_db
def test_a_btrfs_storage_root_gets_its_error_counters_written_all_zero(tmp_path: Path, settings: Settings) -> None:
    with loop_btrfs(tmp_path) as fs:
        settings.STORAGE_ROOT = fs.mount
        settings.MONITORING_SMART_DEVICES = ["off"]
        collect.host_sample(disk_paths=["/", fs.mount])

    word = collect.disk_name(fs.mount)
    stored = dict(Sample.objects.filter(series__startswith="btrfs.").values_list("series", "value"))
    assert stored == {f"btrfs.{word}.errors": 0.0} | {f"btrfs.{word}.{counter}": 0.0 for counter in COUNTERS}
    assert all(series_problem(name) is None for name in stored)


def test_recorded_counters_with_errors_are_summed_over_the_devices() -> None:
    devices = btrfs.parse_device_stats((RECORDED / "btrfs_device_stats_errors.txt").read_text())

    assert collect.btrfs_figures("srv", devices) == {
        "btrfs.srv.errors": 21.0,
        "btrfs.srv.write_io_errs": 5.0,
        "btrfs.srv.read_io_errs": 12.0,
        "btrfs.srv.flush_io_errs": 1.0,
        "btrfs.srv.corruption_errs": 3.0,
        "btrfs.srv.generation_errs": 0.0,
    }


@pytest.mark.django_db
def test_a_path_that_is_not_btrfs_or_not_there_has_no_counters(settings: Settings, tmp_path: Path) -> None:
    settings.STORAGE_ROOT = str(tmp_path / "missing")
    settings.MONITORING_SMART_DEVICES = ["off"]

    collect.host_sample(disk_paths=[str(tmp_path)])

    assert not Sample.objects.filter(series__startswith="btrfs.").exists()
    assert Sample.objects.filter(series__startswith="host.mem.").exists()  # the rest was still written


def _reading(name: str, device: str) -> smart.SmartReading | None:
    document = json.loads((SMART_RECORDED / f"{name}.json").read_text())
    return smart.parse_health(device, document["smartctl"]["exit_status"], document)


def test_smart_readings_become_failed_temperature_and_counter_series() -> None:
    failing, nvme = _reading("ata_failing", "/dev/sda"), _reading("nvme_passed", "/dev/nvme0n1")
    assert failing is not None
    assert nvme is not None

    assert collect.smart_figures(failing, "sda") == {
        "smart.sda.failed": 1.0,
        "smart.sda.temperature_c": 41.0,
        "smart.sda.reallocated_sectors": 3912.0,
        "smart.sda.pending_sectors": 48.0,
    }
    assert collect.smart_figures(nvme, "nvme0n1") == {
        "smart.nvme0n1.failed": 0.0,
        "smart.nvme0n1.temperature_c": 38.0,
        "smart.nvme0n1.media_errors": 0.0,
        "smart.nvme0n1.percentage_used": 3.0,
    }
    assert all(series_problem(name) is None for name in collect.smart_figures(failing, "ata_st8000vn004_2m2101_w"))


@pytest.mark.django_db
def test_configured_disks_are_read_and_written_as_smart_rows(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MONITORING_SMART_DEVICES = ["/dev/sda", "/dev/nvme0n1"]
    answers = {"/dev/sda": _reading("ata_passed", "/dev/sda"), "/dev/nvme0n1": None}  # the NVMe sleeps
    # The edge that can't exist here (a machine with SMART disks): what smartctl would answer.
    monkeypatch.setattr(smart, "read_health", lambda device: answers[device.name])

    collect.host_sample(disk_paths=[])

    stored = dict(Sample.objects.filter(series__startswith="smart.").values_list("series", "value"))
    assert stored == {
        "smart.sda.failed": 0.0,
        "smart.sda.temperature_c": 34.0,
        "smart.sda.reallocated_sectors": 0.0,
        "smart.sda.pending_sectors": 0.0,
    }


@pytest.mark.django_db
def test_without_smartctl_or_with_smart_off_there_are_no_smart_rows(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smart, "SMARTCTL", "smartctl-not-installed")
    settings.MONITORING_SMART_DEVICES = []
    collect.host_sample(disk_paths=[])
    settings.MONITORING_SMART_DEVICES = ["off"]
    assert collect.smart_devices() == []

    assert not Sample.objects.filter(series__startswith="smart.").exists()
    assert Sample.objects.filter(series__startswith="host.").exists()


@pytest.mark.django_db
def test_admins_are_told_once_each_time_a_disks_bad_sectors_grow(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, admin_user: User
) -> None:
    settings.MONITORING_SMART_DEVICES = ["/dev/sda"]
    answer: dict[str, smart.SmartReading | None] = {"/dev/sda": _reading("ata_passed", "/dev/sda")}
    monkeypatch.setattr(smart, "read_health", lambda device: answer[device.name])
    start = timezone.now().replace(microsecond=0)

    collect.host_sample(now=start, disk_paths=[])
    assert not Notification.objects.exists()
    answer["/dev/sda"] = _reading("ata_failing", "/dev/sda")
    collect.host_sample(now=start + timedelta(minutes=1), disk_paths=[])
    collect.host_sample(now=start + timedelta(minutes=2), disk_paths=[])  # the same counts: nothing new
    # (Its verdict, FAILING, is the "SMART failure" alert rule's: tests/monitoring/test_alerts.py.)

    told = Notification.objects.get(user=admin_user)
    assert told.level == Notification.Level.ERROR
    assert told.body.startswith(
        "/dev/sda: 3912 more reallocated sectors (3912 in all); 48 more sectors pending reallocation (48 in all)."
    )
    failing = answer["/dev/sda"]
    assert failing is not None
    answer["/dev/sda"] = dataclasses.replace(failing, reallocated_sectors=4000)
    collect.host_sample(now=start + timedelta(minutes=3), disk_paths=[])
    newest = Notification.objects.filter(user=admin_user).order_by("-pk").first()
    assert newest is not None
    assert newest.body.startswith("/dev/sda: 88 more reallocated sectors (4000 in all).")
    assert Notification.objects.filter(user=admin_user).count() == 2
