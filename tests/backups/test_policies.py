"""The backup policies (backups/policies.py, forms, views, the dashboard's Schedules card): the
form refuses each bad field with words and saves nothing; the beat row follows the policy; the
audit row; the retention preview on Snapshot rows gives restic's reasons (the planner's own) and
marks pins; the prune simulator; next runs from a known crontab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from pytest_django.fixtures import Settings

from backups import policies, retention
from backups.cards import schedule_runs
from backups.models import BackupPolicy, BackupRun, Snapshot
from portal.audit import SYSTEM
from portal.models import AuditEvent, User
from storage import ingestion
from storage.models import FilesystemState, IngestionJob
from tests.backups.beat import offsite_policy, snapshot_policy

pytestmark = pytest.mark.django_db

GOOD = {
    "keep_last": "0",
    "keep_hourly": "24",
    "keep_daily": "7",
    "keep_weekly": "4",
    "keep_monthly": "0",
    "keep_yearly": "0",
    "minute": "0",
    "hour": "*",
    "day_of_week": "*",
    "max_age_hours": "2",
    "enabled": "on",
}


@pytest.fixture(autouse=True)
def policy() -> BackupPolicy:
    return snapshot_policy()


def _post(client: Client, **changes: str) -> Any:
    data = {**GOOD, **changes}
    return client.post(reverse("backups:policy-edit", args=["snapshot"]), {k: v for k, v in data.items() if v != ""})


def _state(policy: BackupPolicy) -> tuple[Any, ...]:
    policy.refresh_from_db()
    task = PeriodicTask.objects.select_related("crontab").get(pk=policy.periodic_task_id)
    crontab = task.crontab
    assert crontab is not None
    return (
        tuple(policy.keep().values()),
        policy.max_age_hours,
        policy.enabled,
        task.enabled,
        crontab.minute,
        crontab.hour,
        crontab.day_of_week,
        str(crontab.timezone),
    )


# --- the migration's row and the form -------------------------------------------------------


def test_the_snapshot_tier_starts_with_the_seeds_defaults_and_an_hourly_beat_row(policy: BackupPolicy) -> None:
    assert policy.keep() == {
        "keep_last": 0,
        "keep_hourly": 24,
        "keep_daily": 7,
        "keep_weekly": 4,
        "keep_monthly": 0,
        "keep_yearly": 0,
    }
    assert policy.periodic_task is not None
    assert policy.periodic_task.name == "backups-snapshots"
    assert policy.periodic_task.task == "backups.tasks.snapshot_run_task"
    assert policies.retention_words(policy) == "24 hourly, 7 daily and 4 weekly"
    assert policies.schedule_words(policies.schedule_of(policy.periodic_task)) == "every hour at :00"  # type: ignore[arg-type]


def test_the_form_shows_the_policy_and_the_rules_in_words(admin_client: Client, policy: BackupPolicy) -> None:
    body = admin_client.get(reverse("backups:policy-edit", args=["snapshot"])).content.decode()
    assert 'name="keep_hourly"' in body
    assert 'value="24"' in body
    assert "-1 keeps every period, 0 turns a rule off" in body
    assert "server time, UTC" in body


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("keep_hourly", "-2", "Hourly: a whole number from -1 (every hourly period) to 100000; 0 turns the rule off."),
        ("keep_daily", "many", "Daily: a whole number from -1"),
        ("keep_weekly", "100001", "Weekly: a whole number from -1"),
        ("keep_last", "", "Last: give a count (0 turns the rule off)."),
        ("keep_yearly", "1.5", "Yearly: a whole number from -1"),
        ("max_age_hours", "0", "The overdue threshold is a whole number of hours from 1 to 1440."),
        ("max_age_hours", "", "Give the overdue threshold in hours."),
        ("minute", "61", "&#x27;61&#x27; is not a cron minute: use 0-59"),
        ("minute", "", "Give the minute (* for every one)."),
        ("hour", "25", "&#x27;25&#x27; is not a cron hour: use 0-23"),
        ("hour", "*; rm -rf /", "is not a cron hour"),
        ("day_of_week", "funday", "&#x27;funday&#x27; is not a cron day of week: use 0-6 or mon-sun"),
    ],
)
def test_each_bad_field_is_refused_with_words_and_nothing_is_saved(
    admin_client: Client, policy: BackupPolicy, field: str, value: str, words: str
) -> None:
    before = _state(policy)
    audits = AuditEvent.objects.count()
    response = _post(admin_client, **{field: value})
    assert response.status_code == 400
    body = response.content.decode()
    assert words in body
    assert f'id="id_{field}_error"' in body
    assert _state(policy) == before
    assert AuditEvent.objects.count() == audits


def test_an_empty_policy_is_refused_because_it_would_remove_every_snapshot(
    admin_client: Client, policy: BackupPolicy
) -> None:
    before = _state(policy)
    response = _post(admin_client, keep_hourly="0", keep_daily="0", keep_weekly="0")
    assert response.status_code == 400
    assert "Keep at least one rule: with every count at 0 the next prune would remove every snapshot." in (
        response.content.decode()
    )
    assert _state(policy) == before


def test_the_service_refuses_bad_values_itself_too(policy: BackupPolicy, admin_user: User) -> None:
    from django.core.exceptions import ValidationError

    before = _state(policy)
    values = {**policies.policy_values(policy), "keep_hourly": 0, "keep_daily": 0, "keep_weekly": 0, "hour": "99"}
    with pytest.raises(ValidationError) as caught:
        policies.backup_policy_update(policy=policy, values=values, actor=admin_user, context=SYSTEM)
    assert set(caught.value.message_dict) == {"__all__", "hour"}
    assert _state(policy) == before


def test_an_unknown_tier_is_not_found(admin_client: Client) -> None:
    assert admin_client.get(reverse("backups:policy-edit", args=["nightly"])).status_code == 404
    assert admin_client.get(reverse("backups:preview", args=["nightly"])).status_code == 404


# --- the beat row follows the policy ----------------------------------------------------------


def test_saving_points_the_beat_row_at_the_new_crontab_in_the_server_time_zone(
    admin_client: Client, policy: BackupPolicy, settings: Settings
) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    old_crontab = policy.periodic_task.crontab  # type: ignore[union-attr]
    response = _post(admin_client, minute="15", hour="*/2", day_of_week="mon-fri", keep_monthly="-1", max_age_hours="5")
    assert response.status_code == 302
    assert response["Location"] == reverse("backups:overview")
    assert _state(policy) == ((0, 24, 7, 4, -1, 0), 5, True, True, "15", "*/2", "mon-fri", "Europe/Berlin")
    # The migration's crontab is used by nothing else any more: gone, no litter.
    assert not CrontabSchedule.objects.filter(pk=old_crontab.pk).exists()  # type: ignore[union-attr]


def test_switching_the_tier_off_disables_its_beat_row_and_on_again(admin_client: Client, policy: BackupPolicy) -> None:
    data = {k: v for k, v in GOOD.items() if k != "enabled"}
    assert admin_client.post(reverse("backups:policy-edit", args=["snapshot"]), data).status_code == 302
    assert _state(policy)[2:4] == (False, False)
    assert _post(admin_client).status_code == 302
    assert _state(policy)[2:4] == (True, True)


def test_a_crontab_shared_with_another_task_is_left_alone(admin_client: Client, policy: BackupPolicy) -> None:
    shared = policy.periodic_task.crontab  # type: ignore[union-attr]
    PeriodicTask.objects.create(name="someone-else", task="x.y", crontab=shared)
    assert _post(admin_client, minute="30").status_code == 302
    shared.refresh_from_db()  # type: ignore[union-attr]
    assert shared.minute == "0"  # type: ignore[union-attr]
    assert _state(policy)[4] == "30"


def test_a_lost_beat_row_is_made_again(admin_client: Client, policy: BackupPolicy) -> None:
    PeriodicTask.objects.filter(name="backups-snapshots").delete()
    assert _post(admin_client, minute="5").status_code == 302
    task = PeriodicTask.objects.get(name="backups-snapshots")
    assert task.task == "backups.tasks.snapshot_run_task"
    assert task.crontab is not None
    assert task.crontab.minute == "5"
    policy.refresh_from_db()
    assert policy.periodic_task_id == task.pk


def test_the_audit_row_keeps_old_and_new(admin_client: Client, policy: BackupPolicy, admin_user: User) -> None:
    assert _post(admin_client, keep_daily="14", minute="30").status_code == 302
    event = AuditEvent.objects.get(action="backups.policy_update")
    assert event.actor == admin_user
    assert event.target_id == str(policy.pk)
    assert event.detail["changes"] == {
        "keep_daily": [7, 14],
        "schedule": ["0 * * * * (UTC)", "30 * * * * (UTC)"],
    }
    # The same values again: nothing changed, no second row.
    assert _post(admin_client, keep_daily="14", minute="30").status_code == 302
    assert AuditEvent.objects.filter(action="backups.policy_update").count() == 1


# --- next runs --------------------------------------------------------------------------------


def test_next_runs_follow_the_crontab_for_a_fixed_now(policy: BackupPolicy, admin_user: User) -> None:
    offsite_policy()
    now = datetime(2026, 12, 2, 14, 20, tzinfo=UTC)
    assert policies.next_runs(now=now) == [
        ("Local snapshots (BTRFS)", datetime(2026, 12, 2, 15, 0, tzinfo=UTC)),
        ("Offsite backup (restic)", datetime(2026, 12, 3, 6, 0, tzinfo=UTC)),  # the seed's 06:00
    ]
    values = {**policies.policy_values(policy), "minute": "30", "hour": "6", "day_of_week": "sat"}
    policies.backup_policy_update(policy=policy, values=values, actor=admin_user, context=SYSTEM)
    # 2026-12-02 is a Wednesday: the next Saturday at 06:30.
    runs = dict(policies.next_runs(now=now))
    assert runs["Local snapshots (BTRFS)"] == datetime(2026, 12, 5, 6, 30, tzinfo=UTC)
    values["enabled"] = False
    policies.backup_policy_update(policy=policy, values=values, actor=admin_user, context=SYSTEM)
    assert dict(policies.next_runs(now=now))["Local snapshots (BTRFS)"] is None


def test_next_run_in_the_server_time_zone(policy: BackupPolicy, admin_user: User, settings: Settings) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    values = {**policies.policy_values(policy), "minute": "0", "hour": "2", "day_of_week": "*"}
    policies.backup_policy_update(policy=policy, values=values, actor=admin_user, context=SYSTEM)
    now = datetime(2026, 12, 2, 14, 20, tzinfo=UTC)
    when = dict(policies.next_runs(now=now))["Local snapshots (BTRFS)"]
    assert when == datetime(2026, 12, 3, 2, 0, tzinfo=ZoneInfo("Europe/Berlin"))


def test_the_schedules_card_lists_snapshots_scrub_and_ingestion_jobs(admin_user: User) -> None:
    job = IngestionJob.objects.create(
        name="customer-data", source="customer:/x", target="customer", schedule_minute="0", schedule_hour="4"
    )
    ingestion._schedule_sync(job)
    now = datetime(2026, 12, 2, 14, 20, tzinfo=UTC)
    runs = dict(schedule_runs(now=now))
    assert runs["Local snapshots (BTRFS)"] == datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    assert runs["Ingestion: customer-data"] == datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
    assert "Monthly scrub" in runs


def test_the_dashboard_shows_the_schedules_card_to_admins_only(admin_client: Client, alice_client: Client) -> None:
    admin_body = admin_client.get("/").content.decode()
    assert 'id="schedule-card"' in admin_body
    assert "Local snapshots (BTRFS)" in admin_body
    assert 'id="schedule-card"' not in alice_client.get("/").content.decode()


# --- the overview ------------------------------------------------------------------------------


def test_the_overview_shows_each_tier_its_last_run_and_the_snapshot_counts(admin_client: Client) -> None:
    snapshot_policy()
    offsite_policy()
    started = timezone.now() - timedelta(minutes=20)
    BackupRun.objects.create(
        kind="snapshot", result="failed", started_at=started, finished_at=started, message="No space left"
    )
    alice = User.objects.create(username="alice", email="alice@corp.example")
    _rows({"homes/alice": alice}, hours=3, pins={1: "restore of alice"})
    body = admin_client.get(reverse("backups:overview")).content.decode()
    assert "Local snapshots (BTRFS)" in body
    assert "Every hour at :00" in body
    assert "24 hourly, 7 daily and 4 weekly" in body
    assert "No space left" in body
    assert "Offsite backup (restic)" in body
    assert "Not set up: No offsite repository is set up: set BACKUP_RESTIC_REPOSITORY" in body
    assert "Daily at 06:00" in body
    assert "homes/alice" in body
    assert "Snapshots are not available" not in body


def test_the_overview_says_snapshots_are_not_available_off_btrfs(admin_client: Client, settings: Any) -> None:
    FilesystemState.objects.create(root=settings.STORAGE_ROOT, on_btrfs=False)
    body = admin_client.get(reverse("backups:overview")).content.decode()
    assert "Snapshots are not available" in body


# --- the preview ----------------------------------------------------------------------------


def _rows(
    sources: dict[str, User | None], *, hours: int, pins: dict[int, str] | None = None, end: datetime | None = None
) -> list[Snapshot]:
    """Hourly Snapshot rows of each source, the newest at ``end`` (default: this hour)."""
    end = end or timezone.now().replace(minute=0, second=0, microsecond=0)
    made = []
    for source, owner in sources.items():
        for i in range(hours):
            at = end - timedelta(hours=i)
            made.append(
                Snapshot.objects.create(
                    source=source,
                    owner=owner,
                    path=f"/srv/.snapshots/{source}/{at:%Y-%m-%dT%H%M%SZ}",
                    taken_at=at,
                    pinned=(pins or {}).get(i, ""),
                )
            )
    return made


def test_the_preview_gives_restics_reasons_for_each_source_and_marks_pins(policy: BackupPolicy) -> None:
    alice = User.objects.create(username="alice", email="alice@corp.example")
    end = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    rows = _rows({"homes/alice": alice, "datasets": None}, hours=240, pins={200: "restore of alice"}, end=end)
    gone = rows[5]
    gone.deleted_at = end
    gone.save()
    now = end + timedelta(minutes=5)
    previews = policies.retention_preview(policy, now=now)
    assert [(p.source, p.owner) for p in previews] == [("datasets", ""), ("homes/alice", "alice")]
    # The planner itself on the same rows: the preview is exactly its plan.
    live = [row for row in rows if row.deleted_at is None]
    expected = retention.plan(policies.planner_snapshots(live), policies.to_planner(policy), now=now)
    for preview in previews:
        group = expected.group(preview.source)
        kept = {k.snapshot.time: k.reasons for k in group.keep}
        assert {row.time: row.reasons for row in preview.rows if row.keep} == kept
        assert {row.time for row in preview.rows if not row.keep} == {s.time for s in group.remove}
        times = [row.time for row in preview.rows]
        assert times == sorted(times, reverse=True)
    alice_rows = previews[1].rows
    assert alice_rows[0].reasons == ("hourly snapshot", "daily snapshot", "weekly snapshot")
    pinned = [row for row in alice_rows if row.pinned]
    assert len(pinned) == 1
    assert pinned[0].reasons[0] == "pinned: restore of alice"
    assert pinned[0].time == end - timedelta(hours=200)
    # 24 hourly + 6 more daily + the weekly beyond the days + the pin; the deleted row is not there.
    assert previews[1].kept == len(expected.group("homes/alice").keep)
    assert len(alice_rows) == 239  # the deleted row is not planned
    assert len(previews[0].rows) == 240


def test_the_preview_page_shows_reasons_as_pills_and_removals_struck_out(admin_client: Client) -> None:
    alice = User.objects.create(username="alice", email="alice@corp.example")
    _rows({"homes/alice": alice}, hours=60, pins={50: "tonight's offsite run"})
    body = admin_client.get(reverse("backups:preview", args=["snapshot"])).content.decode()
    assert '<span class="pill pill-ok">hourly snapshot</span>' in body
    assert '<span class="pill pill-ok">daily snapshot</span>' in body
    assert "pinned: tonight&#x27;s offsite run" in body
    assert "<del" in body
    assert "homes/alice" in body


def test_the_preview_of_an_empty_policy_says_why_instead_of_failing(admin_client: Client) -> None:
    BackupPolicy.objects.filter(tier="snapshot").update(keep_hourly=0, keep_daily=0, keep_weekly=0)
    response = admin_client.get(reverse("backups:preview", args=["snapshot"]))
    assert response.status_code == 200
    assert "This policy can&#x27;t be applied" in response.content.decode()


# --- the simulator --------------------------------------------------------------------------

TIMES = """2026-12-02T14:00:00+00:00
2026-12-02T13:00:00+00:00

