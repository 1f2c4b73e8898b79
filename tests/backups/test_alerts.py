"""Backup alerts (backups/alerts.py): an incident is told once when it opens and once when a
good run ends it, judged from the rows and the clock, so late or repeated passes tell nothing
twice. Real PostgreSQL; Slack is the one thing that cannot be here (its task is captured)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone

from backups import alerts
from backups.alerts_tasks import backup_alerts_task
from backups.models import BackupPolicy, BackupRun
from portal.models import AuditEvent, Notification, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

Capture = Callable[..., Any]


@pytest.fixture
def slack_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What would be posted to Slack once the transaction commits (run with the commit hooks)."""
    lines: list[str] = []

    def send_task(name: str, args: list[Any] | None = None, **kwargs: Any) -> None:
        assert name == "portal.tasks.slack_post_task"
        lines.append(args[0] if args else "")

    monkeypatch.setattr(current_app, "send_task", send_task)
    return lines


@pytest.fixture
def admins(admin_user: User) -> list[User]:
    return [admin_user, UserFactory(username="grace", is_staff=True)]


def _policy(tier: str = BackupPolicy.Tier.SNAPSHOT, *, since: datetime, max_age_hours: int = 2) -> BackupPolicy:
    """The tier's row, last changed at ``since`` (update(): save() would stamp ``updated`` now)."""
    policy = BackupPolicy.of(tier)
    BackupPolicy.objects.filter(pk=policy.pk).update(
        updated=since, max_age_hours=max_age_hours, enabled=True, incident="", incident_since=None
    )
    policy.refresh_from_db()
    return policy


def _run(
    result: str, at: datetime, *, kind: str = BackupRun.Kind.SNAPSHOT, message: str = "", minutes: int = 2
) -> BackupRun:
    return BackupRun.objects.create(
        kind=kind,
        result=result,
        started_at=at,
        finished_at=at + timedelta(minutes=minutes) if result != BackupRun.Result.RUNNING else None,
        snapshots_made=3,
        message=message,
    )


def _pass(capture: Capture, now: datetime) -> list[str]:
    with capture(execute=True):
        return alerts.alerts_pass(now=now)


def _notes(title_part: str = "") -> list[Notification]:
    return list(Notification.objects.filter(title__contains=title_part).order_by("pk"))


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


