"""Data ingestion end to end on the real rclone (1.60) through its local backend: jobs and
their beat rows, runs that copy into a dataset folder at a bandwidth limit with live progress,
failures in rclone's words with the admins told, the check afterwards, the overrun alert,
and the pages with their bad inputs."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from pytest_django.fixtures import Settings

from portal.audit import SYSTEM
from portal.models import AuditEvent, Notification, Operation, User
from portal.operations import operation_claim, operation_fail
from storage import ingestion, ingestion_tasks
from storage.ingestion_forms import IngestionJobForm
from storage.models import IngestionJob, IngestionRun

pytestmark = [
    pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed"),
    pytest.mark.django_db,
]

MB = 1_000_000


@pytest.fixture
def place(settings: Settings, tmp_path: Path) -> Path:
    """Two local remotes (``src`` and ``archive``), a private config folder and a datasets
    root, all under tmp_path."""
    settings.RCLONE_REMOTES_JSON = json.dumps(
        [{"name": "src", "type": "local"}, {"name": "archive", "type": "local", "options": {"links": "true"}}]
    )
    settings.RCLONE_CONFIG_DIR = str(tmp_path / "rclone")
    settings.WORKSPACE_DATASETS_PATH = str(tmp_path / "datasets")
    (tmp_path / "datasets").mkdir()
    return tmp_path


def fill(folder: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def job_values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "customer-data",
        "description": "Daily customer drop",
        "source": "src:/nowhere",
        "target_kind": IngestionJob.TargetKind.DATASET,
        "target": "customer/daily",
        "mode": IngestionJob.Mode.COPY,
        "bwlimit_mbps": 100,
        "check_after": False,
        "enabled": True,
        "schedule_minute": "0",
        "schedule_hour": "4",
        "schedule_day_of_week": "*",
    }
    return {**values, **overrides}


def make_job(actor: User | None = None, **overrides: Any) -> IngestionJob:
    return ingestion.ingestion_job_create(values=job_values(**overrides), actor=actor, context=SYSTEM)


def run_now(job: IngestionJob, actor: User | None = None) -> IngestionRun:
    """Start a run and do the worker's part here (the test transaction sends no task)."""
    op = ingestion.ingestion_run_start(job=job, actor=actor, context=SYSTEM)
    ingestion_tasks.ingestion_run_task.run(op.pk)
    return IngestionRun.objects.select_related("operation").get(operation=op)


# --- runs -----------------------------------------------------------------------------------


def test_a_run_brings_the_files_into_the_dataset_folder(place: Path, admin_user: User) -> None:
    source = fill(place / "incoming", {"a.csv": b"id,name\n1,x\n", "2026/12/b.bin": os.urandom(70_000)})
    job = make_job(source=f"src:{source}")
    run = run_now(job, actor=admin_user)
    assert run.result == IngestionRun.Result.SUCCEEDED, run.message
    assert tree(place / "datasets" / "customer" / "daily") == tree(source)
    assert (run.files, run.bytes, run.errors) == (2, 70_012, 0)
    assert run.finished_at is not None
    assert run.duration is not None
    assert run.message.startswith("Copied 2 files (70.0 kB) in ")
    op = run.operation
    assert op is not None
    assert (op.state, op.percent, op.kind, op.target_label) == ("succeeded", 100, "storage.ingestion", "customer-data")
    assert run.argv[:4] == ["rclone", "copy", f"src:{source}", f"{place}/datasets/customer/daily"]
    assert "--bwlimit=12207K" in run.argv  # 100 Mbit/s is 12,207 KiB/s
    assert op.log.startswith("$ rclone copy ")
    assert not Notification.objects.exists()


