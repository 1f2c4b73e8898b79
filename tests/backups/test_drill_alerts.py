"""The restore drill's overdue incident (backups/alerts.py): with the offsite tier set up and the
drill scheduled, no good drill in 35 days is told once, and its end once, by a drill that
passes. A failed drill is told by the drill itself (test_drill.py), so the alerts add nothing."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from celery import current_app
from django.apps import apps as django_apps
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from backups import alerts, drill_schedule
from backups.models import BackupPolicy, BackupRun, ResticSnapshot
from portal.models import AuditEvent, Notification, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

Capture = Callable[..., Any]


@pytest.fixture
def slack_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    lines: list[str] = []

    def send_task(name: str, args: list[Any] | None = None, **kwargs: Any) -> None:
        lines.append(args[0] if args else "")

    monkeypatch.setattr(current_app, "send_task", send_task)
    return lines


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def tier(settings: Any, tmp_path: Any, now: datetime, admin_user: User) -> BackupPolicy:
    """The offsite tier set up for 90 days, its drill scheduled, two admins to tell."""
    UserFactory(username="grace", is_staff=True)
    settings.BACKUP_RESTIC_REPOSITORY = str(tmp_path / "repo")
    importlib.import_module("backups.migrations.0004_offsite_schedules").create_rows(django_apps, None)
    BackupPolicy.objects.filter(tier=BackupPolicy.Tier.SNAPSHOT).update(enabled=False)
    policy = BackupPolicy.of(BackupPolicy.Tier.RESTIC)
    BackupPolicy.objects.filter(pk=policy.pk).update(updated=now - timedelta(days=90), enabled=True)
    # A good nightly run, so the tier itself has nothing to say.
    BackupRun.objects.create(
        kind=BackupRun.Kind.RESTIC, result=BackupRun.Result.SUCCEEDED, started_at=now, finished_at=now
    )
    ResticSnapshot.objects.create(snapshot_id="a" * 64, source="datasets", path="/x", taken_at=now - timedelta(days=80))
    policy.refresh_from_db()
    return policy


def _drill(result: str, at: datetime) -> BackupRun:
    return BackupRun.objects.create(
        kind=BackupRun.Kind.DRILL, result=result, started_at=at, finished_at=at + timedelta(minutes=5)
    )


def _pass(capture: Capture, now: datetime) -> list[str]:
    with capture(execute=True):
        return alerts.alerts_pass(now=now)


def test_no_good_drill_in_35_days_is_told_once_and_its_end_once(
    tier: BackupPolicy, slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _drill(BackupRun.Result.SUCCEEDED, now - timedelta(days=40))
    _drill(BackupRun.Result.FAILED, now - timedelta(days=10))

    assert _pass(django_capture_on_commit_callbacks, now) == ["Restore drill: overdue"]
    assert _pass(django_capture_on_commit_callbacks, now + timedelta(minutes=10)) == []
    notes = Notification.objects.filter(title="Restore drill: overdue")
    assert sorted(note.user.username for note in notes) == ["ada", "grace"]
    assert "The last good drill finished" in notes[0].body
    assert "the 1st of each month at 12:00" in notes[0].body
    assert notes[0].url == "/backups/#drill"
    assert len(slack_lines) == 1
    tier.refresh_from_db()
    assert tier.drill_overdue_since == now - timedelta(days=40) + timedelta(minutes=5) + alerts.DRILL_MAX_AGE
    assert tier.incident == ""  # the tier's own incident is another matter
    assert AuditEvent.objects.filter(action="backups.incident_open", detail__incident="drill-overdue").count() == 1

    good = _drill(BackupRun.Result.SUCCEEDED, timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.backup_run_finished(good) == ["Restore drill: working again"]
        assert alerts.backup_run_finished(good) == []
    assert _pass(django_capture_on_commit_callbacks, timezone.now()) == []
    assert Notification.objects.filter(title="Restore drill: working again").count() == 2
    tier.refresh_from_db()
    assert tier.drill_overdue_since is None


def test_a_tier_that_never_drilled_counts_from_its_first_offsite_snapshot(
    tier: BackupPolicy, slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    ResticSnapshot.objects.update(taken_at=now - timedelta(days=20))
    assert _pass(django_capture_on_commit_callbacks, now) == []
    later = now + timedelta(days=16)  # the tier itself is overdue by then too: told apart
    assert "Restore drill: overdue" in _pass(django_capture_on_commit_callbacks, later)
    note = Notification.objects.get(title="Restore drill: overdue", user__username="ada")
    assert "No restore drill has succeeded yet" in note.body


def test_a_recent_good_drill_or_nothing_to_verify_is_no_incident(
    tier: BackupPolicy, slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    _drill(BackupRun.Result.SUCCEEDED, now - timedelta(days=30))
    assert _pass(django_capture_on_commit_callbacks, now) == []
    BackupRun.objects.filter(kind=BackupRun.Kind.DRILL).delete()
    ResticSnapshot.objects.all().delete()
    assert _pass(django_capture_on_commit_callbacks, now) == []
    assert not Notification.objects.exists()


@pytest.mark.parametrize("off", ["not set up", "schedule off", "tier off"])
def test_a_drill_that_cannot_or_need_not_run_is_never_overdue(
    tier: BackupPolicy,
    slack_lines: list[str],
    django_capture_on_commit_callbacks: Capture,
    now: datetime,
    settings: Any,
    off: str,
) -> None:
    if off == "not set up":
        settings.BACKUP_RESTIC_REPOSITORY = ""
    elif off == "schedule off":
        PeriodicTask.objects.filter(name=drill_schedule.SCHEDULE_NAME).update(enabled=False)
    else:
        BackupPolicy.objects.filter(pk=tier.pk).update(enabled=False)
    assert _pass(django_capture_on_commit_callbacks, now) == []
    assert not Notification.objects.exists()


def test_silencing_an_overdue_drill_does_not_end_it_only_a_good_drill_does(
    tier: BackupPolicy, slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    assert _pass(django_capture_on_commit_callbacks, now) == ["Restore drill: overdue"]
    PeriodicTask.objects.filter(name=drill_schedule.SCHEDULE_NAME).update(enabled=False)
    assert _pass(django_capture_on_commit_callbacks, now + timedelta(minutes=10)) == []
    tier.refresh_from_db()
    assert tier.drill_overdue_since is not None
    PeriodicTask.objects.filter(name=drill_schedule.SCHEDULE_NAME).update(enabled=True)
    _drill(BackupRun.Result.SUCCEEDED, now + timedelta(hours=1))
    assert _pass(django_capture_on_commit_callbacks, now + timedelta(hours=2)) == ["Restore drill: working again"]


def test_a_failed_drill_adds_nothing_to_what_the_drill_told(
    tier: BackupPolicy, slack_lines: list[str], django_capture_on_commit_callbacks: Capture, now: datetime
) -> None:
    run = _drill(BackupRun.Result.FAILED, now)
    _drill(BackupRun.Result.SUCCEEDED, now - timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.backup_run_finished(run) == []
    assert _pass(django_capture_on_commit_callbacks, now) == []
    assert not Notification.objects.exists()


def test_the_history_page_says_the_drill_is_overdue_and_whether_it_was_told(
    tier: BackupPolicy,
    admin_client: Any,
    slack_lines: list[str],
    django_capture_on_commit_callbacks: Capture,
    now: datetime,
) -> None:
    body = admin_client.get("/backups/history/").content.decode()
    assert 'id="incident-drill"' in body
    assert "The alert has not gone out yet" in body
    _pass(django_capture_on_commit_callbacks, now)
    body = admin_client.get("/backups/history/").content.decode()
    assert "The admins were told; they will be again when a drill passes." in body
    _drill(BackupRun.Result.SUCCEEDED, now)
    assert 'id="incident-drill"' not in admin_client.get("/backups/history/").content.decode()
