"""Screenshots of the Server health page (tests/e2e/screenshots/, ignored by git) over a year
of generated rows, as the rollups and pruning leave them: hourly rows for a year, 5-minute rows
for 30 days, raw rows for 48 hours, a two-hour outage (a gap in every chart), and a week of two
GPUs' samples. Rows are made by generate_series in PostgreSQL: a year in a second."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse
from playwright.sync_api import Page, expect
from pytest_django.fixtures import Settings

from gpus.models import GPU, GpuHost, GpuSample
from monitoring.models import KEEP, Resolution, Sample
from portal.models import Host, User
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parent / "screenshots"
GIB = 1024**3
# Each series: an SQL expression of t (its timestamptz) and r (random() per row). Busy by day,
# memory creeping up through the year, /srv filling, pressure spiking with load.
DAY = "sin(2 * pi() * extract(epoch FROM t) / 86400)"
YEAR = "(extract(epoch FROM t) - extract(epoch FROM now() - interval '365 days')) / (365 * 86400)"
SERIES = {
    "host.cpu.percent": f"greatest(1, least(100, 35 + 30 * {DAY} + 20 * r))",
    "host.load.1": f"greatest(0, 6 + 5 * {DAY} + 3 * r)",
    "host.load.5": f"greatest(0, 6 + 4 * {DAY} + r)",
    "host.load.15": f"greatest(0, 6 + 3 * {DAY})",
    "host.mem.used_bytes": f"(90 + 60 * {YEAR} + 20 * r) * {GIB}",
    "host.mem.total_bytes": f"256.0 * {GIB}",
    "host.swap.used_bytes": f"(2 + 6 * {YEAR} * r) * {GIB}",
    "host.swap.total_bytes": f"32.0 * {GIB}",
    "host.psi.cpu.some10": f"greatest(0, 8 * {DAY} + 6 * r)",
    "host.psi.memory.some10": "power(r, 6) * 12",
    "host.psi.memory.full10": "power(r, 8) * 6",
    "host.psi.io.some10": f"greatest(0, 4 * {DAY} + 8 * power(r, 4))",
    "host.psi.io.full10": "power(r, 6) * 3",
    "disk.root.used_bytes": f"(180 + 10 * r) * {GIB}",
    "disk.root.total_bytes": f"468.0 * {GIB}",
    "disk.srv.used_bytes": f"(9000 + 14000 * {YEAR}) * {GIB}",
    "disk.srv.total_bytes": f"{32 * 1024}.0 * {GIB}",
}


def _generate(resolution: Resolution, *, until: str, outage: tuple[str, str]) -> None:
    """One row per series and step over the resolution's keeping, none during the outage."""
    step = int(resolution.step.total_seconds())
    keep = int(KEEP[resolution].total_seconds())
    table = Sample._meta.db_table
    for series, expression in SERIES.items():
        sql = f"""
            INSERT INTO {table} (series, resolution, at, value)
            SELECT %s, %s, t, {expression}
            FROM (SELECT t, random() AS r FROM generate_series(
                date_bin(make_interval(secs => %s), now() - make_interval(secs => %s), TIMESTAMPTZ '1970-01-01'),
                {until}, make_interval(secs => %s)) AS t) AS g
            WHERE NOT (t >= now() - interval '{outage[0]}' AND t < now() - interval '{outage[1]}')
        """  # noqa: S608 (names and expressions are this file's own; values are parameters)
        with connection.cursor() as cursor:
            cursor.execute(sql, [series, resolution.value, step, keep, step])


@pytest.fixture
def a_year(db: None, settings: Settings) -> User:
    settings.MONITORING_DISK_PATHS = ["/", "/srv"]
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    _generate(Resolution.HOUR, until="now() - interval '1 hour'", outage=("20 days", "19 days 20 hours"))
    _generate(Resolution.FIVE_MINUTES, until="now() - interval '5 minutes'", outage=("26 hours", "24 hours"))
    _generate(Resolution.RAW, until="now()", outage=("3 hours", "2 hours 40 minutes"))
    host = Host.local()
    GpuHost.objects.update_or_create(host=host, defaults={"source": GpuHost.Source.NVML})
    gpus = [GPU.objects.create(host=host, index=i, name="RTX 5080", memory_bytes=16 * GIB) for i in range(2)]
    for gpu in gpus:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {GpuSample._meta.db_table}
                    (gpu_id, at, utilization, memory_used, temperature, power_watts, workspaces, other_processes)
                SELECT %s, t, u, (4 + floor(random() * 10)) * {GIB}, 34 + u * 0.45 + floor(random() * 3),
                       25 + u * 3.1 + floor(random() * 12), '[]', 0
                FROM (SELECT t, CASE WHEN extract(hour FROM t) BETWEEN 8 AND 19 THEN 60 + floor(random() * 40)
                      ELSE floor(random() * 5) END AS u
                      FROM generate_series(now() - interval '7 days', now(), interval '1 minute') AS t) AS g
                WHERE %s = 0 OR extract(dow FROM t) <> 0
                """,  # noqa: S608 (the table name is the model's; values are parameters)
                [gpu.pk, gpu.index],
            )
    assert Sample.objects.filter(resolution=Resolution.HOUR).count() > 365 * 24 * len(SERIES) * 0.98
    return admin


def _shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def _charts_drawn(page: Page, count: int) -> None:
    page.wait_for_function(
        f"() => window.Chart && document.querySelectorAll('canvas[data-chart]').length === {count}"
        " && [...document.querySelectorAll('canvas[data-chart]')].every((c) => Chart.getChart(c))"
    )


def test_screenshots_of_server_health_over_a_year(page: Page, sign_in_as: Callable[[User], None], a_year: User) -> None:
    sign_in_as(a_year)
    page.goto(reverse("monitoring:overview"))
    expect(page.get_by_role("heading", name="Server health")).to_be_visible()
    expect(page.locator("#health-now")).to_contain_text("of 256G")
    _charts_drawn(page, 8)
    _shoot(page, "monitoring-48h.png")
    for span, name in (("6h", "6 hours"), ("30d", "30 days"), ("1y", "365 days")):
        page.get_by_role("link", name=name).click()
        expect(page.locator(".range-picker [aria-current]")).to_have_text(name)
        _charts_drawn(page, 8)
        _shoot(page, f"monitoring-{span}.png")
    page.goto(reverse("monitoring:overview") + "?range=7d")
    expect(page.locator("#range-error")).to_contain_text("There is no range called “7d”")
    _shoot(page, "monitoring-bad-range.png")