def test_progress_moves_during_a_run_held_to_the_bandwidth_limit(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """~4 MB at 8 Mbit/s (976 KiB/s) takes four seconds: the Operation's percent and message
    change on the way, as a page polling it would see."""
    source = fill(place / "incoming", {f"part{i}.bin": os.urandom(MB) for i in range(4)})
    job = make_job(source=f"src:{source}", bwlimit_mbps=8)
    seen: list[tuple[int, str]] = []
    report = ingestion.operation_progress

    def recording(operation_id: int, **kwargs: Any) -> None:
        report(operation_id, **kwargs)
        op = Operation.objects.get(pk=operation_id)
        seen.append((op.percent, op.message))

    monkeypatch.setattr(ingestion, "operation_progress", recording)
    monkeypatch.setattr(ingestion, "STATS_INTERVAL_S", 0.5)
    started = time.monotonic()
    run = run_now(job)
    elapsed = time.monotonic() - started
    assert run.result == IngestionRun.Result.SUCCEEDED, run.message
    assert "--bwlimit=976K" in run.argv
    assert elapsed >= 3, f"4 MB at 1 MB/s took only {elapsed:.1f} s"
    percents = [percent for percent, _ in seen]
    assert percents == sorted(percents)
    assert len({p for p in percents if 0 < p < 100}) >= 3, seen
    messages = [message for _, message in seen if " of " in message]
    assert len(set(messages)) >= 3, seen
    assert any(re.fullmatch(r"\d+\.\d MB of 4\.0 MB at \d+\.\d (kB|MB)/s, \d+ s left", m) for m in messages), seen
    assert tree(place / "datasets" / "customer" / "daily") == tree(source)


def test_a_missing_source_fails_the_run_in_rclones_words_and_tells_the_admins(place: Path, admin_user: User) -> None:
    job = make_job(source=f"src:{place}/no-such-folder")
    run = run_now(job, actor=admin_user)
    assert run.result == IngestionRun.Result.FAILED
    assert run.message.startswith("rclone copy failed (exit 3: a source or destination directory was not found)")
    assert "directory not found" in run.message
    op = run.operation
    assert op is not None
    assert op.state == Operation.State.FAILED
    assert "directory not found" in op.message
    assert "directory not found" in op.log  # rclone's error lines reach the log as they come
    note = Notification.objects.get(user=admin_user)
    assert note.title == "Ingestion customer-data failed"
    assert note.level == Notification.Level.ERROR
    assert "directory not found" in note.body
    assert note.url == reverse("storage:ingestion-run-detail", args=[run.pk])


def test_a_source_on_a_remote_no_longer_configured_fails_with_words(
    place: Path, settings: Settings, admin_user: User
) -> None:
    job = make_job(source=f"src:{place}")
    settings.RCLONE_REMOTES_JSON = json.dumps([{"name": "archive", "type": "local"}])
    run = run_now(job)
    assert run.result == IngestionRun.Result.FAILED
    assert run.message == "'src' is not a remote of RCLONE_REMOTES (configured: archive)."
    assert Notification.objects.filter(user=admin_user, title="Ingestion customer-data failed").exists()


def test_a_missing_datasets_folder_copies_nothing(place: Path, settings: Settings) -> None:
    settings.WORKSPACE_DATASETS_PATH = str(place / "not-set-up")
    job = make_job(source=f"src:{fill(place / 'in', {'a': b'a'})}")
    run = run_now(job)
    assert run.result == IngestionRun.Result.FAILED
    assert "does not exist on this server" in run.message
    assert not (place / "not-set-up").exists()


def test_the_check_afterwards_finds_a_difference_and_fails_the_run(place: Path, admin_user: User) -> None:
    """A target file of the same size and time but other bytes (bit rot, a botched earlier
    copy): copy skips it by size and time, the check compares hashes and fails the run."""
    source = fill(place / "incoming", {"good.txt": b"same\n", "rotten.bin": b"A" * 1000})
    target = fill(place / "datasets" / "customer" / "daily", {"rotten.bin": b"B" * 1000})
    stamp = os.stat(source / "rotten.bin").st_mtime_ns
    os.utime(target / "rotten.bin", ns=(stamp, stamp))
    job = make_job(source=f"src:{source}", check_after=True)
    run = run_now(job)
    assert run.result == IngestionRun.Result.FAILED
    assert run.files == 1  # good.txt; rotten.bin looked the same to copy
    assert run.message.endswith("but the check found differences: 1 file differ (rotten.bin).")
    assert Notification.objects.filter(user=admin_user, title="Ingestion customer-data failed").exists()


def test_the_check_afterwards_passes_when_everything_arrived(place: Path) -> None:
    source = fill(place / "incoming", {"a.txt": b"a\n", "b/c.txt": b"c\n"})
    run = run_now(make_job(source=f"src:{source}", check_after=True))
    assert run.result == IngestionRun.Result.SUCCEEDED, run.message
    assert run.message.endswith("; checked: all 2 files match.")


def test_a_long_check_keeps_telling_the_operation_it_is_alive(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check says nothing until it ends (hours of hashing on terabytes): a heartbeat keeps
    the Operation fresh, so the reaper does not give the run up."""
    source = fill(place / "incoming", {"a.txt": b"a\n"})
    real_check = ingestion.rclone.check

    def slow_check(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return real_check(*args, **kwargs)

    beats: list[str] = []
    report = ingestion.operation_progress

    def recording(operation_id: int, **kwargs: Any) -> None:
        report(operation_id, **kwargs)
        beats.append(kwargs.get("message", ""))

    monkeypatch.setattr(ingestion.rclone, "check", slow_check)
    monkeypatch.setattr(ingestion, "HEARTBEAT_S", 0.1)
    monkeypatch.setattr(ingestion, "operation_progress", recording)
    run = run_now(make_job(source=f"src:{source}", check_after=True))
    assert run.result == IngestionRun.Result.SUCCEEDED, run.message
    assert len([beat for beat in beats if beat.startswith("Checking the target against the source (")]) >= 2, beats


def test_a_job_between_remotes_syncs_to_the_other_remote(place: Path) -> None:
    """The seed's one-off migration (GCS to Drive), here between two local remotes: sync makes
    the target match, deleting its extras, and the check confirms it."""
    source = fill(place / "bucket", {"team/a.txt": b"a\n", "team/b.txt": b"b\n"})
    target = fill(place / "drive", {"stale.txt": b"old\n"})
    job = make_job(
        name="gcs-to-drive",
        source=f"src:{source}",
        target_kind=IngestionJob.TargetKind.REMOTE,
        target=f"archive:{target}",
        mode=IngestionJob.Mode.SYNC,
        check_after=True,
        schedule_minute="",
        schedule_hour="",
    )
    run = run_now(job)
    assert run.result == IngestionRun.Result.SUCCEEDED, run.message
    assert tree(target) == tree(source)
    assert run.argv[:4] == ["rclone", "sync", f"src:{source}", f"archive:{target}"]
    assert run.message.startswith("Synced 2 files")


def test_a_second_run_is_refused_while_one_is_going(place: Path, admin_user: User, admin_client: Client) -> None:
    job = make_job(source=f"src:{place}")
    first = ingestion.ingestion_run_start(job=job, actor=admin_user, context=SYSTEM)
    with pytest.raises(ingestion.IngestionBusy, match="customer-data is already running"):
        ingestion.ingestion_run_start(job=job, actor=admin_user, context=SYSTEM)
    response = admin_client.post(reverse("storage:ingestion-run", args=[job.pk]), follow=True)
    assert "customer-data is already running" in response.content.decode()
    assert IngestionRun.objects.count() == 1
    assert Operation.objects.filter(kind=ingestion.KIND).count() == 1
    # The worker died and the reaper gave the job up: the run no longer blocks the next.
    operation_fail(first.pk, error="The worker stopped reporting progress; the job was abandoned. Try again.")
    ingestion.ingestion_run_start(job=job, actor=admin_user, context=SYSTEM)
    old = IngestionRun.objects.get(operation=first)
    assert old.result == IngestionRun.Result.FAILED
    assert old.message.startswith("The worker stopped reporting progress")
    assert IngestionRun.objects.filter(result=IngestionRun.Result.RUNNING).count() == 1


def test_a_second_delivery_of_the_task_does_nothing(place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = fill(place / "incoming", {"a.txt": b"a\n"})
    run = run_now(make_job(source=f"src:{source}"))
    finished = run.finished_at
    monkeypatch.setattr(ingestion.rclone, "copy", lambda *a, **k: pytest.fail("rclone ran twice"))
    ingestion_tasks.ingestion_run_task.run(run.operation_id)
    run.refresh_from_db()
    assert (run.result, run.finished_at) == (IngestionRun.Result.SUCCEEDED, finished)


def test_a_run_whose_worker_died_is_taken_over_by_the_next_delivery(place: Path) -> None:
    source = fill(place / "incoming", {"a.txt": b"a\n"})
    op = ingestion.ingestion_run_start(job=make_job(source=f"src:{source}"), actor=None, context=SYSTEM)
    assert operation_claim(op.pk)  # a worker claimed it, then died (its lock died with it)
    ingestion_tasks.ingestion_run_task.run(op.pk)
    op.refresh_from_db()
    assert (op.state, op.attempts) == (Operation.State.SUCCEEDED, 2)
    assert "The previous worker stopped mid-run" in op.log
    assert IngestionRun.objects.get(operation=op).result == IngestionRun.Result.SUCCEEDED


def test_a_delivery_while_another_worker_holds_the_job_does_nothing(place: Path) -> None:
    job = make_job(source=f"src:{fill(place / 'incoming', {'a.txt': b'a'})}")
    op = ingestion.ingestion_run_start(job=job, actor=None, context=SYSTEM)
    holding, release = threading.Event(), threading.Event()

    def other_worker() -> None:  # its own database connection, so its own advisory lock
        try:
            with ingestion._job_lock(job.pk) as mine:
                assert mine
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert holding.wait(10)
        ingestion_tasks.ingestion_run_task.run(op.pk)
    finally:
        release.set()
        thread.join()
    op.refresh_from_db()
    assert op.state == Operation.State.QUEUED  # left to the worker that holds the job
    assert not (place / "datasets" / "customer" / "daily").exists()


def test_the_run_task_is_sent_to_the_hosts_queue_after_commit(
    place: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    sent: list[tuple[str, list[Any], str]] = []
    monkeypatch.setattr(
        "portal.operations.current_app.send_task",
        lambda name, args, kwargs, queue, **_: sent.append((name, args, queue)),
    )
    job = make_job(source=f"src:{place}")
    with django_capture_on_commit_callbacks(execute=True):
        op = ingestion.ingestion_run_start(job=job, actor=None, context=SYSTEM)
    assert sent == [("storage.ingestion_tasks.ingestion_run_task", [op.pk], "host.local")]


def test_a_queue_that_does_not_answer_fails_the_run_at_once(
    place: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("redis is gone")

    monkeypatch.setattr("portal.operations.current_app.send_task", down)
    job = make_job(source=f"src:{place}")
    with django_capture_on_commit_callbacks(execute=True):
        ingestion.ingestion_run_start(job=job, actor=None, context=SYSTEM)
    run = IngestionRun.objects.get()
    assert run.result == IngestionRun.Result.FAILED
    assert run.message.startswith("The job queue is not answering")
    ingestion.ingestion_run_start(job=job, actor=None, context=SYSTEM)  # the next click works


# --- the schedule ---------------------------------------------------------------------------


def beat_row(job: IngestionJob) -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab").get(name=f"storage-ingestion-{job.name}")


def ingestion_crontabs():  # type: ignore[no-untyped-def]
    """The crontabs the ingestion jobs use (others, the scrub's and the snapshots', come from
    migrations)."""
    others = PeriodicTask.objects.exclude(name__startswith="storage-ingestion-").exclude(crontab=None)
    return CrontabSchedule.objects.exclude(pk__in=others.values("crontab"))


def test_the_beat_row_follows_the_job(place: Path, admin_user: User, settings: Settings) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    job = make_job(actor=admin_user, source=f"src:{place}")
    task = beat_row(job)
    assert job.periodic_task_id == task.pk
    assert (task.task, json.loads(task.args), task.enabled) == (ingestion.SCHEDULED_TASK, [job.pk], True)
    cron = task.crontab
    assert cron is not None
    assert (cron.minute, cron.hour, cron.day_of_week, cron.day_of_month, cron.month_of_year) == (
        "0",
        "4",
        "*",
        "*",
        "*",
    )
    assert str(cron.timezone) == "Europe/Berlin"

    def update(**changes: Any) -> IngestionJob:
        values = {field: getattr(job, field) for field in ingestion.JOB_FIELDS}
        return ingestion.ingestion_job_update(job=job, values={**values, **changes}, actor=admin_user, context=SYSTEM)

    job = update(schedule_minute="30", schedule_hour="3", schedule_day_of_week="mon-fri")
    task = beat_row(job)
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "3", "mon-fri")
    assert ingestion_crontabs().count() == 1  # the 04:00 one was no longer used
    job = update(enabled=False)
    assert beat_row(job).enabled is False
    job = update(enabled=True, name="customer-drop")
    assert beat_row(job).enabled is True
    assert not PeriodicTask.objects.filter(name="storage-ingestion-customer-data").exists()
    job = update(schedule_minute="", schedule_hour="")
    job.refresh_from_db()
    assert job.periodic_task is None
    assert not PeriodicTask.objects.filter(name__startswith="storage-ingestion-").exists()
    assert ingestion.schedule_words(job) == "by hand only"
    job = update(schedule_minute="0", schedule_hour="4")
    assert beat_row(job).enabled is True
    ingestion.ingestion_job_delete(job=job, actor=admin_user, context=SYSTEM)
    assert not PeriodicTask.objects.filter(name__startswith="storage-ingestion-").exists()
    assert not ingestion_crontabs().exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="storage.ingestion_job").values_list("action", flat=True)
    )
    assert sorted(set(actions)) == [
        "storage.ingestion_job_create",
        "storage.ingestion_job_delete",
        "storage.ingestion_job_update",
    ]


def test_a_job_made_by_hand_only_has_no_beat_row(place: Path) -> None:
    job = make_job(source=f"src:{place}", schedule_minute="", schedule_hour="")
    assert job.periodic_task is None
    assert not PeriodicTask.objects.filter(name__startswith="storage-ingestion-").exists()


def test_a_disabled_job_gets_a_disabled_beat_row(place: Path) -> None:
    job = make_job(source=f"src:{place}", enabled=False)
    assert beat_row(job).enabled is False


def test_beats_start_runs_the_job_and_skips_a_job_still_going(place: Path, admin_user: User) -> None:
    job = make_job(source=f"src:{place}")
    ingestion_tasks.ingestion_scheduled_task.run(job.pk)
    run = IngestionRun.objects.select_related("operation").get()
    assert run.operation is not None
    assert run.operation.actor is None
    assert run.operation.state == Operation.State.QUEUED
    ingestion_tasks.ingestion_scheduled_task.run(job.pk)  # the same message delivered again
    assert IngestionRun.objects.count() == 1
    assert not Notification.objects.exists()
    # The next day's start finds yesterday's run still going: skipped, and the admins are told.
    IngestionRun.objects.update(started_at=timezone.now() - timedelta(hours=24))
    ingestion_tasks.ingestion_scheduled_task.run(job.pk)
    assert IngestionRun.objects.count() == 1
    note = Notification.objects.get(user=admin_user)
    assert note.title == "Ingestion customer-data: the scheduled run was skipped"
    assert "already running" in note.body


def test_beat_does_nothing_for_a_disabled_or_deleted_job(place: Path) -> None:
    job = make_job(source=f"src:{place}", enabled=False)
    ingestion_tasks.ingestion_scheduled_task.run(job.pk)
    ingestion_tasks.ingestion_scheduled_task.run(job.pk + 1000)
    assert not IngestionRun.objects.exists()


@pytest.mark.parametrize(
    ("minute", "hour", "days", "words"),
    [
        ("0", "4", "*", "daily at 04:00"),
        ("30", "23", "mon-fri", "Monday-Friday at 23:30"),
        ("5", "1", "0,6", "Sunday, Saturday at 01:05"),
        ("*/15", "1-5", "*", "daily at minute */15 of hour 1-5"),
        ("0", "4", "*/2", "on days of the week */2 at 04:00"),
        ("", "", "*", "by hand only"),
    ],
)
def test_schedule_in_words(minute: str, hour: str, days: str, words: str) -> None:
    job = IngestionJob(schedule_minute=minute, schedule_hour=hour, schedule_day_of_week=days)
    assert ingestion.schedule_words(job) == words


# --- the overrun alert ----------------------------------------------------------------------


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Berlin"))


@pytest.fixture
def berlin(settings: Settings) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    settings.BACKUP_START_HOUR = 6


def test_the_overrun_alert_fires_once_when_rclone_expects_to_end_after_the_backup(
    place: Path, berlin: None, admin_user: User
) -> None:
    job = make_job(source=f"src:{place}")
    run = IngestionRun.objects.create(job=job, started_at=local("2026-12-02T04:00"))
    assert ingestion.ingestion_overrun_check(run, eta_s=3600, now=local("2026-12-02T04:30")) is False
    assert ingestion.ingestion_overrun_check(run, eta_s=2 * 3600, now=local("2026-12-02T04:31")) is True
    assert ingestion.ingestion_overrun_check(run, eta_s=3 * 3600, now=local("2026-12-02T04:32")) is False
    run.refresh_from_db()
    assert run.overrun_warned
    [note] = Notification.objects.filter(user=admin_user)
    assert note.title == "Ingestion customer-data would still be going at the 06:00 backup"
    assert "rclone expects it to end at 06:31, after the 06:00 backup starts." in note.body
    assert note.level == Notification.Level.WARNING


def test_the_overrun_alert_fires_when_the_run_is_still_going_at_the_backup(
    place: Path, berlin: None, admin_user: User
) -> None:
    job = make_job(source=f"src:{place}")
    run = IngestionRun.objects.create(job=job, started_at=local("2026-12-02T04:00"))
    assert ingestion.ingestion_overrun_check(run, eta_s=None, now=local("2026-12-02T05:59")) is False
    assert ingestion.ingestion_overrun_check(run, eta_s=None, now=local("2026-12-02T06:01")) is True
    assert ingestion.ingestion_overrun_check(run, eta_s=None, now=local("2026-12-02T06:02")) is False
    [note] = Notification.objects.filter(user=admin_user)
    assert "It started at 04:00 and is still going at 06:00." in note.body


def test_a_run_started_after_the_backup_is_judged_by_the_next_mornings(place: Path, berlin: None) -> None:
    run = IngestionRun.objects.create(job=make_job(source=f"src:{place}"), started_at=local("2026-12-02T07:00"))
    assert ingestion.next_backup_after(run.started_at) == local("2026-12-03T06:00")
    assert ingestion.ingestion_overrun_check(run, eta_s=3600, now=local("2026-12-02T07:10")) is False


def test_a_real_run_past_the_backup_hour_alerts_once(
    place: Path, settings: Settings, admin_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through rclone: a run started an hour ago, before this hour's backup, so every progress
    line finds it still going; one alert however many lines."""
    settings.BACKUP_START_HOUR = timezone.localtime().hour
    monkeypatch.setattr(ingestion, "STATS_INTERVAL_S", 0.2)
    source = fill(place / "incoming", {"a.bin": os.urandom(MB)})
    job = make_job(source=f"src:{source}", bwlimit_mbps=8)
    op = ingestion.ingestion_run_start(job=job, actor=None, context=SYSTEM)
    IngestionRun.objects.filter(operation=op).update(started_at=timezone.now() - timedelta(hours=1))
    ingestion.ingestion_execute(op.pk)
    run = IngestionRun.objects.get(operation=op)
    assert run.result == IngestionRun.Result.SUCCEEDED, run.message
    assert run.overrun_warned
    assert Notification.objects.filter(user=admin_user, title__contains="would still be going").count() == 1


# --- the pages ------------------------------------------------------------------------------


def form_data(**overrides: Any) -> dict[str, Any]:
    return {key: value for key, value in job_values(**overrides).items() if value is not False}  # unchecked boxes


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"name": "Customer Data"}, "name", "Use lowercase letters, digits and &#x27;-&#x27; (up to 63)."),
        ({"name": ""}, "name", "Give the job a name."),
        ({"source": "nope:/data"}, "source", "&#x27;nope&#x27; is not a remote of RCLONE_REMOTES"),
        ({"source": "/etc"}, "source", "not a folder of this server"),
        ({"source": "--config=/tmp/x"}, "source", "neither an absolute local path nor remote:path"),
        ({"source": "src:/a/../b"}, "source", "climbs out of its folder"),
        ({"target": "../x"}, "target", "can&#x27;t climb out of the datasets folder"),
        ({"target": "/srv/datasets/x"}, "target", "without a leading &#x27;/&#x27;"),
        ({"target": "Customer/Daily"}, "target", "Use lowercase names"),
        ({"target": ".hidden"}, "target", "Use lowercase names"),
        ({"target_kind": "remote", "target": "elsewhere:/x"}, "target", "&#x27;elsewhere&#x27; is not a remote"),
        ({"bwlimit_mbps": "0"}, "bwlimit_mbps", "must be at least 1 Mbit/s"),
        ({"bwlimit_mbps": "1000000"}, "bwlimit_mbps", "can be at most 100,000 Mbit/s"),
        ({"bwlimit_mbps": "fast"}, "bwlimit_mbps", "whole number of Mbit/s"),
        ({"schedule_minute": "61"}, "schedule_minute", "is not a cron minute"),
        ({"schedule_hour": "25"}, "schedule_hour", "is not a cron hour"),
        ({"schedule_day_of_week": "funday"}, "schedule_day_of_week", "is not a cron day of week"),
        ({"schedule_minute": "0; rm -rf /"}, "schedule_minute", "is not a cron minute"),
        ({"schedule_hour": ""}, "schedule_hour", "Give both a minute and an hour"),
        ({"mode": "move"}, "mode", "Select a valid choice"),
    ],
)
def test_bad_input_is_explained_and_saves_nothing(
    place: Path, admin_client: Client, changes: dict[str, Any], field: str, words: str
) -> None:
    data = form_data(**{"source": f"src:{place}", **changes})
    response = admin_client.post(reverse("storage:ingestion-new"), data)
    assert response.status_code == 400
    body = response.content.decode()
    assert words in body
    assert f'id="id_{field}_error"' in body
    assert not IngestionJob.objects.exists()
    assert not PeriodicTask.objects.filter(name__startswith="storage-ingestion-").exists()


