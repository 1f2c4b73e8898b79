"""A screenshot of the dashboard's Health checks card (tests/e2e/screenshots/, ignored by git)
with a report as the worker leaves it: a hung Docker engine, quotas off, a wrong restic
password and a clock that drifts, the rest green."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from monitoring import doctor
from monitoring.doctor_checks import Check, Status
from portal.models import User
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parent / "screenshots"
CHECKS = (
    Check(
        "docker.gpu-2",
        "Docker engine of gpu-2",
        Status.FAIL,
        "no answer within 15 s",
        "The engine of gpu-2 took the connection but did not answer: restart it (systemctl restart docker).",
    ),
    Check(
        "storage.quotas",
        "BTRFS quotas",
        Status.FAIL,
        "Quotas are off on /srv: members' usage is not measured and their hard limits do not hold.",
        "btrfs quota enable /srv (the storage pass turns them on within 10 minutes if the worker runs).",
    ),
    Check(
        "restic",
        "Offsite repository (restic)",
        Status.FAIL,
        "The password file does not open this repository (restic exit 12).",
        "Put the password the repository was created with in /run/secrets/restic-password (one line, mode 0600).",
    ),
    Check(
        "clock",
        "Clock against the database",
        Status.WARN,
        "the database is 4.20 s ahead",
        "Sync both machines' clocks with NTP (timedatectl set-ntp true; chronyc tracking shows the offset).",
    ),
    *(Check(f"ok.{n}", f"Fine part {n}", Status.OK, "ok") for n in range(14)),
    Check("slack", "Slack webhook", Status.SKIP, "SLACK_WEBHOOK_URL is not set"),
)


def test_screenshot_of_the_health_checks_card(page: Page, sign_in_as: Callable[[User], None]) -> None:
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    doctor.report_store(doctor.Report(timezone.now() - timedelta(minutes=7), "gpu-server", 3.4, CHECKS))
    cache.delete(doctor.REQUESTED_KEY)
    sign_in_as(admin)
    page.goto(reverse("dashboard"))
    card = page.locator("#doctor-card")
    expect(card).to_contain_text("3 failing")
    expect(card).to_contain_text("Fix: btrfs quota enable /srv")
    SHOTS.mkdir(exist_ok=True)
    card.screenshot(path=str(SHOTS / "doctor-card.png"))
    page.screenshot(path=str(SHOTS / "doctor-dashboard.png"), full_page=True)
    assert (SHOTS / "doctor-card.png").stat().st_size > 10_000
    page.get_by_role("button", name="Run checks now").click()
    expect(page.locator("#doctor-card")).to_contain_text("Asked the worker")
    cache.delete_many([doctor.REPORT_KEY, doctor.REQUESTED_KEY])