def test_a_failed_run_is_told_once_and_its_end_once(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    policy = _policy(since=now - timedelta(days=30))
    _run(BackupRun.Result.SUCCEEDED, now - timedelta(hours=2))
    _run(BackupRun.Result.FAILED, now - timedelta(hours=1), message="btrfs subvolume snapshot: No space left")

    told = _pass(django_capture_on_commit_callbacks, now)

    assert told == ["Local snapshots (BTRFS): the last run failed"]
    notes = _notes("failed")
    assert sorted(n.user.username for n in notes) == ["ada", "grace"]  # every admin, once
    assert all(n.level == Notification.Level.ERROR for n in notes)
    assert "No space left" in notes[0].body
    assert notes[0].url == "/backups/history/?kind=snapshot"
    assert len(slack_lines) == 1
    assert "No space left" in slack_lines[0]
    policy.refresh_from_db()
    assert policy.incident == "failed"
    assert policy.incident_since == now - timedelta(hours=1) + timedelta(minutes=2)  # the failed run's end
    assert AuditEvent.objects.filter(action="backups.incident_open").count() == 1

    # Still failing at the next passes (another failed run too): nothing more.
    _run(BackupRun.Result.FAILED, now, message="again")
    assert _pass(django_capture_on_commit_callbacks, now + timedelta(minutes=10)) == []
    assert _pass(django_capture_on_commit_callbacks, now + timedelta(minutes=20)) == []
    assert len(_notes()) == 2
    assert len(slack_lines) == 1
    policy.refresh_from_db()
    assert policy.incident_since == now - timedelta(hours=1) + timedelta(minutes=2)  # when the failing began

    # A good run: one "working again", then quiet.
    _run(BackupRun.Result.SUCCEEDED, now + timedelta(hours=1))
    told = _pass(django_capture_on_commit_callbacks, now + timedelta(hours=1, minutes=10))
    assert told == ["Local snapshots (BTRFS): working again"]
    assert _pass(django_capture_on_commit_callbacks, now + timedelta(hours=1, minutes=20)) == []
    assert [n.user.username for n in _notes("working again")] == ["ada", "grace"]
    assert len(slack_lines) == 2
    assert "working again" in slack_lines[1]
    policy.refresh_from_db()
    assert (policy.incident, policy.incident_since) == ("", None)


def test_a_partial_run_is_a_failure_too(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _policy(since=now - timedelta(days=3))
    _run(BackupRun.Result.PARTIAL, now - timedelta(minutes=30), message="homes/bob: not a subvolume")
    assert _pass(django_capture_on_commit_callbacks, now) == ["Local snapshots (BTRFS): the last run partly failed"]
    assert "homes/bob" in slack_lines[0]


def test_overdue_after_max_age_with_no_run_at_all(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    policy = _policy(since=now - timedelta(hours=3), max_age_hours=2)

    assert _pass(django_capture_on_commit_callbacks, now) == ["Local snapshots (BTRFS): overdue"]

    note = _notes("overdue")[0]
    assert note.level == Notification.Level.WARNING
    assert "No run succeeded yet" in note.body
    assert "every 2 h" in note.body
    policy.refresh_from_db()
    assert policy.incident == "overdue"
    assert policy.incident_since == now - timedelta(hours=1)


def test_a_policy_newer_than_its_max_age_that_never_ran_is_not_overdue(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _policy(since=now - timedelta(minutes=90), max_age_hours=2)
    _run(BackupRun.Result.RUNNING, now - timedelta(minutes=5))  # under way: neither good nor bad
    assert _pass(django_capture_on_commit_callbacks, now) == []
    assert _notes() == []
    assert slack_lines == []


def test_a_disabled_tier_is_never_alerted(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    policy = _policy(since=now - timedelta(days=10))
    BackupPolicy.objects.filter(pk=policy.pk).update(enabled=False)
    _run(BackupRun.Result.FAILED, now - timedelta(hours=5), message="boom")

    assert _pass(django_capture_on_commit_callbacks, now) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.backup_run_finished(BackupRun.objects.get()) == []
    assert _notes() == []
    assert slack_lines == []


def test_a_worker_down_for_a_day_gives_one_overdue_alert_not_one_per_missed_hour(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    down_at = now - timedelta(days=1)
    _policy(since=now - timedelta(days=30))
    for hour in range(48, 24, -1):  # hourly good runs until the worker went down
        _run(BackupRun.Result.SUCCEEDED, now - timedelta(hours=hour))

    # Back after a day: beat fires the passes it missed, late and in a burst, and then its own.
    told = [
        title
        for minutes in (0, 0, 1, 2, 10, 20)
        for title in _pass(django_capture_on_commit_callbacks, now + timedelta(minutes=minutes))
    ]

    assert told == ["Local snapshots (BTRFS): overdue"]
    assert len(slack_lines) == 1
    policy = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    last_good_end = down_at - timedelta(hours=1) + timedelta(minutes=2)
    assert policy.incident_since == last_good_end + timedelta(hours=2)  # when it became overdue, not when seen

    # The snapshot runs resume: one "working again".
    _run(BackupRun.Result.SUCCEEDED, now + timedelta(minutes=30))
    told = [
        title
        for minutes in (40, 50)
        for title in _pass(django_capture_on_commit_callbacks, now + timedelta(minutes=minutes))
    ]
    assert told == ["Local snapshots (BTRFS): working again"]
    assert "had been overdue since" in _notes("working again")[0].body


def test_an_overdue_tier_whose_next_run_fails_is_told_the_failure(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _policy(since=now - timedelta(days=30))
    _run(BackupRun.Result.SUCCEEDED, now - timedelta(hours=6))
    assert _pass(django_capture_on_commit_callbacks, now) == ["Local snapshots (BTRFS): overdue"]
    since = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT).incident_since

    _run(BackupRun.Result.FAILED, now + timedelta(minutes=1), message="target is read-only")
    assert _pass(django_capture_on_commit_callbacks, now + timedelta(minutes=10)) == [
        "Local snapshots (BTRFS): the last run failed"
    ]
    policy = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    assert policy.incident == "failed"
    assert policy.incident_since == since
    assert len(slack_lines) == 2


def test_an_admins_edit_does_not_end_an_overdue_incident_only_a_good_run_does(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    policy = _policy(since=now - timedelta(days=30))
    _run(BackupRun.Result.SUCCEEDED, now - timedelta(hours=6))
    assert _pass(django_capture_on_commit_callbacks, now) == ["Local snapshots (BTRFS): overdue"]

    policy.refresh_from_db()
    policy.keep_hourly = 12
    policy.save()  # the policy page's save restarts the tier's clock
    assert _pass(django_capture_on_commit_callbacks, timezone.now()) == []
    policy.refresh_from_db()
    assert policy.incident == "overdue"

    _run(BackupRun.Result.SUCCEEDED, timezone.now())
    assert _pass(django_capture_on_commit_callbacks, timezone.now() + timedelta(minutes=5)) == [
        "Local snapshots (BTRFS): working again"
    ]


def test_a_re_enabled_tier_gets_its_max_age_before_it_is_overdue(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _policy(since=now - timedelta(minutes=5))  # switched on again five minutes ago
    _run(BackupRun.Result.SUCCEEDED, now - timedelta(days=20))
    assert _pass(django_capture_on_commit_callbacks, now) == []
    assert _pass(django_capture_on_commit_callbacks, now + timedelta(hours=2, minutes=10)) == [
        "Local snapshots (BTRFS): overdue"
    ]


def test_the_hook_tells_a_failure_at_once_and_is_safe_to_call_twice(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _policy(since=now - timedelta(days=3))
    run = _run(BackupRun.Result.FAILED, timezone.now() - timedelta(minutes=2), message="boom")

    with django_capture_on_commit_callbacks(execute=True):
        first = alerts.backup_run_finished(run)
        second = alerts.backup_run_finished(run)
    assert first == ["Local snapshots (BTRFS): the last run failed"]
    assert second == []
    assert _pass(django_capture_on_commit_callbacks, timezone.now()) == []  # the pass agrees
    assert len(slack_lines) == 1
    assert len(_notes()) == 2

    good = _run(BackupRun.Result.SUCCEEDED, timezone.now() - timedelta(minutes=1), minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.backup_run_finished(good) == ["Local snapshots (BTRFS): working again"]
        assert alerts.backup_run_finished(good) == []


def test_the_hook_ignores_the_restore_drill(admins: list[User], slack_lines: list[str], now: datetime) -> None:
    run = _run(BackupRun.Result.FAILED, now, kind=BackupRun.Kind.DRILL)
    assert alerts.backup_run_finished(run) == []


def test_each_tier_is_judged_on_its_own_runs(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _policy(since=now - timedelta(days=30))
    _policy(BackupPolicy.Tier.RESTIC, since=now - timedelta(days=30), max_age_hours=26)
    _run(BackupRun.Result.SUCCEEDED, now - timedelta(minutes=30))
    _run(BackupRun.Result.FAILED, now - timedelta(hours=3), kind=BackupRun.Kind.RESTIC, message="403 from Drive")

    assert _pass(django_capture_on_commit_callbacks, now) == ["Offsite backup (restic): the last run failed"]


def test_the_beat_task_runs_the_pass(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _policy(since=now - timedelta(hours=5))
    with django_capture_on_commit_callbacks(execute=True):
        backup_alerts_task.run()
        backup_alerts_task.run()  # delivered twice
    assert len(slack_lines) == 1
    entry = settings.CELERY_BEAT_SCHEDULE["backups-alerts"]
    assert entry == {"task": "backups.alerts_tasks.backup_alerts_task", "schedule": 600.0}
    assert "backups.alerts_tasks" in settings.CELERY_IMPORTS


def test_a_run_stuck_in_running_does_not_hide_an_overdue_tier(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _policy(since=now - timedelta(days=30))
    _run(BackupRun.Result.SUCCEEDED, now - timedelta(hours=5))
    _run(BackupRun.Result.RUNNING, now - timedelta(hours=4))  # its worker died; nobody ended the row
    assert _pass(django_capture_on_commit_callbacks, now) == ["Local snapshots (BTRFS): overdue"]


@pytest.mark.django_db(transaction=True)
def test_two_passes_at_the_same_moment_tell_once(admins: list[User], slack_lines: list[str]) -> None:
    """Beat's pass and the engine's hook (or a redelivered task) at once: the policy row's lock
    makes the second wait, then see the incident already open. Real commits, real threads."""
    now = timezone.now()
    _policy(since=now - timedelta(days=3))
    _run(BackupRun.Result.FAILED, now - timedelta(minutes=3), message="boom")
    start = threading.Barrier(4)
    told: list[str] = []

    def one_pass() -> None:
        try:
            start.wait()
            told.extend(alerts.alerts_pass(now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert told == ["Local snapshots (BTRFS): the last run failed"]
    assert Notification.objects.count() == len(admins)
    assert len(slack_lines) == 1


def test_a_failed_run_the_engine_left_without_an_end_time_still_counts(
    admins: list[User], slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _policy(since=now - timedelta(days=3))
    _run(BackupRun.Result.SUCCEEDED, now - timedelta(hours=2))
    bad = _run(BackupRun.Result.FAILED, now - timedelta(minutes=20))
    BackupRun.objects.filter(pk=bad.pk).update(finished_at=None)

    assert _pass(django_capture_on_commit_callbacks, now) == ["Local snapshots (BTRFS): the last run failed"]
    assert BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT).incident_since == bad.started_at
