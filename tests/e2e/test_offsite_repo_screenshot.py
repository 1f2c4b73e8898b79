"""Screenshots of the Offsite repository page (tests/e2e/screenshots/): a repository that is
missing (after the admin's click on Check repository, the worker's side run by calling its
task), one with a stale lock left by a killed restic and a snapshot made as the nightly run
makes it, and the Drive token once pasted. The repositories are real (restic 0.18)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from backups import offsite_repo
from hostops import restic
from portal.models import User
from tests.backups.offsite_helpers import (
    HOSTNAME,
    local_snapshot,
    offsite_snapshot,
    point_offsite_at,
    run_queued,
    stale_lock,
)
from tests.factories import UserFactory

RESTIC_0_18 = "/usr/local/lib/portal-test/bin/restic"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not os.access(RESTIC_0_18, os.X_OK), reason=f"needs restic 0.18 at {RESTIC_0_18}"),
]
SHOTS = Path(__file__).parent / "screenshots"


def _shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    assert (SHOTS / name).stat().st_size > 5_000


@pytest.fixture
def ada() -> User:
    return UserFactory(username="ada", first_name="Ada", is_staff=True)


def _check(page: Page) -> None:
    """Click Check repository, run the worker's side, and wait for the card (it polls while the
    check runs) to show the new reading without a reload."""
    page.get_by_role("button", name="Check repository").click()
    expect(page.locator("#repo-state")).to_contain_text("Repository check")
    expect(page.get_by_role("button", name="Check repository")).to_be_disabled()
    run_queued()
    expect(page.locator("#repo-state")).not_to_contain_text("Repository check", timeout=10_000)
    page.reload()  # the header's button and the recent jobs below the card


def test_screenshot_of_a_missing_repository(
    page: Page, sign_in_as: Callable[[User], None], ada: User, settings: Any, tmp_path: Path
) -> None:
    where = point_offsite_at(settings, tmp_path)
    sign_in_as(ada)
    page.goto(reverse("backups:offsite"))
    expect(page.locator("#repo-state")).to_contain_text("Not checked yet")
    _check(page)
    expect(page.locator("#repo-state")).to_contain_text("Missing")
    expect(page.locator("#repo-state")).to_contain_text(f"There is no repository at {where.location}")
    expect(page.get_by_label("Type the location to confirm")).to_be_visible()
    _shoot(page, "offsite_repo_missing.png")


def test_screenshot_of_a_stale_lock(
    page: Page, sign_in_as: Callable[[User], None], ada: User, settings: Any, tmp_path: Path
) -> None:
    point_offsite_at(settings, tmp_path, "rclone")
    repo = offsite_repo.repository()
    restic.init(repo)
    files = tmp_path / "alice"
    files.mkdir()
    (files / "notes.txt").write_text("what alice wrote\n" * 1000)
    offsite_snapshot(repo, local_snapshot("homes/alice", datetime(2026, 12, 2, 6, tzinfo=UTC)), str(files))
    pid = stale_lock(repo)
    sign_in_as(ada)
    page.goto(reverse("backups:offsite"))
    _check(page)
    expect(page.locator("#repo-state")).to_contain_text("Exists")
    expect(page.locator("#repo-state")).to_contain_text(f"root@{HOSTNAME} (PID {pid})")
    expect(page.locator("#repo-state")).to_contain_text("Stale")
    _shoot(page, "offsite_repo_stale_lock.png")
    page.get_by_role("button", name="Break stale lock").click()
    run_queued()
    page.reload()
    expect(page.locator("#repo-state")).to_contain_text("No locks: no job is using the repository.")
    expect(page.locator("#repo-ops-h")).to_be_visible()
    _shoot(page, "offsite_repo_lock_broken.png")


def test_screenshot_of_the_drive_token_once_pasted(
    page: Page, sign_in_as: Callable[[User], None], ada: User, settings: Any, tmp_path: Path
) -> None:
    point_offsite_at(settings, tmp_path)
    settings.RCLONE_REMOTES_JSON = json.dumps(
        [{"name": "gdrive", "type": "drive", "options": {"client_id": "1234-abc.apps.googleusercontent.com"}}]
    )
    settings.BACKUP_RESTIC_REPOSITORY = "rclone:gdrive:portal-backups"
    sign_in_as(ada)
    page.goto(reverse("backups:offsite"))
    page.get_by_label("Token", exact=True).fill("not json")
    page.get_by_role("button", name="Save token").click()
    expect(page.locator("#drive-token")).to_contain_text("That is not JSON.")
    expect(page.get_by_label("Token", exact=True)).to_have_value("")
    _shoot(page, "offsite_repo_token_refused.png")
    token = {"access_token": "ya29.made-up", "token_type": "Bearer", "refresh_token": "1//made-up"}
    page.get_by_label("Token", exact=True).fill(json.dumps(token))
    page.get_by_role("button", name="Save token").click()
    expect(page.locator("#drive-token")).to_contain_text("by ada")
    assert "ya29.made-up" not in page.content()
    _shoot(page, "offsite_repo_token_set.png")
