"""Screenshots of the offsite tier's pages (tests/e2e/screenshots/): the overview with both
tiers, the offsite policy form, its retention preview over two months of nightly snapshots of
three sources, and one night's run with its sources."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from backups.models import BackupRun, ResticSnapshot
from portal.models import User
from tests.backups.beat import offsite_policy, snapshot_policy
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SHOTS = Path(__file__).parent / "screenshots"
GIB = 1024**3


def _shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    assert (SHOTS / name).stat().st_size > 5_000


@pytest.fixture
def seeded(settings: Any) -> tuple[User, BackupRun]:
    settings.BACKUP_RESTIC_REPOSITORY = "rclone:gdrive:gpu-portal-backup"
    settings.RCLONE_REMOTES_JSON = '[{"name": "gdrive", "type": "drive", "options": {"scope": "drive"}}]'
    snapshot_policy()
    offsite_policy()
    ada = UserFactory(username="ada", first_name="Ada", is_staff=True)
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    today = timezone.localtime().replace(hour=6, minute=0, second=0, microsecond=0)
    last = None
    for night in range(60, -1, -1):
        started = today - timedelta(days=night)
        failed = night == 9
        sizes = {"homes/alice": 310 + night, "homes/bob": 120, "datasets": 880 - night}
        run = BackupRun.objects.create(
            kind="restic",
            result="failed" if failed else "succeeded",
            started_at=started,
            finished_at=started + timedelta(minutes=18 + night % 7 * 3),
            files_new=0 if failed else 400 + night * 13,
            bytes_new=0 if failed else (2 + night % 5) * GIB // 4,
            bytes_total=0 if failed else sum(sizes.values()) * GIB // 100,
            snapshots_made=0 if failed else 3,
            message=(
                "Stopped: The repository is locked by another restic (exit 11): PID 4121 on gpu1 since 05:58"
                if failed
                else "3 of 3 sources backed up."
            ),
            details={
                "sources": [
                    {
                        "source": source,
                        "snapshot_id": f"{night:02d}{index}{'ab' * 30}{index}",
                        "files_new": 120 + night,
                        "files_changed": 14,
                        "files_unmodified": 20_000 + night * 40,
                        "bytes_added": (night % 4 + 1) * GIB // 10,
                        "bytes_total": size * GIB // 100,
                        "partial": source == "homes/bob" and night == 0,
                        "errors": ["open /run/portal-backup/homes/bob/.ssh/id_ed25519: permission denied"]
                        if source == "homes/bob" and night == 0
                        else [],
                    }
                    for index, (source, size) in enumerate(sizes.items())
                ],
                "forget": {"removed": ["a1b2c3d4"], "pruned": started.weekday() == 6},
            }
            if not failed
            else {},
        )
        if not failed:
            last = run
            for index, (source, owner) in enumerate((("homes/alice", alice), ("homes/bob", bob), ("datasets", None))):
                ResticSnapshot.objects.create(
                    snapshot_id=f"{night:02d}{index}{'ab' * 30}{index}",
                    source=source,
                    owner=owner,
                    path=f"/run/portal-backup/{source}",
                    taken_at=started,
                    run=run,
                    files=20_000,
                    size=sizes[source] * GIB // 100,
                )
    assert last is not None
    return ada, last


def test_screenshots_of_the_offsite_tier(
    page: Page, sign_in_as: Callable[[User], None], seeded: tuple[User, BackupRun]
) -> None:
    admin, run = seeded
    sign_in_as(admin)
    page.goto(reverse("backups:overview"))
    tier = page.locator("#tier-restic")
    expect(tier).to_contain_text("rclone:gdrive:gpu-portal-backup")
    expect(tier).to_contain_text("12207 KiB/s")
    expect(tier).to_contain_text("Daily at 06:00")
    expect(tier.get_by_role("button", name="Back up now")).to_be_enabled()
    _shoot(page, "offsite_overview.png")

    page.goto(reverse("backups:policy-edit", args=["restic"]))
    expect(page.get_by_label("Upload limit (Mbit/s)")).to_have_value("100")
    page.get_by_label("Left out").fill(".cache\n/homes/alice/big")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("starts with /: patterns match anywhere")).to_be_visible()
    _shoot(page, "offsite_policy_edit.png")

    page.goto(reverse("backups:preview", args=["restic"]))
    expect(page.get_by_text("daily snapshot").first).to_be_visible()
    expect(page.get_by_text("weekly snapshot").first).to_be_visible()
    _shoot(page, "offsite_preview.png")

    page.goto(reverse("backups:history-run", args=[run.pk]))
    expect(page.locator("#offsite-h")).to_have_text("Sources backed up")
    expect(page.get_by_text("Read in part")).to_be_visible()
    _shoot(page, "offsite_run.png")
