"""Workspaces' series (monitoring/workspace_stats.py, monitoring/usage.py): network rates from
the engine's counters, the member's sparklines on their card (theirs only), each member's use on
Server health, a year of a workspace's rows within the points cap, and a removed workspace's
rows aging out like any other."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import DjangoAssertNumQueries

from hostops.types import ContainerStats
from monitoring import rollup
from monitoring.bins import floor
from monitoring.models import KEEP, Sample
from monitoring.series import MAX_POINTS, SPANS, series_read, window_for
from monitoring.usage import REMOVED
from monitoring.workspace_stats import workspace_stats_record
from portal.models import Host, User
from tests.monitoring.conftest import Rows, minutes
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db
G = 1024**3


@pytest.fixture
def alice_ws(alice: User) -> Workspace:
    workspace = Workspace.objects.create(owner=alice, host=Host.local(), ssh_port=2299, slug="alice")
    cache.delete(f"monitoring:ws-net:{workspace.pk}")
    return workspace


def _stats(rx: int, tx: int, cpu: float = 50.0) -> ContainerStats:
    return ContainerStats(cpu_percent=cpu, mem_used=G, mem_limit=4 * G, net_rx_bytes=rx, net_tx_bytes=tx)


def test_network_rates_are_the_counters_change_per_second_and_a_restart_gives_none(alice_ws: Workspace) -> None:
    at = floor(timezone.now(), minutes(1))
    pk = alice_ws.pk

    first = {row.series for row in workspace_stats_record(readings={pk: _stats(1000, 500)}, at=at)}
    second = workspace_stats_record(readings={pk: _stats(7000, 3500)}, at=at + minutes(1))
    restarted = workspace_stats_record(readings={pk: _stats(10, 10)}, at=at + minutes(2))

    assert first == {f"ws.{pk}.cpu.percent", f"ws.{pk}.mem.used_bytes", f"ws.{pk}.mem.limit_bytes"}
    assert {row.series: row.value for row in second if ".net." in row.series} == {
        f"ws.{pk}.net.rx_bytes": 100.0,
        f"ws.{pk}.net.tx_bytes": 50.0,
    }
    assert not any(".net." in row.series for row in restarted)  # counters went back: no rate
    late = workspace_stats_record(readings={pk: _stats(20, 20)}, at=at + minutes(2) + timedelta(seconds=601))
    assert not any(".net." in row.series for row in late)  # over too long a stretch to stamp on a minute


def _minute_rows(rows: Rows, workspace: Workspace, *, hours: int = 3) -> None:
    now = floor(timezone.now(), minutes(1))
    start = now - timedelta(hours=hours)
    rows(f"ws.{workspace.pk}.cpu.percent", start=start, end=now, value=lambda at: 150.0)
    rows(f"ws.{workspace.pk}.mem.used_bytes", start=start, end=now, value=lambda at: 2.0 * G)
    rows(f"ws.{workspace.pk}.mem.limit_bytes", start=start, end=now, value=lambda at: 4.0 * G)
    gap = lambda at: None if now - minutes(60) <= at < now - minutes(30) else 2048.0  # noqa: E731
    rows(f"ws.{workspace.pk}.net.rx_bytes", start=start, end=now, value=gap)
    rows(f"ws.{workspace.pk}.net.tx_bytes", start=start, end=now, value=gap)


def test_the_owner_sees_sparklines_of_the_last_six_hours_with_gaps_in_few_queries(
    alice_client: Client, alice_ws: Workspace, rows: Rows, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    _minute_rows(rows, alice_ws)
    url = reverse("monitoring:workspace-figures", args=[alice_ws.pk])
    alice_client.get(url)

    with django_assert_num_queries(4):  # session, user, the workspace, its series
        html = alice_client.get(url).content.decode()

    assert html.count('<svg class="spark"') == 3
    assert 'CPU <span class="muted small">now 150%</span>' in html
    assert "now 2.0G" in html or "now 2G" in html
    assert "now 4K/s" in html  # received plus sent
    network = re.search(r'aria-label="Network[^"]*"><path d="([^"]*)"', html)
    assert network is not None
    assert network[1].count("M") == 2  # the half-hour gap breaks the line


def test_without_figures_the_card_says_when_they_come(alice_client: Client, alice_ws: Workspace) -> None:
    html = alice_client.get(reverse("monitoring:workspace-figures", args=[alice_ws.pk])).content.decode()

    assert "No figures from the last 6 hours yet" in html
    assert "<svg" not in html


def test_another_member_is_refused_and_an_admin_may_look(
    bob_client: Client, admin_client: Client, alice_ws: Workspace, rows: Rows
) -> None:
    _minute_rows(rows, alice_ws, hours=1)
    url = reverse("monitoring:workspace-figures", args=[alice_ws.pk])

    assert bob_client.get(url).status_code == 403
    assert admin_client.get(url).content.decode().count('<svg class="spark"') == 3
    assert bob_client.get(reverse("monitoring:workspace-figures", args=[alice_ws.pk + 999])).status_code == 404


def test_the_running_card_fetches_its_figures_and_a_stopped_one_does_not(
    alice_client: Client, alice_ws: Workspace
) -> None:
    url = reverse("monitoring:workspace-figures", args=[alice_ws.pk])
    Workspace.objects.filter(pk=alice_ws.pk).update(state=Workspace.State.RUNNING)
    assert f'hx-get="{url}"' in alice_client.get(reverse("dashboard")).content.decode()
    Workspace.objects.filter(pk=alice_ws.pk).update(state=Workspace.State.STOPPED)
    assert f'hx-get="{url}"' not in alice_client.get(reverse("dashboard")).content.decode()


def _health_data(html: str) -> dict:  # type: ignore[type-arg]
    marker = '<script id="health-data" type="application/json">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start : html.index("</script>", start)])  # type: ignore[no-any-return]


def test_server_health_shows_each_members_use_summed_over_their_workspaces(
    admin_client: Client, alice: User, bob: User, alice_ws: Workspace, rows: Rows
) -> None:
    second = Workspace.objects.create(owner=alice, host=Host.local(), ssh_port=2298, slug="alice-b", name="b")
    bobs = Workspace.objects.create(owner=bob, host=Host.local(), ssh_port=2297, slug="bob")
    for workspace in (alice_ws, second, bobs):
        _minute_rows(rows, workspace, hours=1)
    gone = bobs.pk + 1000  # a workspace removed since: its rows are there, its owner is not known
    now = floor(timezone.now(), minutes(1))
    rows(f"ws.{gone}.cpu.percent", start=now - minutes(30), end=now, value=lambda at: 25.0)

    html = admin_client.get(reverse("monitoring:overview"), {"range": "6h"}).content.decode()

    charts = _health_data(html)["charts"]
    cpu = {dataset["label"]: dataset["data"] for dataset in charts["member_cpu"]["datasets"]}
    assert list(cpu) == ["alice", "bob", REMOVED]
    assert max(value for value in cpu["alice"] if value is not None) == 300.0  # two workspaces at 150%
    assert max(value for value in cpu["bob"] if value is not None) == 150.0
    memory = {dataset["label"]: dataset["data"] for dataset in charts["member_mem"]["datasets"]}
    assert max(value for value in memory["alice"] if value is not None) == 4.0
    table = html.split('id="member-use"')[1]
    assert f'href="{reverse("member-detail", args=[alice.pk])}">alice</a>' in table
    assert "not measured" in table  # no GPU is sampled on this machine
    assert "4G" in table


def test_server_health_without_workspace_figures_says_no_workspace_ran(admin_client: Client) -> None:
    html = admin_client.get(reverse("monitoring:overview")).content.decode()

    assert 'id="no-member-figures"' in html
    assert 'id="member-use"' not in html


def test_a_year_of_a_workspaces_rows_is_read_within_the_points_cap(alice_ws: Workspace, rows: Rows) -> None:
    now = floor(timezone.now(), timedelta(hours=1))
    for resolution, keep in KEEP.items():  # what the rollups keep: raw 48 h, 5-minute 30 days, hourly a year
        rows(f"ws.{alice_ws.pk}.cpu.percent", start=now - keep, end=timezone.now(), resolution=resolution)

    for span in SPANS.values():
        window = window_for(span, now=timezone.now())
        values = series_read(window, (f"ws.{alice_ws.pk}.",))[f"ws.{alice_ws.pk}.cpu.percent"]
        assert len(values) == window.count <= MAX_POINTS
        assert sum(value is not None for value in values) >= window.count - 3, span.key


def test_a_removed_workspaces_rows_age_out_like_every_other_series(alice_ws: Workspace, rows: Rows) -> None:
    now = floor(timezone.now(), timedelta(hours=1))
    for resolution, keep in KEEP.items():
        rows(f"ws.{alice_ws.pk}.cpu.percent", start=now - keep - resolution.step * 2, end=now, resolution=resolution)
    alice_ws.delete()

    rollup.samples_prune(now=now)

    for resolution, keep in KEEP.items():
        oldest = Sample.objects.filter(resolution=resolution).order_by("at").first()
        assert oldest is not None
        assert oldest.at >= now - keep


def test_the_now_card_words_btrfs_errors_and_smart_verdicts_and_ignores_workspace_rows(
    admin_client: Client, alice_ws: Workspace
) -> None:
    at = timezone.now() - minutes(1)
    figures = {
        "host.mem.used_bytes": 2.0 * G,
        "btrfs.srv.errors": 3.0,
        "smart.sda.failed": 1.0,
        "smart.sda.temperature_c": 47.0,
        "smart.sda.reallocated_sectors": 3912.0,
        "smart.nvme0n1.failed": 0.0,
        f"ws.{alice_ws.pk}.cpu.percent": 80.0,
    }
    Sample.objects.bulk_create(Sample(series=name, at=at, value=value) for name, value in figures.items())

    now_card = admin_client.get(reverse("monitoring:overview")).content.decode().split('id="health-now"')[1]
    now_card = now_card.split("</section>")[0]

    assert "<dt>BTRFS srv</dt><dd>3 errors (btrfs device stats)</dd>" in now_card
    assert "<dt>SMART sda</dt><dd>FAILING, 47 °C, 3912 reallocated sectors</dd>" in now_card
    assert "<dt>SMART nvme0n1</dt><dd>passed</dd>" in now_card
    assert "CPU busy" not in now_card  # the workspace's CPU is not the host's


def test_server_health_makes_the_same_queries_for_one_member_or_three(
    admin_client: Client, alice: User, bob: User, alice_ws: Workspace, rows: Rows,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:  # fmt: skip
    url = reverse("monitoring:overview")
    _minute_rows(rows, alice_ws, hours=1)
    admin_client.get(url)  # the session and user are cached after the first request
    # session, user, rollup boundary, series, GPU samples, GPU hosts (twice: the page and the
    # accounting), owners, bookings, latest
    with django_assert_num_queries(10):
        admin_client.get(url)
    carol = User.objects.create(username="carol")
    for owner, port in ((bob, 2290), (carol, 2291)):
        workspace = Workspace.objects.create(owner=owner, host=Host.local(), ssh_port=port, slug=owner.username)
        _minute_rows(rows, workspace, hours=1)

    with django_assert_num_queries(10):
        html = admin_client.get(url).content.decode()
    assert html.split('id="member-use"')[1].count("<tr>") == 4  # the head and three members
