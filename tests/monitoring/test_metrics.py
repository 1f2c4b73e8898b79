"""/metrics: what the collector says from rows, in a fixed number of queries, and who may read it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from backups.models import BackupRun
from gpus.models import GPU, Booking, GpuSample
from monitoring.heartbeats import stamp
from monitoring.metrics import metrics_text
from monitoring.models import Alert, AlertKind, AlertRule, Sample
from monitoring.rules import rules_ensure
from portal.models import Host, Operation
from storage.models import MemberStorage
from tests.factories import UserFactory
from tests.monitoring.metrics_world import World, world_make
from tests.portal.test_settings import PRODUCTION_ENV, _manage
from workspaces.models import Workspace

# A Thursday noon: the team week (UTC here) began on Monday 00:00.
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TOKEN = "metrics-test-token-" + "m" * 32

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(now: datetime = NOW) -> Series:
    """Every sample of the exposition, by (name, sorted labels)."""
    families = text_string_to_metric_families(metrics_text(now=now).decode())
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def names(series: Series) -> set[str]:
    return {name for name, _ in series}


def at(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


@pytest.fixture
def world(db: None) -> World:
    return world_make(NOW)


def test_workspaces_are_counted_by_host_and_state_with_zeros_for_the_rest(world: World) -> None:
    series = scrape()
    assert series["portal_workspaces", (("host", "local"), ("state", "running"))] == 1
    assert series["portal_workspaces", (("host", "local"), ("state", "error"))] == 1
    assert series["portal_workspaces", (("host", "gpu2"), ("state", "stopped"))] == 1
    assert series["portal_workspaces", (("host", "gpu2"), ("state", "running"))] == 0
    assert series["portal_host_reachable", (("host", "local"),)] == 1
    assert series["portal_host_reachable", (("host", "gpu2"),)] == 0


def test_operations_of_the_last_day_give_counts_and_durations_by_kind_and_result(world: World) -> None:
    series = scrape()
    succeeded = (("kind", "workspace.start"), ("state", "succeeded"))
    assert series["portal_operations_last_day", succeeded] == 2  # the one of 29 h ago is out
    assert series["portal_operation_duration_seconds_mean", succeeded] == 60
    assert series["portal_operation_duration_seconds_max", succeeded] == 90
    assert series["portal_operations_last_day", (("kind", "workspace.start"), ("state", "failed"))] == 1
    assert series["portal_operations_unfinished", (("kind", "backups.restore"), ("state", "running"))] == 1


def test_bookings_and_the_weeks_gpu_hours_are_the_usage_pages_figures(world: World) -> None:
    series = scrape()
    assert series["portal_bookings_active", ()] == 1
    assert series["portal_bookings_upcoming", ()] == 1  # the cancelled one is not
    # alice: 3 h x 2 GPUs booked this week; 30 busy sampled minutes (the idle one does not count).
    assert series["portal_gpu_week_booked_seconds", (("member", "alice"),)] == 6 * 3600
    assert series["portal_gpu_week_used_seconds", (("member", "alice"),)] == 1800
    assert series["portal_gpu_week_booked_seconds", (("member", "bob"),)] == 2 * 3600
    assert series["portal_gpu_week_start_timestamp_seconds", ()] == datetime(2026, 11, 23, tzinfo=UTC).timestamp()


def test_each_gpu_shows_its_newest_fresh_sample(world: World) -> None:
    series = scrape()
    gpu = (("gpu", "0"), ("host", "local"))
    assert series["portal_gpu_temperature_celsius", gpu] == 71
    assert series["portal_gpu_utilization_percent", gpu] == 90
    assert series["portal_gpu_power_watts", gpu] == 250
    later = scrape(NOW + timedelta(minutes=15))  # the newest sample is 16 minutes old by then
    assert "portal_gpu_temperature_celsius" not in names(later)


def test_backups_give_last_success_age_limit_and_open_incidents_per_tier(world: World) -> None:
    series = scrape()
    assert series["portal_backup_last_success_timestamp_seconds", (("tier", "snapshot"),)] == at(1).timestamp()
    assert series["portal_backup_age_seconds", (("tier", "snapshot"),)] == 3600
    assert series["portal_backup_max_age_seconds", (("tier", "snapshot"),)] == 2 * 3600
    assert series["portal_backup_incident", (("incident", "failed"), ("tier", "restic"))] == 1
    assert ("portal_backup_age_seconds", (("tier", "restic"),)) not in series  # never succeeded: no age


def test_storage_per_member_leaves_out_who_was_not_measured(world: World) -> None:
    series = scrape()
    assert series["portal_storage_used_bytes", (("member", "alice"),)] == 5 * 1024**3
    assert series["portal_storage_limit_bytes", (("member", "alice"),)] == 100 * 1024**3
    assert ("portal_storage_used_bytes", (("member", "bob"),)) not in series


def test_heartbeats_give_each_queues_age_and_whether_it_is_late(world: World) -> None:
    series = scrape()
    assert series["portal_heartbeat_age_seconds", (("queue", "portal"),)] == 40
    assert series["portal_heartbeat_late", (("queue", "portal"),)] == 0
    assert series["portal_heartbeat_late", (("queue", "host.local"),)] == 1
    assert series["portal_heartbeat_late", (("queue", "host.gpu2"),)] == 1  # never stamped
    assert ("portal_heartbeat_age_seconds", (("queue", "host.gpu2"),)) not in series


def test_host_figures_are_the_newest_fresh_raw_rows_and_absent_sources_absent(world: World) -> None:
    series = scrape()
    assert series["portal_host_cpu_busy_percent", ()] == 42
    assert series["portal_host_memory_total_bytes", ()] == 64e9
    assert series["portal_host_load_average", (("minutes", "5"),)] == 1.5
    assert series["portal_host_pressure_percent", (("kind", "some"), ("resource", "memory"))] == 3.25
    assert series["portal_host_disk_used_bytes", (("disk", "srv"),)] == 9e11
    assert series["portal_host_sample_timestamp_seconds", ()] == (NOW - timedelta(minutes=1)).timestamp()
    assert "portal_host_swap_used_bytes" not in names(series)  # 20 minutes old
    assert "portal_host_load_average" not in names(scrape(NOW + timedelta(minutes=30)))


def test_an_empty_portal_exposes_no_host_or_gpu_figures(db: None) -> None:
    series = scrape()
    assert not {
        name for name in names(series) if name.startswith(("portal_host_sample", "portal_host_cpu", "portal_gpu_t"))
    }
    assert series["portal_bookings_active", ()] == 0


def _more_rows(world: World) -> None:
    """Ten times the rows of every kind the collector reads."""
    for n in range(10):
        member = UserFactory(username=f"m{n}")
        host = Host.objects.create(name=f"h{n}", queue=f"host.h{n}", state=Host.State.ONLINE)
        Workspace.objects.create(owner=member, host=host, ssh_port=2400 + n, slug=f"m{n}", state="running")
        Operation.objects.create(
            kind=f"k{n}", state="succeeded", owner=member, actor=member, started=at(1), finished=at(0.5)
        )
        Booking.objects.create(user=member, host=world.host, start=at(1), end=at(-1), state=Booking.State.ACTIVE)
        MemberStorage.objects.create(
            user=member, kind="folder", home_path=f"/h/{n}", scratch_path=f"/s/{n}", referenced=n
        )
        GpuSample.objects.create(
            gpu=GPU.objects.create(host=host, index=0, name="x"), at=at(0.05), utilization=1, memory_used=1
        )
        BackupRun.objects.create(kind="snapshot", result="succeeded", started_at=at(n), finished_at=at(n))
        stamp(f"host.h{n}", now=NOW)
        Sample.objects.create(series=f"disk.d{n}.used_bytes", at=NOW - timedelta(minutes=1), value=n)


def test_open_alerts_are_counted_by_rule_and_state_and_resolved_ones_not(world: World) -> None:
    rules_ensure()  # the migration's rows (a transactional test elsewhere may have flushed them)
    disk = AlertRule.objects.get(kind=AlertKind.DISK_USAGE)
    for subject, state in [("disk root", "firing"), ("disk srv", "firing"), ("disk tmp", "pending")]:
        Alert.objects.create(rule=disk, subject=subject, state=state, started_at=at(1))
    Alert.objects.create(rule=disk, subject="disk old", state="resolved", started_at=at(5), resolved_at=at(4))
    AlertRule.objects.filter(kind=AlertKind.SCRUB_ERRORS).update(enabled=False)

    series = scrape()

    assert series["portal_alerts", (("rule", "disk_usage"), ("state", "firing"))] == 2
    assert series["portal_alerts", (("rule", "disk_usage"), ("state", "pending"))] == 1
    assert series["portal_alerts", (("rule", "heartbeat"), ("state", "firing"))] == 0  # every rule listed
    assert ("portal_alerts", (("rule", "disk_usage"), ("state", "resolved"))) not in series
    assert series["portal_alert_rule_enabled", (("rule", "scrub_errors"),)] == 0
    assert series["portal_alert_rule_enabled", (("rule", "disk_usage"),)] == 1


def test_a_scrape_takes_the_same_few_queries_however_many_rows(world: World) -> None:
    scrape()  # the first one makes the booking policy's row (gpus.models.BookingPolicy.current)
    with CaptureQueriesContext(connection) as small:
        scrape()
    _more_rows(world)
    with CaptureQueriesContext(connection) as large:
        series = scrape()
    assert len(large) == len(small) <= 20, [query["sql"][:80] for query in large.captured_queries]
    assert series["portal_storage_used_bytes", (("member", "m9"),)] == 9  # the new rows were read


# --- who may read it --------------------------------------------------------------------------


def test_the_right_bearer_token_gets_the_exposition(world: World, client: Client) -> None:
    response = client.get(reverse("monitoring:metrics"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"portal_workspaces{" in response.content
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer wrong",
    ],
)
def test_a_missing_or_wrong_token_is_a_401_asking_for_a_bearer(
    db: None, client: Client, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get(reverse("monitoring:metrics"), headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"bearer token is required" in response.content
    assert b"portal_" not in response.content


def test_an_admins_session_without_the_token_is_refused_too(admin_client: Client) -> None:
    response = admin_client.get(reverse("monitoring:metrics"))
    assert response.status_code == 401


def test_the_scheme_word_is_case_insensitive(db: None, client: Client) -> None:
    response = client.get(reverse("monitoring:metrics"), headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


@override_settings(METRICS_TOKEN="")
def test_with_no_token_configured_metrics_are_off_for_everyone(db: None, client: Client) -> None:
    for authorization in ("", "Bearer ", f"Bearer {TOKEN}"):
        response = client.get(reverse("monitoring:metrics"), headers={"Authorization": authorization})
        assert response.status_code == 403
        assert b"no METRICS_TOKEN is configured" in response.content


def test_only_get_and_head_are_answered(db: None, client: Client) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.head(reverse("monitoring:metrics"), headers=headers).status_code == 200
    assert client.post(reverse("monitoring:metrics"), headers=headers).status_code == 405


# --- settings ---------------------------------------------------------------------------------


def test_production_reads_the_token_from_its_file_and_lets_prometheus_scrape_over_http(tmp_path: Path) -> None:
    (tmp_path / "metrics-token").write_text(TOKEN + "\n")
    code = (
        "import re; from django.conf import settings as s;"
        "print(s.METRICS_TOKEN, s.SECURE_SSL_REDIRECT, any(re.search(p, 'metrics') for p in s.SECURE_REDIRECT_EXEMPT))"
    )
    env = {**PRODUCTION_ENV, "METRICS_TOKEN_FILE": str(tmp_path / "metrics-token")}
    result = _manage("shell", "--no-imports", "-c", code, env=env)
    assert result.stdout.split() == [TOKEN, "True", "True"], result.stderr


def test_a_short_token_stops_startup_naming_it() -> None:
    result = _manage("check", env={**PRODUCTION_ENV, "METRICS_TOKEN": "short-token"})
    assert result.returncode != 0
    assert "METRICS_TOKEN must be at least 32 characters" in result.stderr.splitlines()[-1]
