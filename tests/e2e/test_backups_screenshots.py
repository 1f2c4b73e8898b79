"""Screenshots of the Backups pages (tests/e2e/screenshots/, ignored by git): the overview, the
retention preview over ten days of hourly snapshot rows of three sources, the prune simulator
with a result, the policy form refusing an empty policy, and the admin's Schedules card."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from backups.models import BackupRun, Snapshot
from portal.models import User
from storage import ingestion
from storage.models import IngestionJob
from tests.backups.beat import snapshot_policy
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SHOTS = Path(__file__).parent / "screenshots"


def _shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


@pytest.fixture
def seeded() -> User:
    snapshot_policy()
    importlib.import_module("storage.migrations.0003_scrub_schedule").create_schedule(django_apps, None)
    ada = UserFactory(username="ada", first_name="Ada", is_staff=True)
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    for source, owner in (("datasets", None), ("homes/alice", alice), ("homes/bob", bob)):
        for hour in range(240):
            at = end - timedelta(hours=hour)
            pinned = ""
            if source == "homes/alice" and hour == 75:
                pinned = "restore by alice (reading it)"
            if source == "datasets" and hour == 6:
                pinned = "source of tonight's offsite run"
            Snapshot.objects.create(
                source=source,
                owner=owner,
                path=f"/srv/.snapshots/{source}/{at:%Y-%m-%dT%H%M%SZ}",
                taken_at=at,
                pinned=pinned,
            )
    for hour in range(3, 0, -1):
        started = end - timedelta(hours=hour - 1)
        BackupRun.objects.create(
            kind="snapshot",
            result="succeeded",
            started_at=started,
            finished_at=started + timedelta(seconds=4),
            snapshots_made=3,
            snapshots_removed=3,
            message="3 snapshots taken, 3 removed.",
        )
    job = IngestionJob.objects.create(
        name="customer-data", source="customer:/exports/daily", target="customer/daily", schedule_minute="0"
    )
    job.schedule_hour = "4"
    job.save()
    ingestion._schedule_sync(job)
    return ada


def test_screenshot_of_the_backups_overview(page: Page, sign_in_as: Callable[[User], None], seeded: User) -> None:
    sign_in_as(seeded)
    page.goto(reverse("backups:overview"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Backups")
    expect(page.locator("#tier-snapshot")).to_contain_text("Every hour at :00")
    expect(page.locator("#snapshot-sources")).to_contain_text("homes/alice")
    _shoot(page, "backups_overview.png")


def test_screenshot_of_the_retention_preview(page: Page, sign_in_as: Callable[[User], None], seeded: User) -> None:
    sign_in_as(seeded)
    page.goto(reverse("backups:preview", args=["snapshot"]))
    expect(page.get_by_role("heading", level=1)).to_have_text("Retention preview")
    expect(page.locator(".plan-pinned").first).to_contain_text("pinned: source of tonight")
    expect(page.get_by_text("pinned: restore by alice (reading it)")).to_be_visible()
    _shoot(page, "backups_preview.png")


def test_screenshot_of_the_prune_simulator(page: Page, sign_in_as: Callable[[User], None], seeded: User) -> None:
    sign_in_as(seeded)
    page.goto(reverse("backups:simulator"))
    times = "\n".join(f"2026-11-{day:02d}T{hour:02d}:00:00+01:00" for day in range(30, 20, -1) for hour in (18, 9))
    page.get_by_label("Snapshot times").fill(times)
    page.get_by_label("Hourly").fill("0")
    page.get_by_label("Daily").fill("5")
    page.get_by_label("Weekly").fill("4")
    page.get_by_label("Now").fill("2026-12-01T00:00:00+01:00")
    page.get_by_role("button", name="Simulate").click()
    expect(page.locator("#sim-result")).to_contain_text("daily snapshot")
    expect(page.locator("#sim-result")).to_contain_text("oldest weekly snapshot")
    _shoot(page, "backups_simulator.png")
    page.get_by_label("Snapshot times").fill("2026-11-30T18:00:00+01:00\nyesterday")
    page.get_by_role("button", name="Simulate").click()
    expect(page.get_by_text('Line 2: "yesterday" is not an ISO 8601 time with an offset')).to_be_visible()
    _shoot(page, "backups_simulator_bad_line.png")


def test_screenshot_of_the_policy_form_refusing_an_empty_policy(
    page: Page, sign_in_as: Callable[[User], None], seeded: User
) -> None:
    sign_in_as(seeded)
    page.goto(reverse("backups:policy-edit", args=["snapshot"]))
    for label in ("Hourly", "Daily", "Weekly"):
        page.get_by_label(label).fill("0")
    page.get_by_label("Hour", exact=True).fill("25")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Keep at least one rule")).to_be_visible()
    expect(page.get_by_text("'25' is not a cron hour")).to_be_visible()
    _shoot(page, "backups_policy_edit.png")


def test_screenshot_of_the_schedules_card(page: Page, sign_in_as: Callable[[User], None], seeded: User) -> None:
    sign_in_as(seeded)
    page.goto(reverse("dashboard"))
    expect(page.locator("#schedule-card")).to_contain_text("Ingestion: customer-data")
    page.locator("#schedule-card").screenshot(path=str(SHOTS / "backups_schedule_card.png"))
