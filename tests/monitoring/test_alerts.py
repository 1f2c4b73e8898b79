"""The alert evaluation against real rows: every kind fires once and resolves once across a
minute-by-minute run of evaluations; a blip shorter than "for" never fires; silences, a
disabled rule, absent figures, and two evaluations at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from celery import current_app
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from backups.models import BackupPolicy
from gpus.models import GPU
from monitoring import heartbeats, rules
from monitoring.alerts import Evaluation, alerts_evaluate, alerts_prune
from monitoring.models import Alert, AlertKind, AlertRule, Resolution, Sample, Silence
from monitoring.rules import rules_ensure
from portal.models import AuditEvent, Host, Notification, User
from storage.models import ScrubRun
from tests.factories import UserFactory
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db
GIB = 1024**3
T0 = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


@pytest.fixture
def slack_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What would go to Slack after the commit (the task is sent by name; nothing runs it here)."""
    lines: list[str] = []

    def send_task(name: str, args: list[Any] | None = None, **kwargs: Any) -> None:
        assert name == "portal.tasks.slack_post_task"
        lines.append(args[0] if args else "")

    monkeypatch.setattr(current_app, "send_task", send_task)
    return lines


@pytest.fixture(autouse=True)
def _rules(db: None) -> None:
    rules_ensure()  # a transactional test's flush drops the migration's rows


@pytest.fixture
def admin(db: None) -> User:
    return UserFactory(username="ada", is_staff=True)


