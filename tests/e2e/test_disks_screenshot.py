"""Screenshots of the disk planning page (tests/e2e/screenshots/, ignored by git) over real loop
devices: the page before the disks were ever read, the plan for four free disks and one with an
old filesystem once the worker read them, then the page after the admin typed the confirmation,
applied, and the worker made the array (and read the disks again)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from hostops.run import run
from portal.models import Operation, User
from storage import planning
from storage.disk_tasks import disk_plan_apply_task, disk_scan_task
from storage.models import DiskScan
from tests.factories import UserFactory
from tests.loopfs import MIB, attach, detach, needs_loop_devices, umount

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.loopdev,
    needs_loop_devices,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture
def five_loops(tmp_path: Path, settings: Any) -> Iterator[list[str]]:
    settings.STORAGE_DISKS_INCLUDE_LOOP = True
    with ExitStack() as stack:
        devices = []
        for index in range(5):
            image = tmp_path / f"disk{index}.img"
            stack.callback(image.unlink, missing_ok=True)
            devices.append(attach(image, 300 * MIB))
            stack.callback(detach, devices[-1])
            stack.callback(run, ["wipefs", "-a", "-q", devices[-1]], timeout=30, check=False)
            stack.callback(run, ["btrfs", "device", "scan", "--forget", devices[-1]], timeout=30, check=False)
        stack.callback(umount, str(tmp_path / "mnt"))
        run(["mkfs.btrfs", "-q", "-f", "-L", "old-scratch", devices[4]], timeout=120)
        yield devices


def test_screenshot_of_the_disk_plan_and_its_apply(
    page: Page,
    sign_in_as: Callable[[User], None],
    five_loops: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **kwargs: sent.append(kwargs))
    sign_in_as(UserFactory(username="ada", first_name="Ada", is_staff=True))
    query = "&".join(f"devices={device}" for device in five_loops)
    page.goto(f"{reverse('storage:disks')}?{query}&profile=auto&label=data&mount_target={tmp_path}/mnt")
    expect(page.get_by_text("The server's disks have not been read yet")).to_be_visible()
    page.screenshot(path=str(SHOTS / "storage-disks-unread.png"), full_page=True)

    page.get_by_role("button", name="Read the disks").click()
    expect(page.get_by_role("heading", level=2, name="Reading the disks")).to_be_visible()
    scan = Operation.objects.get(kind=planning.SCAN_KIND)
    disk_scan_task.run(scan.pk)  # the worker, in-process: lsblk and wipefs on the loop devices
    expect(page.get_by_role("heading", level=2, name="Reading the disks")).to_be_hidden()  # reloaded by itself
    expect(page.locator(f"#disk-{five_loops[0].removeprefix('/dev/')}")).to_be_visible()
    page.goto(f"{reverse('storage:disks')}?{query}&profile=auto&label=data&mount_target={tmp_path}/mnt")
    expect(page.get_by_role("heading", level=2, name="Proposed layout")).to_be_visible()
    expect(page.locator("#disks-read")).to_contain_text("read by the worker of local")
    confirmation = page.locator("code.confirm-text").inner_text()
    assert confirmation == "wipe " + " ".join(device.removeprefix("/dev/") for device in five_loops)
    page.screenshot(path=str(SHOTS / "storage-disks-plan.png"), full_page=True)

    page.get_by_label(f"{five_loops[4]}: holds an old btrfs signature").check()
    page.get_by_label("Type the confirmation").fill(confirmation)
    page.get_by_role("button", name="Apply the plan").click()
    expect(page.get_by_text("The plan is queued")).to_be_visible()
    operation = Operation.objects.get(kind=planning.KIND)
    disk_plan_apply_task.run(operation.pk, **sent[1]["kwargs"])
    page.reload()
    expect(page.get_by_role("heading", level=2, name="Last apply")).to_be_visible()
    page.locator(f"#op-{operation.pk} details summary").click()
    expect(page.locator(f"#op-{operation.pk}")).to_contain_text("Done: btrfs raid10 over 5 disks")
    expect(page.locator(f"#disk-{five_loops[0].removeprefix('/dev/')}")).to_contain_text("btrfs filesystem at")
    page.screenshot(path=str(SHOTS / "storage-disks-applied.png"), full_page=True)

    # Half an hour later the reading is stale: labelled so, and applying waits for a new one.
    DiskScan.objects.update(read_at=timezone.now() - timedelta(minutes=30))
    page.reload()
    expect(page.locator("#disks-read")).to_contain_text("Stale")
    page.screenshot(path=str(SHOTS / "storage-disks-stale.png"), full_page=False)
