"""Screenshots of the restore drill (tests/e2e/screenshots/, ignored by git): the overview's
drill section with a failed last drill and its schedule form refusing a day no month lacks,
and a drill run's page with its sampled files, one mismatched, and the check's verdict."""

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

from backups.models import BackupRun
from portal.models import User
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


def _file(source: str, path: str, size: int, digest: str, local: str = "", problem: str = "") -> dict[str, object]:
    item: dict[str, object] = {
        "source": source,
        "path": path,
        "size": size,
        "sha256_restored": digest,
        "sha256_local": local or digest,
        "match": not problem,
    }
    if problem:
        item["problem"] = problem
    return item


@pytest.fixture
def drilled(settings: object) -> tuple[User, BackupRun]:
    snapshot_policy()
    importlib.import_module("backups.migrations.0004_offsite_schedules").create_rows(django_apps, None)
    settings.BACKUP_RESTIC_REPOSITORY = "/srv/offsite-repo"  # type: ignore[attr-defined]
    ada = UserFactory(username="ada", first_name="Ada", is_staff=True)
    started = timezone.now() - timedelta(days=1, hours=2)
    files = [
        _file("homes/alice", "runs/exp-14/model.ckpt", 183_500_000, "3f5a9c0e" * 8),
        _file("homes/alice", "notes/todo.md", 2_400, "a17be2d4" * 8),
        _file("homes/bob", "thesis/chapter3.tex", 88_120, "0c44e1b9" * 8),
        _file("homes/bob", "data/train.csv", 4_200_000, "9e0d7a13" * 8, "51bb0c6f" * 8, "the checksums differ"),
        _file("datasets", "imagenet/val/n01440764/ILSVRC2012_val_00000293.JPEG", 128_000, "77c1d0ee" * 8),
        _file("datasets", "imagenet/LOC_synset_mapping.txt", 31_675, "d2e8a5f1" * 8),
    ]
    run = BackupRun.objects.create(
        kind=BackupRun.Kind.DRILL,
        result=BackupRun.Result.FAILED,
        started_at=started,
        finished_at=started + timedelta(minutes=7, seconds=12),
        bytes_total=187_970_195,
        message="5 of 6 files restored and matched; check read 12/12 of the data: no errors.\n"
        "homes/bob: data/train.csv: the checksums differ",
        details={
            "files": files,
            "subset": "12/12",
            "check": {"ok": True, "ran": True, "num_errors": 0, "broken_packs": [], "errors": []},
            "bytes_read": 187_970_195,
        },
    )
    return ada, run


def test_screenshot_of_the_overviews_drill_section(
    page: Page, sign_in_as: Callable[[User], None], drilled: tuple[User, BackupRun]
) -> None:
    ada, _ = drilled
    sign_in_as(ada)
    page.goto(reverse("backups:overview"))
    section = page.locator("#drill")
    expect(section).to_contain_text("5 of 6 matched")
    expect(section).to_contain_text("Now: the 1st of each month at 12:00.")
    section.screenshot(path=str(SHOTS / "backups_drill_section.png"))
    page.get_by_label("Day of the month").fill("31")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.locator("#drill")).to_contain_text("The day is a whole number from 1 to 28.")
    page.locator("#drill").screenshot(path=str(SHOTS / "backups_drill_schedule_refused.png"))
    _shoot(page, "backups_overview_with_drill.png")


def test_screenshot_of_a_drill_runs_page(
    page: Page, sign_in_as: Callable[[User], None], drilled: tuple[User, BackupRun]
) -> None:
    ada, run = drilled
    sign_in_as(ada)
    page.goto(reverse("backups:history-run", args=[run.pk]))
    expect(page.locator("#drill-files")).to_contain_text("data/train.csv")
    expect(page.locator("#drill-check")).to_contain_text("No errors")
    _shoot(page, "backups_drill_run.png")
