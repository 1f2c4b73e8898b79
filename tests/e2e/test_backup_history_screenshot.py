"""Screenshots of the backup history page (tests/e2e/screenshots/, ignored by git): 30 days of
hourly snapshot runs and daily offsite runs, a few failures, and a tier failing right now. The
browser fixtures are tests/e2e's."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from backups.models import BackupPolicy, BackupRun
from portal.models import Operation, User
from storage.models import FilesystemState
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parent / "screenshots"
GIB = 1024**3


@pytest.fixture
def month(db: None) -> User:
    """An admin, 720 hourly snapshot runs and 30 nightly restic runs, with a few failures."""
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    FilesystemState.objects.create(root=str(settings.STORAGE_ROOT), on_btrfs=True)
    rng = random.Random(7)
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    runs: list[BackupRun] = []
    ops: list[Operation] = []
    for hour in range(720, 0, -1):
        at = now - timedelta(hours=hour)
        failed = hour in (400, 399, 120)
        partial = hour in (250,)
        result = BackupRun.Result.FAILED if failed else BackupRun.Result.PARTIAL if partial else "succeeded"
        ops.append(
            Operation(
                kind="backups.snapshot",
                state="failed" if failed else "succeeded",
                percent=100,
                target_label="homes and datasets",
                message="Failed" if failed else "12 snapshots made",
                log="homes/alice: snapshot made\nhomes/bob: snapshot made\ndatasets: snapshot made",
                error="btrfs subvolume snapshot: No space left on device" if failed else "",
            )
        )
        runs.append(
            BackupRun(
                kind=BackupRun.Kind.SNAPSHOT,
                result=result,
                started_at=at,
                finished_at=at + timedelta(seconds=rng.randint(25, 70) if not failed else 8),
                snapshots_made=0 if failed else (11 if partial else 12),
                snapshots_removed=0 if failed else (rng.choice([11, 12, 12, 13]) if hour < 700 else 0),
                message=(
                    "btrfs subvolume snapshot failed on /srv/homes: No space left on device"
                    if failed
                    else "homes/bob: not a subvolume (left out)"
                    if partial
                    else ""
                ),
            )
        )
    for day in range(30, 0, -1):
        at = now.replace(hour=6) - timedelta(days=day)
        failed = day == 12
        ops.append(Operation(kind="backups.restic", state="failed" if failed else "succeeded"))
        runs.append(
            BackupRun(
                kind=BackupRun.Kind.RESTIC,
                result="failed" if failed else "succeeded",
                started_at=at,
                finished_at=at + timedelta(minutes=2 if failed else rng.randint(35, 95)),
                files_new=0 if failed else rng.randint(800, 40_000),
                bytes_new=0 if failed else rng.randint(2, 40) * GIB,
                bytes_total=0 if failed else (1800 + 12 * (30 - day)) * GIB,
                message="Drive answered 403: rate limit exceeded" if failed else "",
            )
        )
    for op, run in zip(Operation.objects.bulk_create(ops), runs, strict=True):
        run.operation = op
    BackupRun.objects.bulk_create(runs)
    # The newest snapshot run failed: the tier has an open incident.
    newest = BackupRun.objects.filter(kind=BackupRun.Kind.SNAPSHOT).order_by("-started_at").first()
    assert newest is not None
    BackupRun.objects.filter(pk=newest.pk).update(
        result="failed",
        message="btrfs subvolume snapshot failed on /srv/homes: read-only filesystem",
        snapshots_made=0,
        snapshots_removed=0,
        finished_at=newest.started_at + timedelta(seconds=8),
    )
    policy = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    BackupPolicy.objects.filter(pk=policy.pk).update(incident="failed", incident_since=newest.started_at)
    return admin


def _shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_screenshots_of_the_backup_history(page: Page, sign_in_as: Callable[[User], None], month: User) -> None:
    sign_in_as(month)
    page.goto(reverse("backups:history"))
    expect(page.locator("#incident-snapshot")).to_contain_text("failing")
    expect(page.locator("#history-table tbody tr")).to_have_count(48)
    page.wait_for_function("() => window.Chart && Chart.getChart('history-chart')")
    _shoot(page, "backups-history.png")

    page.select_option("#id_kind", "restic")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#history-table tbody tr")).to_have_count(30)
    page.wait_for_function("() => window.Chart && Chart.getChart('history-chart')")
    _shoot(page, "backups-history-restic.png")

    page.goto(reverse("backups:history") + "?kind=snapshot&page=9")
    page.locator("tr.row-failed").first.get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text("Local snapshots")
    _shoot(page, "backups-history-run.png")

    page.goto(reverse("backups:history") + "?kind=snapshot&page=6")
    page.wait_for_function("() => window.Chart && Chart.getChart('history-chart')")
    _shoot(page, "backups-history-snapshots-page6.png")