@pytest.fixture
def evaluate(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[[datetime], Evaluation]:
    def run(now: datetime) -> Evaluation:
        with django_capture_on_commit_callbacks(execute=True):
            return alerts_evaluate(now=now)

    return run


def only(kind: str, *, for_minutes: int = 5, **fields: Any) -> AlertRule:
    """Turn every other rule off (an empty database would fire the heartbeat rule) and set this one."""
    AlertRule.objects.exclude(kind=kind).update(enabled=False)
    AlertRule.objects.filter(kind=kind).update(enabled=True, for_minutes=for_minutes, **fields)
    return AlertRule.objects.get(kind=kind)


def sample(series: str, value: float, minute: int) -> None:
    Sample.objects.create(series=series, resolution=Resolution.RAW, at=at(minute), value=value)


# Each kind: how to make its condition bad or good at a minute, and the subject it names.
def _disk(bad: bool, minute: int) -> None:
    sample("disk.root.used_bytes", (95 if bad else 50) * GIB, minute)
    sample("disk.root.total_bytes", 100.0 * GIB, minute)


def _gpu(bad: bool, minute: int) -> None:
    gpu, _ = GPU.objects.get_or_create(host=Host.local(), index=0, defaults={"name": "RTX 5080", "memory_bytes": GIB})
    gpu.samples.create(at=at(minute), utilization=90, memory_used=GIB, temperature=91 if bad else 60)


def _pressure(bad: bool, minute: int) -> None:
    sample("host.psi.memory.some10", 35.0 if bad else 2.0, minute)


def _btrfs(bad: bool, minute: int) -> None:
    sample("btrfs.data.errors", 4.0 if bad else 0.0, minute)


def _smart(bad: bool, minute: int) -> None:
    sample("smart.sdb.failed", 1.0 if bad else 0.0, minute)


def _backup(bad: bool, minute: int) -> None:
    policy = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    BackupPolicy.objects.filter(pk=policy.pk).update(
        enabled=True, incident="failed" if bad else "", incident_since=at(0) if bad else None
    )
    BackupPolicy.objects.exclude(pk=policy.pk).update(enabled=False)


def _scrub(bad: bool, minute: int) -> None:
    if minute in (0, 12):  # a scrub that found errors, then a clean one
        result = ScrubRun.Result.CORRECTED if bad else ScrubRun.Result.CLEAN
        ScrubRun.objects.create(
            mount="/srv", result=result, corrected_errors=2 if bad else 0, started_at=at(minute), finished_at=at(minute)
        )


def _crashes(bad: bool, minute: int) -> None:
    if minute != 0:
        return  # three crashes at minute 0; the 10-minute window lets them go by minute 10
    owner = UserFactory(username="alice")
    workspace = Workspace.objects.create(owner=owner, host=Host.local(), ssh_port=2290, slug="alice")
    for _ in range(3):
        event = AuditEvent.objects.create(
            action="workspace.observed",
            target_type="workspace",
            target_id=str(workspace.pk),
            detail={"before": "running", "after": "stopped"},
        )
        AuditEvent.objects.filter(pk=event.pk).update(created=at(0))


def _host(bad: bool, minute: int) -> None:
    Host.objects.filter(pk=Host.local().pk).update(state=Host.State.UNREACHABLE if bad else Host.State.ONLINE)


def _heartbeat(bad: bool, minute: int) -> None:
    heartbeats.stamp("portal", now=at(minute))
    heartbeats.stamp(Host.local().queue, now=at(minute - 10 if bad else minute))


KINDS: dict[str, tuple[Callable[[bool, int], None], str, dict[str, Any]]] = {
    AlertKind.DISK_USAGE: (_disk, "disk root", {}),
    AlertKind.GPU_TEMPERATURE: (_gpu, "GPU 0 on local", {}),
    AlertKind.MEMORY_PRESSURE: (_pressure, "host memory", {}),
    AlertKind.BTRFS_ERRORS: (_btrfs, "filesystem data", {}),
    AlertKind.SMART_FAILED: (_smart, "disk sdb", {}),
    AlertKind.BACKUP: (_backup, "Local snapshots", {}),
    AlertKind.SCRUB_ERRORS: (_scrub, "scrub of /srv", {}),
    AlertKind.CRASH_LOOP: (_crashes, "workspace ws-alice", {"window_minutes": 10}),
    AlertKind.HOST_UNREACHABLE: (_host, "host local", {}),
    AlertKind.HEARTBEAT: (_heartbeat, "queue host.local", {}),
}


def test_every_kind_has_its_rule_with_the_defaults() -> None:
    rules_ensure()
    rules = {rule.kind: rule for rule in AlertRule.objects.all()}
    assert set(rules) == set(AlertKind.values)
    assert (rules["disk_usage"].threshold, rules["disk_usage"].for_minutes) == (85.0, 10)
    assert (rules["crash_loop"].threshold, rules["crash_loop"].window_minutes) == (3.0, 15)
    assert rules["smart_failed"].threshold is None
    assert all(rule.enabled for rule in rules.values())


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_rule_fires_once_and_resolves_once_across_repeated_evaluations(
    kind: str, admin: User, evaluate: Callable[[datetime], Evaluation], slack_lines: list[str]
) -> None:
    make, subject, fields = KINDS[kind]
    only(kind, for_minutes=5, **fields)
    if kind == AlertKind.BACKUP:
        subject = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT).get_tier_display()
    fired, resolved = [], []
    for minute in range(18):  # bad for 12 minutes, good for 6, one evaluation a minute
        make(minute < 12, minute)
        result = evaluate(at(minute))
        fired += [(minute, name) for name in result.fired]
        resolved += [(minute, name) for name in result.resolved]
        if minute < 5:
            assert Alert.objects.get().state == Alert.State.PENDING, f"fired before its 'for' at minute {minute}"
    assert fired == [(5, f"{kind}: {subject}")]
    assert len(resolved) == 1
    alert = Alert.objects.get()
    assert (alert.state, alert.subject, alert.fired_at) == (Alert.State.RESOLVED, subject, at(5))
    notes = list(admin.notifications.order_by("pk").values_list("title", flat=True))
    if rules.KINDS[kind].told_elsewhere:  # told by its own app (backups/alerts.py, storage/usage.py), never twice
        assert (notes, slack_lines) == ([], [])
        return
    assert notes == [f"Firing: {alert.rule} on {subject}", f"Resolved: {alert.rule} on {subject}"]
    assert len(slack_lines) == 2
    assert slack_lines[0].startswith(f"Firing: {alert.rule} on {subject}\n")
    assert "since" in slack_lines[0]
    assert "/monitoring/alerts/" in slack_lines[0]
    assert "after" in slack_lines[1]


def test_the_firing_message_says_what_where_value_threshold_and_how_long(
    admin: User, evaluate: Callable[[datetime], Evaluation], slack_lines: list[str]
) -> None:
    only(AlertKind.DISK_USAGE, for_minutes=5)
    for minute in range(6):
        _disk(True, minute)
        evaluate(at(minute))
    (line,) = slack_lines
    assert line.splitlines()[1].startswith(
        f"Disk usage on disk root: 95 % (threshold 85 %), since {at(0):%Y-%m-%d %H:%M} UTC for 5 min."
    )
    for minute in range(6, 30):
        _disk(minute < 25, minute)
        evaluate(at(minute))
    assert slack_lines[1] == (
        f"Resolved: Disk usage on disk root\nBack to normal after 20 min (since {at(5):%Y-%m-%d %H:%M} UTC)."
    )
    assert Notification.objects.filter(user=admin, level=Notification.Level.ERROR).count() == 1


def test_a_threshold_edited_during_an_incident_shows_in_its_words(
    admin: User, evaluate: Callable[[datetime], Evaluation], slack_lines: list[str]
) -> None:
    rule = only(AlertKind.DISK_USAGE, for_minutes=1)
    _disk(True, 0)
    evaluate(at(0))
    AlertRule.objects.filter(pk=rule.pk).update(threshold=90)
    _disk(True, 1)
    evaluate(at(1))
    assert "95 % (threshold 90 %)" in slack_lines[0]
    assert Alert.objects.get().threshold == 90


