"""The restore drill on the pages: the overview's section (last drill, next run, Run drill now,
the schedule form), a drill run's page with its sampled files and check, and the dashboard's
Schedules card. The drill itself runs against real restic in test_drill.py."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backups import drill, drill_schedule
from backups.cards import schedule_runs
from backups.models import BackupRun
from portal.audit import SYSTEM
from portal.models import AuditEvent, Operation, User

OVERVIEW = reverse("backups:overview")
DRILL_NOW = reverse("backups:drill-now")
SCHEDULE = reverse("backups:drill-schedule")


@pytest.fixture
def beat_row(db: None) -> PeriodicTask:
    """The drill's beat row as migration 0004 makes it (a reused test database may have lost it)."""
    importlib.import_module("backups.migrations.0004_offsite_schedules").create_rows(django_apps, None)
    return PeriodicTask.objects.select_related("crontab").get(name=drill_schedule.SCHEDULE_NAME)


@pytest.fixture
def offsite(settings: Any, tmp_path: Any) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = str(tmp_path / "repo")


def drill_run(**fields: Any) -> BackupRun:
    files = [
        {
            "source": "homes/alice",
            "path": "model.ckpt",
            "size": 300_000,
            "sha256_restored": "a" * 64,
            "sha256_local": "a" * 64,
            "match": True,
        },
        {
            "source": "datasets",
            "path": "imagenet/labels.csv",
            "size": 8,
            "sha256_restored": "b" * 64,
            "sha256_local": "c" * 64,
            "match": False,
            "problem": "the checksums differ",
        },
    ]
    values: dict[str, Any] = {
        "kind": BackupRun.Kind.DRILL,
        "result": BackupRun.Result.FAILED,
        "started_at": timezone.now() - timedelta(hours=1),
        "finished_at": timezone.now() - timedelta(minutes=58),
        "message": "1 of 2 files restored and matched; check read 12/12 of the data: no errors.\n"
        "datasets: imagenet/labels.csv: the checksums differ",
        "details": {
            "files": files,
            "subset": "12/12",
            "check": {"ok": True, "ran": True, "num_errors": 0, "broken_packs": [], "errors": []},
            "bytes_read": 300_008,
        },
        **fields,
    }
    return BackupRun.objects.create(**values)


# --- the overview's section ----------------------------------------------------------------------


def test_the_overview_shows_the_last_drill_and_the_next(admin_client: Client, beat_row: PeriodicTask) -> None:
    run = drill_run()
    body = admin_client.get(OVERVIEW).content.decode()
    assert 'id="drill"' in body
    assert "1 of 2 matched" in body
    assert "12/12" in body
    assert reverse("backups:history-run", args=[run.pk]) in body
    assert "Run drill now" in body
    assert "Now: the 1st of each month at 12:00." in body
    when = drill_schedule.schedule_of(beat_row)
    assert (when.day_of_month, when.hour, when.minute, when.enabled) == (1, 12, 0, True)


def test_the_button_is_off_and_says_why_while_the_tier_is_not_set_up(
    admin_client: Client, beat_row: PeriodicTask, settings: Any
) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = ""
    body = admin_client.get(OVERVIEW).content.decode()
    assert "No offsite repository is set up" in body
    assert 'type="submit" disabled>Run drill now' in body


def test_an_admin_runs_the_drill_now(
    admin_client: Client, admin_user: User, offsite: None, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = admin_client.post(DRILL_NOW, follow=True)
    assert "Drill started" in response.content.decode()
    assert len(sent) == 1
    op = Operation.objects.get(kind=drill.DRILL_KIND)
    assert op.actor == admin_user
    assert BackupRun.objects.get(operation=op).kind == BackupRun.Kind.DRILL
    assert AuditEvent.objects.filter(action="backups.drill_now", actor=admin_user).count() == 1


def test_run_drill_now_is_refused_in_words(admin_client: Client, settings: Any, offsite: None) -> None:
    admin_client.post(DRILL_NOW)
    assert "already queued or running" in admin_client.post(DRILL_NOW, follow=True).content.decode()
    Operation.objects.all().delete()
    settings.BACKUP_RESTIC_REPOSITORY = ""
    assert (
        "The drill can&#x27;t run: No offsite repository" in admin_client.post(DRILL_NOW, follow=True).content.decode()
    )
    assert not Operation.objects.exists()


def test_members_may_not_run_it_or_change_its_schedule(alice_client: Client, beat_row: PeriodicTask) -> None:
    assert alice_client.post(DRILL_NOW).status_code == 403
    assert alice_client.post(SCHEDULE, {"enabled": "on", "day_of_month": 3, "hour": 1, "minute": 0}).status_code == 403
    assert not Operation.objects.exists()
    assert drill_schedule.schedule_of(drill_schedule.drill_beat_row()).day_of_month == 1


# --- the schedule --------------------------------------------------------------------------------


def test_an_admin_moves_the_drill_and_the_next_run_follows(
    admin_client: Client, admin_user: User, beat_row: PeriodicTask, settings: Any
) -> None:
    response = admin_client.post(SCHEDULE, {"enabled": "on", "day_of_month": "15", "hour": "3", "minute": "30"})
    assert response.status_code == 302
    assert response["Location"].endswith("#drill")
    task = drill_schedule.drill_beat_row()
    assert task is not None
    assert task.enabled
    assert task.crontab is not None
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.day_of_week) == ("30", "3", "15", "*")
    assert str(crontab.timezone) == settings.TIME_ZONE
    event = AuditEvent.objects.get(action="backups.drill_schedule")
    assert event.actor == admin_user
    assert event.detail["old"] == "the 1st of each month at 12:00"
    assert event.detail["new"] == "the 15th of each month at 03:30"
    zone = ZoneInfo(settings.TIME_ZONE)
    runs = dict(schedule_runs(now=datetime(2026, 12, 2, 14, 20, tzinfo=UTC)))
    assert runs["Restore drill"] == datetime(2026, 12, 15, 3, 30, tzinfo=zone)
    # The old crontab served only the drill's row, so it went.
    assert not CrontabSchedule.objects.filter(pk=beat_row.crontab_id).exists()