def test_a_name_taken_already_is_refused(place: Path, admin_client: Client) -> None:
    make_job(source=f"src:{place}")
    response = admin_client.post(reverse("storage:ingestion-new"), form_data(source=f"src:{place}"))
    assert response.status_code == 400
    assert "A job with this name exists already" in response.content.decode()
    assert IngestionJob.objects.count() == 1


def test_a_new_job_through_the_form(place: Path, admin_client: Client, admin_user: User) -> None:
    page = admin_client.get(reverse("storage:ingestion-new"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "100 Mbit/s is passed to rclone as --bwlimit 12207K (KiB/s)." in body
    assert f"{place}/datasets/" in body
    response = admin_client.post(reverse("storage:ingestion-new"), form_data(source=f"src:{place}"))
    assert response.status_code == 302
    job = IngestionJob.objects.get()
    assert (job.name, job.source, job.target, job.created_by) == (
        "customer-data",
        f"src:{place}",
        "customer/daily",
        admin_user,
    )
    assert beat_row(job).enabled


def test_the_form_shows_the_conversion_of_the_value_typed(place: Path) -> None:
    form = IngestionJobForm(form_data(source=f"src:{place}", bwlimit_mbps="8"))
    assert form.bwlimit_words() == "8 Mbit/s is passed to rclone as --bwlimit 976K (KiB/s)."


def test_editing_a_job(place: Path, admin_client: Client) -> None:
    job = make_job(source=f"src:{place}")
    assert admin_client.get(reverse("storage:ingestion-edit", args=[job.pk])).status_code == 200
    data = form_data(source=f"src:{place}", schedule_hour="5", bwlimit_mbps="50")
    response = admin_client.post(reverse("storage:ingestion-edit", args=[job.pk]), data)
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.schedule_hour, job.bwlimit_mbps) == ("5", 50)
    assert beat_row(job).crontab.hour == "5"
    bad = admin_client.post(reverse("storage:ingestion-edit", args=[job.pk]), {**data, "target": "../up"})
    assert bad.status_code == 400
    job.refresh_from_db()
    assert job.target == "customer/daily"


def test_deleting_a_job_is_refused_while_it_runs(place: Path, admin_client: Client, admin_user: User) -> None:
    job = make_job(source=f"src:{place}")
    ingestion.ingestion_run_start(job=job, actor=admin_user, context=SYSTEM)
    response = admin_client.post(reverse("storage:ingestion-delete", args=[job.pk]), follow=True)
    assert "delete it once the run has finished" in response.content.decode()
    assert IngestionJob.objects.filter(pk=job.pk).exists()
    IngestionRun.objects.update(result=IngestionRun.Result.SUCCEEDED)
    response = admin_client.post(reverse("storage:ingestion-delete", args=[job.pk]), follow=True)
    assert "Job customer-data deleted" in response.content.decode()
    assert not IngestionJob.objects.exists()
    assert not PeriodicTask.objects.filter(name__startswith="storage-ingestion-").exists()


def test_the_list_shows_jobs_schedules_and_history(place: Path, admin_client: Client) -> None:
    source = fill(place / "incoming", {"a.txt": b"a\n"})
    job = make_job(source=f"src:{source}")
    good = run_now(job)
    bad = run_now(make_job(name="gcs-migration", source="src:/no/such/folder", schedule_minute="", schedule_hour=""))
    response = admin_client.get(reverse("storage:ingestion"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Daily at 04:00" in body
    assert "By hand only" in body
    assert "--bwlimit 12207K" in body
    assert reverse("storage:ingestion-run-detail", args=[good.pk]) in body
    assert reverse("storage:ingestion-run-detail", args=[bad.pk]) in body
    assert "a source or destination directory was not found" in body
    assert reverse("storage:ingestion-run", args=[job.pk]) in body


def test_run_now_starts_a_run_and_shows_its_page(place: Path, admin_client: Client) -> None:
    job = make_job(source=f"src:{place}")
    response = admin_client.post(reverse("storage:ingestion-run", args=[job.pk]))
    run = IngestionRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("storage:ingestion-run-detail", args=[run.pk])
    page = admin_client.get(response["Location"]).content.decode()
    assert f'hx-get="{reverse("operation-status", args=[run.operation_id])}"' in page  # polls while it runs
    assert "Waiting for the worker" in page


def test_the_run_page_shows_the_log_of_a_failed_run(place: Path, admin_client: Client) -> None:
    run = run_now(make_job(source=f"src:{place}/missing"))
    page = admin_client.get(reverse("storage:ingestion-run-detail", args=[run.pk])).content.decode()
    assert "operation-status" not in page  # final: nothing polls
    assert "directory not found" in page
    assert "rclone copy src:" in page