def test_a_blip_shorter_than_for_never_fires_and_tells_nobody(
    admin: User, evaluate: Callable[[datetime], Evaluation], slack_lines: list[str]
) -> None:
    only(AlertKind.DISK_USAGE, for_minutes=5)
    for minute in range(10):
        _disk(minute in (2, 3, 4, 5), minute)  # four minutes over 85 %
        evaluate(at(minute))
    alert = Alert.objects.get()
    assert (alert.state, alert.fired_at, alert.resolution) == (Alert.State.RESOLVED, None, "back to normal")
    assert slack_lines == []
    assert not admin.notifications.exists()


def test_a_rule_with_for_zero_fires_at_the_first_evaluation(
    admin: User, evaluate: Callable[[datetime], Evaluation], slack_lines: list[str]
) -> None:
    only(AlertKind.SMART_FAILED, for_minutes=0)
    _smart(True, 0)
    assert evaluate(at(0)).fired == ["smart_failed: disk sdb"]
    assert len(slack_lines) == 1


def test_figures_that_are_absent_fire_nothing_and_a_firing_subject_gone_absent_resolves(
    admin: User, evaluate: Callable[[datetime], Evaluation], slack_lines: list[str]
) -> None:
    AlertRule.objects.update(enabled=False)
    AlertRule.objects.filter(kind__in=["btrfs_errors", "smart_failed", "disk_usage", "gpu_temperature"]).update(
        enabled=True, for_minutes=0
    )
    sample("host.cpu.percent", 99.0, 0)  # other series: nothing to judge
    assert evaluate(at(0)).opened == []
    _disk(True, 1)
    evaluate(at(1))
    evaluate(at(10))  # the only reading is 9 minutes old: absent now
    alert = Alert.objects.get()
    assert (alert.state, alert.resolution) == (Alert.State.RESOLVED, "no reading any more")
    assert [line.split("\n")[0] for line in slack_lines] == [
        "Firing: Disk usage on disk root",
        "Resolved: Disk usage on disk root",
    ]


def test_a_silenced_incident_opens_and_closes_in_the_history_but_tells_nobody(
    admin: User, evaluate: Callable[[datetime], Evaluation], slack_lines: list[str]
) -> None:
    rule = only(AlertKind.MEMORY_PRESSURE, for_minutes=2)
    Silence.objects.create(rule=rule, subject="", starts_at=at(0), ends_at=at(60), reason="load test")
    for minute in range(10):
        _pressure(minute < 6, minute)
        evaluate(at(minute))
    alert = Alert.objects.get()
    assert (alert.state, alert.fired_at, alert.silenced, alert.notified_at) == (Alert.State.RESOLVED, at(2), True, None)
    assert slack_lines == []
    assert not admin.notifications.exists()


def test_a_silence_that_ends_while_firing_tells_the_incident_then_once(
    admin: User, evaluate: Callable[[datetime], Evaluation], slack_lines: list[str]
) -> None:
    rule = only(AlertKind.MEMORY_PRESSURE, for_minutes=2)
    Silence.objects.create(rule=rule, subject="host memory", starts_at=at(0), ends_at=at(5), reason="maintenance")
    Silence.objects.create(rule=rule, subject="another subject", starts_at=at(0), ends_at=at(60), reason="other")
    for minute in range(12):
        _pressure(minute < 9, minute)
        evaluate(at(minute))
    titles = [line.split("\n")[0] for line in slack_lines]
    assert titles == ["Firing: Memory pressure on host memory", "Resolved: Memory pressure on host memory"]
    assert "held back by a silence until now" in slack_lines[0]
    assert Alert.objects.get().notified_at == at(5)


def test_turning_a_rule_off_resolves_its_open_incidents_quietly(
    admin: User, evaluate: Callable[[datetime], Evaluation], slack_lines: list[str]
) -> None:
    rule = only(AlertKind.HOST_UNREACHABLE, for_minutes=0)
    _host(True, 0)
    evaluate(at(0))
    assert len(slack_lines) == 1
    AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
    evaluate(at(1))
    evaluate(at(2))
    alert = Alert.objects.get()
    assert (alert.state, alert.resolution) == (Alert.State.RESOLVED, "the rule was turned off")
    assert len(slack_lines) == 1


def test_every_queue_late_is_one_incident_of_beat(admin: User, evaluate: Callable[[datetime], Evaluation]) -> None:
    only(AlertKind.HEARTBEAT, for_minutes=0)
    heartbeats.stamp("portal", now=at(-30))
    heartbeats.stamp(Host.local().queue, now=at(-30))
    assert evaluate(at(0)).fired == ["heartbeat: beat"]


