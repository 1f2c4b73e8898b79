"""Screenshots of the scrub section on the storage page (tests/e2e/screenshots/, ignored by git):
a year of history, a scrub under way, and the schedule form refusing bad input."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps as django_apps
from django.urls import reverse
from playwright.sync_api import Page, expect

from portal.models import Operation, User
from storage.models import ScrubRun
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).parent / "screenshots"
UTC = ZoneInfo("UTC")
TIB = 1024**4


@pytest.fixture
def history(db: None) -> User:
    """An admin, the schedule row, and a year of monthly scrubs of a 7.3T pool."""
    importlib.import_module("storage.migrations.0003_scrub_schedule").create_schedule(django_apps, None)
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    fates = [
        (ScrubRun.Result.CLEAN, 0, 0, "No errors."),
        (ScrubRun.Result.CLEAN, 0, 0, "No errors."),
        (ScrubRun.Result.CORRECTED, 3, 0, "3 errors corrected."),
        (ScrubRun.Result.CLEAN, 0, 0, "No errors."),
        (ScrubRun.Result.CANCELLED, 0, 0, "Cancelled by ada."),
        (ScrubRun.Result.CLEAN, 0, 0, "No errors."),
        (ScrubRun.Result.UNCORRECTABLE, 1, 2, "2 uncorrectable errors."),
        (ScrubRun.Result.CLEAN, 0, 0, "No errors."),
        (ScrubRun.Result.FAILED, 0, 0, "The scrub could not run: btrfs scrub status failed on /srv: timeout"),
        (ScrubRun.Result.CLEAN, 0, 0, "No errors."),
        (ScrubRun.Result.CLEAN, 0, 0, "No errors."),
    ]
    for month, (result, corrected, uncorrectable, message) in enumerate(fates):
        started = datetime(2026, 1 + month, 4, 1, 0, tzinfo=UTC)
        hours = 0 if result == ScrubRun.Result.FAILED else (2.5 if result == ScrubRun.Result.CANCELLED else 6.8)
        op = Operation.objects.create(
            kind="storage.scrub", state=Operation.State.SUCCEEDED, actor=admin if month in (4, 8) else None
        )
        ScrubRun.objects.create(
            operation=op,
            mount="/srv",
            result=result,
            started_at=started,
            finished_at=started + timedelta(hours=hours, minutes=month),
            bytes_scrubbed=int(7.3 * TIB * hours / 6.8),
            corrected_errors=corrected,
            uncorrectable_errors=uncorrectable,
            message=message,
        )
    return admin


def _shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / name
    page.locator("#scrub").screenshot(path=str(path))
    assert path.stat().st_size > 5_000
    return path


def test_screenshot_of_the_scrub_history(page: Page, sign_in_as: Callable[[User], None], history: User) -> None:
    sign_in_as(history)
    page.goto(reverse("storage:overview"))
    section = page.locator("#scrub")
    expect(section.get_by_role("button", name="Scrub now")).to_be_visible()
    expect(section.locator("tbody tr")).to_have_count(11)
    expect(section).to_contain_text("Uncorrectable errors")
    _shoot(page, "storage-scrub-history.png")


def test_screenshot_of_a_scrub_under_way(page: Page, sign_in_as: Callable[[User], None], history: User) -> None:
    op = Operation.objects.create(
        kind="storage.scrub",
        state=Operation.State.RUNNING,
        actor=history,
        target_label="local",
        percent=42,
        message="Scrubbed 3.1T of 7.3T",
        log="Started the scrub of /srv.\n",
    )
    ScrubRun.objects.create(operation=op, mount="/srv", started_at=datetime.now(UTC) - timedelta(hours=3))
    sign_in_as(history)
    page.goto(reverse("storage:overview"))
    section = page.locator("#scrub")
    expect(section.get_by_role("button", name="Cancel the scrub")).to_be_visible()
    expect(section.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "42")
    _shoot(page, "storage-scrub-running.png")


def test_screenshot_of_the_schedule_form_refusing_bad_input(
    page: Page,
    sign_in_as: Callable[[User], None],
    history: User,
) -> None:
    sign_in_as(history)
    page.goto(reverse("storage:overview"))
    page.get_by_label("Hour").fill("25")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.locator("#scrub")).to_contain_text("The hour is a whole number from 0 to 23.")
    _shoot(page, "storage-scrub-schedule-error.png")
