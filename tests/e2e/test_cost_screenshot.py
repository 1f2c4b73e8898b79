"""Screenshots of the Cost page (tests/e2e/screenshots/, ignored by git) over a year of records:
hourly counts of running workspaces (busy by day), two GPU bookings each weekday, a week of GPU
power samples, the seed's settings with the server bought 13 months ago; then a refused form."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from gpus.models import GPU, Booking, GpuSample
from monitoring.collect import RUNNING_SERIES
from monitoring.models import CloudInstance, CostSettings, Resolution, Sample
from portal.models import Host, User
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SEED_INSTANCES = importlib.import_module("monitoring.migrations.0002_cost").SEED_INSTANCES
SHOTS = Path(__file__).resolve().parent / "screenshots"


@pytest.fixture
def a_year_of_use(db: None) -> User:
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    members = [UserFactory(username=name) for name in ("alice", "bob", "carol")]
    now = timezone.now()
    CostSettings.current()
    CostSettings.objects.filter(pk=1).update(purchased=(now - timedelta(days=395)).date())
    # What the migration seeds (a transactional test's flush removed it).
    for name, gpus, price, stands_for in SEED_INSTANCES:
        CloudInstance.objects.get_or_create(name=name, gpus=gpus, hourly_price=price, stands_for=stands_for)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Sample._meta.db_table} (series, resolution, at, value)
            SELECT %s, %s, t, CASE WHEN extract(hour FROM t) BETWEEN 8 AND 19 THEN 4 + floor(random() * 2)
                                    ELSE 1 + floor(random() * 2) END
            FROM generate_series(date_trunc('hour', now() - interval '365 days'), now() - interval '1 hour',
                                 interval '1 hour') AS t
            """,  # noqa: S608 (the table name is the model's; values are parameters)
            [RUNNING_SERIES, Resolution.HOUR.value],
        )
    host = Host.local()
    bookings = []
    day = (now - timedelta(days=364)).replace(hour=9, minute=0, second=0, microsecond=0)
    while day < now - timedelta(hours=10):
        if day.weekday() < 5:
            for index, member in enumerate(members[:2]):
                start = day + timedelta(hours=index)
                bookings.append(Booking(user=member, host=host, start=start, end=start + timedelta(hours=8)))
        day += timedelta(days=1)
    Booking.objects.bulk_create(bookings, batch_size=500)
    gpus = [GPU.objects.create(host=host, index=10 + i, name="RTX 5080") for i in range(2)]
    for gpu in gpus:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {GpuSample._meta.db_table}
                    (gpu_id, at, utilization, memory_used, power_watts, workspaces, other_processes)
                SELECT %s, t, 50, 0, CASE WHEN extract(hour FROM t) BETWEEN 9 AND 17 THEN 250 + floor(random() * 80)
                                           ELSE 20 + floor(random() * 10) END, '[]', 0
                FROM generate_series(now() - interval '7 days', now(), interval '1 minute') AS t
                """,  # noqa: S608 (the table name is the model's; values are parameters)
                [gpu.pk],
            )
    return admin


def _shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_screenshots_of_the_cost_page_over_a_year_and_a_refused_form(
    page: Page, sign_in_as: Callable[[User], None], a_year_of_use: User
) -> None:
    sign_in_as(a_year_of_use)
    page.goto(reverse("monitoring:cost"))
    expect(page.get_by_role("heading", name="Cost", exact=True)).to_be_visible()
    expect(page.locator("#break-even")).to_contain_text("paid back in")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-cost'))")
    _shoot(page, "cost.png")
    page.get_by_role("spinbutton", name="Hardware price").fill("-5")
    page.get_by_role("button", name="Save the server costs").click()
    expect(page.locator("#cost-settings")).to_contain_text("A price can't be negative.")
    _shoot(page, "cost-refused.png")
    # A dearer server: the break-even is ahead, projected (dashed) on the chart.
    page.get_by_role("spinbutton", name="Hardware price").fill("12000")
    page.get_by_role("button", name="Save the server costs").click()
    expect(page.get_by_text("Cost settings saved.")).to_be_visible()
    expect(page.locator("#break-even-basis")).to_contain_text("projected at")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-cost'))")
    _shoot(page, "cost-projected.png")