2026-12-01T23:00:00+01:00
2026-11-30T10:00:00+00:00
"""


def _simulate(client: Client, **fields: str) -> Any:
    data = {
        "times": TIMES,
        "keep_last": "0",
        "keep_hourly": "0",
        "keep_daily": "2",
        "keep_weekly": "0",
        "keep_monthly": "0",
        "keep_yearly": "0",
        "now": "2026-12-02T15:00:00+00:00",
        **fields,
    }
    return client.post(reverse("backups:simulator"), data)


def test_the_simulator_plans_pasted_times_like_the_command(admin_client: Client) -> None:
    from io import StringIO

    from backups.management.commands.retention_plan import run

    response = _simulate(admin_client)
    assert response.status_code == 200
    body = response.content.decode()
    command = run(
        StringIO(
            '{"policy": {"keep_daily": 2}, "now": "2026-12-02T15:00:00+00:00", "snapshots": '
            '["2026-12-02T14:00:00+00:00", "2026-12-02T13:00:00+00:00", "2026-12-01T23:00:00+01:00", '
            '"2026-11-30T10:00:00+00:00"]}'
        )
    )
    assert [k["time"] for k in command["keep"]] == ["2026-12-02T14:00:00+00:00", "2026-12-01T23:00:00+01:00"]
    for kept in command["keep"]:
        assert kept["time"] in body
    assert '<span class="pill pill-ok">daily snapshot</span>' in body
    assert "2 kept" in body
    assert "2 removed" in body
    assert body.count("<del") == 2


def test_the_simulator_names_a_bad_line_by_its_number(admin_client: Client) -> None:
    response = _simulate(admin_client, times="2026-12-02T14:00:00+00:00\n\nyesterday\n")
    assert response.status_code == 400
    assert "Line 3: &quot;yesterday&quot; is not an ISO 8601 time with an offset" in response.content.decode()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"times": "2026-12-02T14:00"}, "Line 1: &quot;2026-12-02T14:00&quot; is not an ISO 8601 time with an offset"),
        ({"times": "   \n"}, "Paste at least one snapshot time"),
        ({"keep_daily": "0"}, "Keep at least one rule"),
        ({"keep_daily": "-3"}, "Daily: a whole number from -1"),
        ({"keep_within": "7 days"}, "is not a duration"),
        ({"now": "tomorrow"}, "Now: &quot;tomorrow&quot; is not an ISO 8601 time with an offset"),
    ],
)
def test_the_simulator_refuses_bad_input_with_words(admin_client: Client, fields: dict[str, str], words: str) -> None:
    response = _simulate(admin_client, **fields)
    assert response.status_code == 400
    body = response.content.decode()
    assert words in body
    assert "<del" not in body


def test_the_simulator_form_starts_from_the_snapshot_policy(admin_client: Client) -> None:
    body = admin_client.get(reverse("backups:simulator")).content.decode()
    assert 'name="keep_hourly" value="24"' in body


def test_keep_within_works_in_the_simulator(admin_client: Client) -> None:
    response = _simulate(admin_client, keep_daily="0", keep_within="1d")
    assert response.status_code == 200
    assert "within 1d" in response.content.decode()


def test_the_offsite_policy_takes_its_upload_limit_and_excludes(admin_client: Client) -> None:
    offsite = BackupPolicy.of(BackupPolicy.Tier.RESTIC)
    page = admin_client.get(reverse("backups:policy-edit", args=["restic"])).content.decode()
    assert "Upload limit (Mbit/s)" in page
    assert "100 Mbit/s is 12207 KiB/s" in page
    assert ".local/share/Trash" in page  # the seed's excludes, one a line
    form = {**GOOD, "upload_limit_mbps": "40", "excludes": ".cache\n\n*.tmp\n.cache\n"}
    response = admin_client.post(reverse("backups:policy-edit", args=["restic"]), form)
    assert response.status_code == 302, response.content.decode()
    offsite.refresh_from_db()
    assert offsite.upload_limit_mbps == 40
    assert offsite.excludes == [".cache", "*.tmp"]
    assert offsite.periodic_task is not None
    assert offsite.periodic_task.name == "backups-offsite"
    event = AuditEvent.objects.get(action="backups.policy_update", target_id=str(offsite.pk))
    assert event.detail["changes"]["upload_limit_mbps"] == [100, 40]
    overview = admin_client.get(reverse("backups:overview")).content.decode()
    assert "restic --limit-upload 4882 KiB/s" in overview


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("upload_limit_mbps", "0", "whole number of Mbit/s from 1 to 10000"),
        ("upload_limit_mbps", "fast", "whole number of Mbit/s from 1 to 10000"),
        ("excludes", "/homes/alice/big", "starts with /: patterns match anywhere"),
        ("excludes", "a\x01b", "is not a pattern"),
        ("excludes", "\n".join(f"p{i}" for i in range(101)), "At most 100 patterns"),
    ],
)
def test_bad_offsite_fields_are_refused_and_nothing_changes(
    admin_client: Client, field: str, value: str, words: str
) -> None:
    offsite = BackupPolicy.of(BackupPolicy.Tier.RESTIC)
    before = (offsite.upload_limit_mbps, list(offsite.excludes), offsite.keep())
    form = {**GOOD, "upload_limit_mbps": "100", "excludes": ".cache", field: value}
    response = admin_client.post(reverse("backups:policy-edit", args=["restic"]), form)
    assert response.status_code == 400
    assert words in response.content.decode()
    offsite.refresh_from_db()
    assert (offsite.upload_limit_mbps, list(offsite.excludes), offsite.keep()) == before
    assert not AuditEvent.objects.filter(action="backups.policy_update").exists()


def test_the_timeline_folds_stretches_of_removed_snapshots() -> None:
    at = datetime(2026, 12, 2, 14, tzinfo=UTC)
    rows = [
        policies.PlanRow(str(i), at - timedelta(hours=i), keep, ("hourly snapshot",) if keep else ())
        for i, keep in enumerate([True, False, False, True, False, False, False, True, False])
    ]
    entries = policies.compact(rows)
    assert [type(e).__name__ for e in entries] == [
        "PlanRow",
        "PlanRow",
        "PlanRow",
        "PlanRow",
        "RemovedRun",
        "PlanRow",
        "PlanRow",
    ]
    run = entries[4]
    assert isinstance(run, policies.RemovedRun)
    assert (run.newest.label, run.oldest.label, len(run.rows)) == ("4", "6", 3)
