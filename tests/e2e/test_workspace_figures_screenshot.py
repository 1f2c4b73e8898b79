"""Screenshots (tests/e2e/screenshots/) of a member's workspace card with its own figures over
the last six hours, fetched by htmx, and of Server health's per-member use, over two days of
generated minute rows of three members' workspaces (generate_series in PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from monitoring.models import Resolution, Sample
from portal.models import Host, User
from tests.e2e.test_monitoring_screenshot import _charts_drawn, _shoot
from tests.factories import UserFactory
from workspaces.models import Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GIB = 1024**3
DAY = "sin(2 * pi() * extract(epoch FROM t) / 86400)"
# Per workspace: CPU (100 = one core), memory, and network in bytes per second.
SHAPES = [
    (f"greatest(0, 180 + 120 * {DAY} + 40 * r)", f"(6 + 2 * {DAY} + r) * {GIB}", "power(r, 4) * 4e6"),
    ("greatest(0, 40 * r + 10)", f"(2.5 + 0.4 * r) * {GIB}", "r * 2e5"),
    (f"CASE WHEN {DAY} > 0 THEN 390 + 10 * r ELSE 2 * r END", f"(14 + 2 * r) * {GIB}", "r * 8e5"),
]


def _generate(workspace: Workspace, shape: tuple[str, str, str], limit: int) -> None:
    cpu, memory, net = shape
    series = {
        f"ws.{workspace.pk}.cpu.percent": cpu,
        f"ws.{workspace.pk}.mem.used_bytes": memory,
        f"ws.{workspace.pk}.mem.limit_bytes": f"{limit}.0",
        f"ws.{workspace.pk}.net.rx_bytes": net,
        f"ws.{workspace.pk}.net.tx_bytes": f"({net}) / 5",
    }
    for name, expression in series.items():
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {Sample._meta.db_table} (series, resolution, at, value)
                SELECT %s, %s, t, {expression}
                FROM (SELECT t, random() AS r FROM generate_series(
                    date_trunc('minute', now()) - interval '47 hours', date_trunc('minute', now()), interval '1 minute'
                ) AS t) AS g
                WHERE NOT (t >= now() - interval '100 minutes' AND t < now() - interval '80 minutes')
                """,  # noqa: S608 (the table and expressions are this file's own; values are parameters)
                [name, Resolution.RAW.value],
            )


@pytest.fixture
def team(db: None) -> tuple[User, User]:
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    members = [UserFactory(username=name) for name in ("alice", "bob", "chen")]
    for i, (member, shape) in enumerate(zip(members, SHAPES, strict=True)):
        workspace = Workspace.objects.create(
            owner=member, host=Host.local(), ssh_port=2300 + i, slug=member.username,
            state=Workspace.State.RUNNING, desired_state=Workspace.Desired.RUNNING, started_at=timezone.now(),
            cpu_percent=150.0, mem_usage=6 * GIB, stats_at=timezone.now(),
        )  # fmt: skip
        _generate(workspace, shape, 16 * GIB)
    return admin, members[0]


def test_screenshots_of_the_workspace_card_figures_and_the_members_use(
    page: Page, sign_in_as: Callable[[User], None], team: tuple[User, User]
) -> None:
    admin, alice = team
    sign_in_as(alice)
    page.goto(reverse("dashboard"))
    card = page.locator(".ws-card")
    expect(card.locator(".ws-figures .spark")).to_have_count(3)
    expect(card.locator(".ws-figures")).to_contain_text("CPU")
    _shoot(page, "workspace-card-figures.png")

    sign_in_as(admin)
    page.goto(reverse("monitoring:overview") + "?range=48h")
    _charts_drawn(page, 2)
    expect(page.locator("#member-use tbody tr")).to_have_count(3)
    page.locator("#member-cpu-h").scroll_into_view_if_needed()
    _shoot(page, "monitoring-members.png")