def test_a_crash_loop_below_its_threshold_does_not_fire(evaluate: Callable[[datetime], Evaluation]) -> None:
    only(AlertKind.CRASH_LOOP, for_minutes=0, threshold=4, window_minutes=10)
    _crashes(True, 0)
    result = evaluate(at(1))
    assert (result.opened, Alert.objects.count()) == ([], 0)


@pytest.fixture
def committed_rule(transactional_db: None) -> AlertRule:
    """A firing-ready disk rule in committed rows, for evaluations on two connections."""
    UserFactory(username="ada", is_staff=True)
    rule = only(AlertKind.DISK_USAGE, for_minutes=0)
    _disk(True, 0)
    return rule


def test_two_evaluations_at_once_tell_an_incident_once(
    committed_rule: AlertRule, slack_lines: list[str], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    barrier = threading.Barrier(2)
    results: list[Evaluation] = []

    def evaluate_in_thread() -> None:
        try:
            barrier.wait()
            results.append(alerts_evaluate(now=at(0)))
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate_in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(len(result.fired) for result in results) == [0, 1]
    assert Alert.objects.filter(state=Alert.State.FIRING).count() == 1
    assert Notification.objects.filter(title__startswith="Firing:").count() == 1
    assert len(slack_lines) == 1


def test_a_lost_rule_comes_back_with_its_kinds_defaults(evaluate: Callable[[datetime], Evaluation]) -> None:
    AlertRule.objects.filter(kind=AlertKind.DISK_USAGE).delete()
    evaluate(at(0))
    rule = AlertRule.objects.get(kind=AlertKind.DISK_USAGE)
    assert (rule.threshold, rule.for_minutes, rule.enabled) == (85.0, 10, True)


def test_a_rule_that_cannot_be_measured_does_not_stop_the_others(
    admin: User, evaluate: Callable[[datetime], Evaluation], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(rule: AlertRule, now: datetime) -> dict[str, float]:
        raise ValueError("a reading nobody expected")

    only(AlertKind.SMART_FAILED, for_minutes=0)
    AlertRule.objects.filter(kind=AlertKind.BTRFS_ERRORS).update(enabled=True, for_minutes=0)
    monkeypatch.setitem(
        rules.KINDS, AlertKind.BTRFS_ERRORS, replace(rules.KINDS[AlertKind.BTRFS_ERRORS], measure=broken)
    )
    _smart(True, 0)
    _btrfs(True, 0)
    assert evaluate(at(0)).fired == ["smart_failed: disk sdb"]


def test_the_history_keeps_a_year_of_incidents_and_a_month_of_blips() -> None:
    rule = AlertRule.objects.get(kind=AlertKind.DISK_USAGE)
    now = timezone.now()

    def resolved(days: int, *, fired: bool) -> Alert:
        when = now - timedelta(days=days)
        return Alert.objects.create(
            rule=rule,
            subject=f"disk d{days}{fired}",
            state="resolved",
            started_at=when,
            fired_at=when if fired else None,
            resolved_at=when,
        )

    kept = [resolved(20, fired=False), resolved(300, fired=True)]
    resolved(40, fired=False)
    resolved(400, fired=True)
    still_open = Alert.objects.create(rule=rule, subject="disk root", started_at=now - timedelta(days=500))
    assert alerts_prune(now=now) == 2
    assert set(Alert.objects.all()) == {*kept, still_open}


def test_the_database_refuses_a_second_open_incident_of_the_same_rule_and_subject() -> None:
    rule = AlertRule.objects.get(kind=AlertKind.DISK_USAGE)
    Alert.objects.create(rule=rule, subject="disk root", started_at=at(0))
    Alert.objects.create(rule=rule, subject="disk root", state="resolved", started_at=at(-60), resolved_at=at(-50))
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule=rule, subject="disk root", state="firing", started_at=at(1))
    assert Alert.objects.count() == 2


def test_an_evaluation_of_every_rule_costs_the_same_queries_however_long_the_history(
    admin: User, evaluate: Callable[[datetime], Evaluation], django_assert_max_num_queries: Any
) -> None:
    AlertRule.objects.update(enabled=True, for_minutes=0)
    rule = AlertRule.objects.get(kind=AlertKind.DISK_USAGE)
    Alert.objects.bulk_create(
        [
            Alert(rule=rule, subject=f"disk d{i}", state="resolved", started_at=at(-i), resolved_at=at(-i))
            for i in range(500)
        ]
    )
    _disk(True, 0)
    _gpu(True, 0)
    evaluate(at(0))  # opens what is wrong: the disk, the GPU, beat (no heartbeat at all)
    # About nine a rule (its lock and savepoint, its open incidents, its figures, the silences,
    # the saves), none per row of history.
    with django_assert_max_num_queries(90):
        evaluate(at(1))
