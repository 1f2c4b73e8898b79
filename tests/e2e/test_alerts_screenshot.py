"""Screenshots of the alert pages (tests/e2e/screenshots/, ignored by git): incidents made by the
real evaluation from rows (a disk over its threshold, a GPU running hot still pending, a
silenced memory pressure), the rules, a refused rule edit, and the history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from gpus.models import GPU
from monitoring.alerts import alerts_evaluate
from monitoring.models import AlertKind, AlertRule, Resolution, Sample, Silence
from monitoring.rules import rules_ensure
from portal.models import Host, User
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parent / "screenshots"
GIB = 1024**3


def _shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    assert (SHOTS / name).stat().st_size > 10_000


@pytest.fixture
def incidents(transactional_db: None) -> User:
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    rules_ensure()
    AlertRule.objects.exclude(kind__in=["disk_usage", "gpu_temperature", "memory_pressure"]).update(enabled=False)
    pressure = AlertRule.objects.get(kind=AlertKind.MEMORY_PRESSURE)
    AlertRule.objects.filter(pk=pressure.pk).update(for_minutes=0, notes="PSI some, 10 s average")
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=40)
    gpu = GPU.objects.create(host=Host.local(), index=0, name="RTX 5080", memory_bytes=16 * GIB)
    Silence.objects.create(rule=pressure, starts_at=start, ends_at=start + timedelta(hours=6), reason="load test")
    for minute in range(41):
        at = start + timedelta(minutes=minute)
        used = 93 if minute >= 15 else 70
        Sample.objects.bulk_create(
            [
                Sample(series="disk.root.used_bytes", resolution=Resolution.RAW, at=at, value=used * GIB),
                Sample(series="disk.root.total_bytes", resolution=Resolution.RAW, at=at, value=100.0 * GIB),
                Sample(series="host.psi.memory.some10", resolution=Resolution.RAW, at=at, value=3 + 40 * (minute > 30)),
            ]
        )
        gpu.samples.create(
            at=at, utilization=95, memory_used=GIB, temperature=88 if minute in (5, 6) or minute > 37 else 70
        )
        alerts_evaluate(now=at)
    return admin


def test_screenshots_of_the_alert_pages(page: Page, sign_in_as: Callable[[User], None], incidents: User) -> None:
    sign_in_as(incidents)
    page.goto(reverse("monitoring:alerts"))
    expect(page.get_by_role("heading", name="Alerts")).to_be_visible()
    expect(page.locator("#alerts-summary")).to_contain_text("2 firing, 3 open")
    _shoot(page, "alerts-now.png")
    page.get_by_role("link", name="Rules").click()
    expect(page.locator("#rule-disk_usage")).to_contain_text("above 85 %")
    _shoot(page, "alerts-rules.png")
    page.locator("#rule-disk_usage").get_by_role("link", name="Edit").click()
    page.get_by_label("Threshold (%)").fill("150")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".errorlist")).to_contain_text("The threshold is from 1 to 100 %.")
    _shoot(page, "alerts-rule-refused.png")
    page.goto(reverse("monitoring:alert-history"))
    expect(page.locator("#alert-history tbody tr")).to_have_count(4)
    _shoot(page, "alerts-history.png")
