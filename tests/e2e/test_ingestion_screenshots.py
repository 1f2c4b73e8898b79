"""Screenshots of the data ingestion pages (tests/e2e/screenshots/, ignored by git): the list
with the seed's two jobs and a few runs, a run going, a failed run, and the job form."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.fixtures import Settings

from portal.models import Operation, User
from storage.models import IngestionJob, IngestionRun
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SHOTS = Path(__file__).parent / "screenshots"
ARGV = "rclone copy customer:/exports/daily /srv/datasets/customer/daily --use-json-log -v --stats=1s"


def _shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


def _run(job: IngestionJob, *, days_ago: int, state: str, **fields: object) -> IngestionRun:
    started = timezone.localtime().replace(hour=4, minute=0, second=0) - timedelta(days=days_ago)
    if state == "running":
        started = timezone.now() - timedelta(minutes=17)
    argv = str(fields.pop("argv", f"{ARGV} --bwlimit=12207K"))
    took = timedelta(minutes=int(str(fields.pop("minutes", 38))))
    message = str(fields.pop("message", ""))
    percent = int(str(fields.pop("percent", 100)))
    log = str(fields.pop("log", f"$ {argv}"))
    op = Operation.objects.create(
        kind="storage.ingestion",
        state=state,
        percent=percent,
        message=message[:300],
        log=log,
        target_type="ingestionjob",
        target_id=str(job.pk),
        target_label=job.name,
        started=started,
        finished=None if state == "running" else started + took,
    )
    result = {"running": "running", "succeeded": "succeeded", "failed": "failed"}[state]
    return IngestionRun.objects.create(
        job=job,
        operation=op,
        result=result,
        started_at=started,
        finished_at=None if state == "running" else started + took,
        message="" if state == "running" else message,
        argv=argv.split(),
        **fields,
    )


@pytest.fixture
def seeded(settings: Settings) -> dict[str, IngestionRun]:
    settings.RCLONE_REMOTES_JSON = json.dumps(
        [
            {"name": "customer", "type": "local"},
            {"name": "gcs", "type": "gcs", "secret_file": "/etc/portal/rclone/gcs.json"},
            {
                "name": "gdrive",
                "type": "drive",
                "options": {"scope": "drive"},
                "secret_file": "/etc/portal/rclone/gdrive.json",
            },
        ]
    )
    UserFactory(username="ada", first_name="Ada", is_staff=True)
    daily = IngestionJob.objects.create(
        name="customer-data",
        description="The customer's nightly export",
        source="customer:/exports/daily",
        target="customer/daily",
    )
    migration = IngestionJob.objects.create(
        name="team-migration",
        description="One-off: the team's bucket to Google Drive",
        source="gcs:team-bucket",
        target_kind=IngestionJob.TargetKind.REMOTE,
        target="gdrive:team-archive",
        mode=IngestionJob.Mode.SYNC,
        bwlimit_mbps=400,
        check_after=True,
        schedule_minute="",
        schedule_hour="",
    )
    return {
        "ok3": _run(
            daily,
            days_ago=3,
            state="succeeded",
            files=1210,
            bytes=28_100_000_000,
            message="Copied 1210 files (28.1 GB) in 38 min.",
        ),
        "ok2": _run(
            daily,
            days_ago=2,
            state="succeeded",
            files=1184,
            bytes=27_400_000_000,
            minutes=36,
            message="Copied 1184 files (27.4 GB) in 36 min.",
        ),
        "bad": _run(
            migration,
            days_ago=1,
            state="failed",
            files=312,
            bytes=4_800_000_000,
            minutes=12,
            message="Synced 312 files (4.8 GB) in 12 min, but the check found differences: "
            "2 files differ (q3/report.xlsx, q3/scan-0042.pdf).",
            argv="rclone sync gcs:team-bucket gdrive:team-archive --use-json-log -v --stats=1s --bwlimit=48828K",
        ),
        "running": _run(
            daily,
            days_ago=0,
            state="running",
            percent=42,
            files=498,
            bytes=11_900_000_000,
            message="11.9 GB of 28.3 GB at 12.4 MB/s, 22 min left",
        ),
    }


def test_screenshot_of_the_ingestion_list(
    page: Page, sign_in_as: Callable[[User], None], seeded: dict[str, IngestionRun]
) -> None:
    sign_in_as(User.objects.get(username="ada"))
    page.goto(reverse("storage:ingestion"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Data ingestion")
    expect(page.locator("#ingestion-jobs-h")).to_be_visible()
    expect(page.get_by_text("Daily at 04:00")).to_be_visible()
    _shoot(page, "ingestion_list.png")


def test_screenshot_of_a_run_going(
    page: Page, sign_in_as: Callable[[User], None], seeded: dict[str, IngestionRun]
) -> None:
    sign_in_as(User.objects.get(username="ada"))
    page.goto(reverse("storage:ingestion-run-detail", args=[seeded["running"].pk]))
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "42")
    _shoot(page, "ingestion_run.png")
    # The worker finishes: the polled progress stops, and the run's facts reload by themselves.
    run = seeded["running"]
    IngestionRun.objects.filter(pk=run.pk).update(
        result="succeeded", finished_at=timezone.now(), message="Copied 1203 files (28.3 GB) in 39 min."
    )
    Operation.objects.filter(pk=run.operation_id).update(state="succeeded", percent=100, finished=timezone.now())
    expect(page.locator("#run-facts")).to_contain_text("Copied 1203 files (28.3 GB) in 39 min.", timeout=10_000)
    expect(page.locator("#run-facts .pill")).to_have_text("Succeeded")


def test_screenshot_of_a_failed_run(
    page: Page, sign_in_as: Callable[[User], None], seeded: dict[str, IngestionRun]
) -> None:
    sign_in_as(User.objects.get(username="ada"))
    page.goto(reverse("storage:ingestion-run-detail", args=[seeded["bad"].pk]))
    expect(page.get_by_text("the check found differences").first).to_be_visible()
    _shoot(page, "ingestion_run_failed.png")


def test_screenshot_of_the_job_form(
    page: Page, sign_in_as: Callable[[User], None], seeded: dict[str, IngestionRun]
) -> None:
    sign_in_as(User.objects.get(username="ada"))
    page.goto(reverse("storage:ingestion-new"))
    page.get_by_label("Name").fill("Bad Name")
    page.get_by_label("Target", exact=True).fill("../x")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("can't climb out of the datasets folder")).to_be_visible()
    _shoot(page, "ingestion_form.png")
