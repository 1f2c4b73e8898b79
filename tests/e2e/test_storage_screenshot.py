"""Screenshots of the storage page, the dashboard's storage card and the members list
(tests/e2e/screenshots/, ignored by git) over a real BTRFS RAID10 of four loop devices, with
members' real files measured by the real usage pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from hostops import btrfs
from portal.models import Quota, User
from storage.layout import prepare_member
from storage.usage import usage_pass
from tests.factories import UserFactory
from tests.loopfs import MIB, LoopFs, loop_btrfs, needs_loop_devices
from tests.storage.conftest import point_settings_at, write_random

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.loopdev,
    needs_loop_devices,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SHOTS = Path(__file__).parent / "screenshots"
# username: (home MiB, scratch MiB); soft limits of 96 MiB, carol with a 160 MiB hard limit
TEAM = {"alice": (72, 16), "bob": (24, 40), "carol": (120, 24), "dave": (8, 0), "erin": (40, 8)}


@pytest.fixture
def raid10(tmp_path: Path, settings) -> Iterator[LoopFs]:  # type: ignore[no-untyped-def]
    with loop_btrfs(tmp_path, count=4, profile="raid10") as made:
        btrfs.quota_enable(made.mount)
        point_settings_at(settings, made.mount)
        yield made  # the filesystem goes with its loop devices


@pytest.fixture
def measured_team(raid10: LoopFs) -> User:
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    for username, (home, scratch) in TEAM.items():
        member = UserFactory(username=username)
        Quota.objects.filter(user=member).update(
            storage_soft=96 * MIB, storage_hard=160 * MIB if username == "carol" else None
        )
        row = prepare_member(member)
        write_random(f"{row.home_path}/data.bin", home * MIB)
        if scratch:
            write_random(f"{row.scratch_path}/run.bin", scratch * MIB)
    btrfs.qgroup_show(raid10.mount, sync=True)
    report = usage_pass()
    assert report.measured == len(TEAM)
    assert report.problems == []
    return admin


def test_screenshot_of_the_storage_page(
    page: Page, sign_in_as: Callable[[User], None], measured_team: User, raid10: LoopFs
) -> None:
    sign_in_as(measured_team)
    page.goto(reverse("storage:overview"))
    expect(page.get_by_role("heading", level=2, name="Filesystem")).to_be_visible()
    expect(page.locator("#storage-fs")).to_contain_text("RAID10")
    for device in raid10.devices:
        expect(page.locator("#storage-fs")).to_contain_text(device)
    page.wait_for_function("() => window.Chart && Chart.getChart('storage-chart')")
    page.screenshot(path=str(SHOTS / "storage.png"), full_page=True)


def test_screenshot_of_the_members_list_and_a_storage_card(
    page: Page, sign_in_as: Callable[[User], None], measured_team: User
) -> None:
    sign_in_as(measured_team)
    page.goto(reverse("member-list"))
    expect(page.locator(".usage-bar")).to_have_count(len(TEAM))
    page.screenshot(path=str(SHOTS / "storage-members.png"), full_page=True)
    # The admin pages sit in the menu's Admin group; the current one marks it.
    page.get_by_text("Admin", exact=True).first.click()
    expect(page.locator(".adminmenu-items").get_by_role("link", name="Storage")).to_be_visible()
    page.screenshot(path=str(SHOTS / "admin-menu.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 420})
    sign_in_as(User.objects.get(username="carol"))
    page.goto(reverse("dashboard"))
    expect(page.locator("#storage-card")).to_contain_text("almost full")
    page.locator("#storage-card").screenshot(path=str(SHOTS / "storage-card.png"))