def test_saving_the_same_schedule_writes_nothing(admin_user: User, beat_row: PeriodicTask) -> None:
    drill_schedule.drill_schedule_update(
        enabled=True, day_of_month=1, hour=12, minute=0, actor=admin_user, context=SYSTEM
    )
    assert not AuditEvent.objects.filter(action="backups.drill_schedule").exists()


def test_switched_off_there_is_no_next_run(admin_client: Client, beat_row: PeriodicTask) -> None:
    response = admin_client.post(SCHEDULE, {"day_of_month": "1", "hour": "12", "minute": "0"}, follow=True)
    assert "The monthly drill is off" in response.content.decode()
    assert dict(schedule_runs())["Restore drill"] is None
    assert "none: the monthly drill is off" in response.content.decode()


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"day_of_month": "29", "hour": "1", "minute": "0"}, "The day is a whole number from 1 to 28."),
        ({"day_of_month": "0", "hour": "1", "minute": "0"}, "The day is a whole number from 1 to 28"),
        ({"day_of_month": "x", "hour": "1", "minute": "0"}, "The day is a whole number from 1 to 28"),
        ({"day_of_month": "2", "hour": "24", "minute": "0"}, "The hour is a whole number from 0 to 23."),
        ({"day_of_month": "2", "hour": "1", "minute": "60"}, "The minute is a whole number from 0 to 59."),
        ({"day_of_month": "2", "hour": "1", "minute": "*/5"}, "The minute is a whole number from 0 to 59."),
        ({"day_of_month": "2", "hour": "", "minute": "0"}, "Give the hour (0-23)."),
    ],
)
def test_bad_schedules_are_refused_in_words_and_change_nothing(
    admin_client: Client, beat_row: PeriodicTask, values: dict[str, str], words: str
) -> None:
    response = admin_client.post(SCHEDULE, {"enabled": "on", **values})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert 'id="drill"' in response.content.decode()  # the page again, the form with its words
    task = drill_schedule.drill_beat_row()
    assert task is not None
    assert task.crontab_id == beat_row.crontab_id
    assert not AuditEvent.objects.filter(action="backups.drill_schedule").exists()


def test_the_service_refuses_what_the_form_would(admin_user: User, beat_row: PeriodicTask) -> None:
    with pytest.raises(ValidationError, match="so that every month has it"):
        drill_schedule.drill_schedule_update(
            enabled=True, day_of_month=31, hour=1, minute=0, actor=admin_user, context=SYSTEM
        )
    with pytest.raises(ValidationError, match="The minute is a whole number"):
        drill_schedule.drill_schedule_update(
            enabled=True,
            day_of_month=1,
            hour=1,
            minute="5",  # type: ignore[arg-type]
            actor=admin_user,
            context=SYSTEM,
        )
    assert drill_schedule.drill_beat_row().crontab_id == beat_row.crontab_id  # type: ignore[union-attr]


# --- a drill's run page, the dashboard card ---------------------------------------------------------


def test_a_drill_runs_page_lists_the_sampled_files_and_the_check(admin_client: Client) -> None:
    run = drill_run()
    body = admin_client.get(reverse("backups:history-run", args=[run.pk])).content.decode()
    assert 'id="drill-files"' in body
    assert "imagenet/labels.csv" in body
    assert "model.ckpt" in body
    assert body.count('pill-bad">Mismatch') == 1
    assert body.count('pill-ok">Match') == 1
    assert "the checksums differ" in body
    assert "--read-data-subset=12/12" in body
    assert "No errors" in body
    assert "1 of 2 files matched" in body


def test_a_drill_whose_check_found_errors_says_which_packs(admin_client: Client) -> None:
    check = {"ok": False, "ran": True, "num_errors": 1, "broken_packs": ["ab" * 32], "errors": ["pack abab: damaged"]}
    run = drill_run(details={"files": [], "subset": "3/12", "check": check, "bytes_read": 0})
    body = admin_client.get(reverse("backups:history-run", args=[run.pk])).content.decode()
    assert "Errors found" in body
    assert "ab" * 32 in body
    assert "pack abab: damaged" in body
    assert "No file was restored." in body


def test_the_dashboards_schedules_card_lists_the_drill(admin_client: Client, beat_row: PeriodicTask) -> None:
    runs = dict(schedule_runs(now=datetime(2026, 12, 2, 14, 20, tzinfo=UTC)))
    zone = ZoneInfo(str(beat_row.crontab.timezone))  # type: ignore[union-attr]
    assert runs["Restore drill"] == datetime(2027, 1, 1, 12, 0, tzinfo=zone)
    assert "Restore drill" in admin_client.get("/").content.decode()
