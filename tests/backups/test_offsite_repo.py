"""The Offsite repository page on the real restic 0.18: a local repository and the same through
rclone's local backend. The page starts Operations; the worker's side runs here by calling its
tasks (tests/backups/offsite_helpers.py), and the page shows what the worker recorded.

Locks are real: a live ``restic backup --stdin`` holds one while its stdin is open, and the same
killed with SIGKILL leaves a stale one behind (its PID gone from this host)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from backups import offsite_admin, offsite_admin_tasks, offsite_repo
from backups.models import RepositoryReading
from hostops import restic
from hostops.errors import PartialForget, ResticFailed, ResticInterrupted
from portal.models import AuditEvent, Operation
from tests.backups.offsite_helpers import (
    HOSTNAME,
    PASSWORD,
    Where,
    exclusive_lock,
    hold_lock,
    local_snapshot,
    offsite_snapshot,
    point_offsite_at,
    run_queued,
    stale_lock,
)

RESTIC_0_18 = "/usr/local/lib/portal-test/bin/restic"
pytestmark = pytest.mark.skipif(
    not os.access(RESTIC_0_18, os.X_OK), reason=f"needs restic 0.18 at {RESTIC_0_18} (scripts/test-setup.sh)"
)
PAGE = "backups:offsite"


@pytest.fixture(params=["local", "rclone"])
def where(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> Where:
    return point_offsite_at(settings, tmp_path, request.param)


@pytest.fixture
def local(settings: Any, tmp_path: Path) -> Where:
    return point_offsite_at(settings, tmp_path, "local")


@pytest.fixture
def holders() -> Iterator[Callable[[restic.Repository], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(repo: restic.Repository) -> subprocess.Popen[bytes]:
        started.append(hold_lock(repo))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _page(client: Client) -> str:
    response = client.get(reverse(PAGE))
    assert response.status_code == 200
    return response.content.decode()


def _check(client: Client) -> Operation:
    response = client.post(reverse("backups:offsite-check"))
    assert response.status_code == 302, response.content.decode()
    (op,) = run_queued()
    return op


def _created(where: Where) -> restic.Repository:
    repo = offsite_repo.repository()
    restic.init(repo)
    return repo


# --- missing, create, create again ----------------------------------------------------------


def test_a_missing_repository_is_reported_and_create_is_offered(admin_client: Client, where: Where) -> None:
    assert "Not checked yet" in _page(admin_client)
    op = _check(admin_client)
    assert op.state == Operation.State.SUCCEEDED
    page = _page(admin_client)
    assert "Missing" in page
    assert f"There is no repository at {where.location} (restic exit 10)" in page
    assert 'id="create-form"' in page
    assert not where.path.exists()  # the check never makes one


def test_create_makes_the_repository_and_a_second_create_is_refused(admin_client: Client, where: Where) -> None:
    _check(admin_client)
    posted = admin_client.post(reverse("backups:offsite-create"), {"location": where.location})
    assert posted.status_code == 302, posted.content.decode()
    (op,) = run_queued()
    assert op.state == Operation.State.SUCCEEDED, op.error
    assert op.message.startswith(f"Repository created at {where.location}.")
    assert (where.path / "config").is_file()
    reading = RepositoryReading.objects.get(location=where.location)
    assert (reading.state, reading.snapshot_count, reading.locks) == ("exists", 0, [])
    page = _page(admin_client)
    assert "Exists" in page
    assert 'id="create-form"' not in page
    event = AuditEvent.objects.get(action=offsite_admin.CREATE_KIND)
    assert (event.actor.username, event.detail["location"]) == ("ada", where.location)

    again = admin_client.post(reverse("backups:offsite-create"), {"location": where.location})
    assert again.status_code == 400
    assert "only created when the last check found none" in again.content.decode()
    assert Operation.objects.filter(kind=offsite_admin.CREATE_KIND).count() == 1


def test_restic_refuses_to_create_over_an_existing_repository(admin_client: Client, local: Where) -> None:
    """A reading that says missing while a repository has appeared since (made by hand): the
    worker's init refuses, and nothing is changed."""
    _check(admin_client)
    _created(local)
    config = (local.path / "config").read_bytes()
    admin_client.post(reverse("backups:offsite-create"), {"location": local.location})
    (op,) = run_queued()
    assert op.state == Operation.State.FAILED
    assert op.error == f"There is already a repository at {local.location}; nothing was changed."
    assert (local.path / "config").read_bytes() == config
    assert RepositoryReading.objects.get(location=local.location).state == "exists"


@pytest.mark.parametrize("typed", ["", "/somewhere/else", "rclone:vault:/x"])
def test_a_wrongly_typed_location_is_refused_and_nothing_starts(admin_client: Client, local: Where, typed: str) -> None:
    _check(admin_client)
    response = admin_client.post(reverse("backups:offsite-create"), {"location": typed})
    assert response.status_code == 400
    page = response.content.decode()
    words = f"Type the location exactly as shown ({local.location})" if typed else "This field is required."
    assert words in page
    assert not Operation.objects.filter(kind=offsite_admin.CREATE_KIND).exists()
    assert not local.path.exists()


def test_create_before_any_check_is_refused(admin_client: Client, local: Where) -> None:
    response = admin_client.post(reverse("backups:offsite-create"), {"location": local.location})
    assert response.status_code == 400
    assert "(its last reading: none yet). Check the repository first." in response.content.decode()
    assert not Operation.objects.exists()


# --- what the reading shows ------------------------------------------------------------------


def test_the_reading_counts_snapshots_made_as_the_nightly_run_makes_them(
    admin_client: Client, where: Where, tmp_path: Path
) -> None:
    repo = _created(where)
    files = tmp_path / "alice-snapshot"
    files.mkdir()
    (files / "model.ckpt").write_bytes(os.urandom(300_000))
    for hour in (1, 2):
        offsite_snapshot(repo, local_snapshot("homes/alice", datetime(2026, 12, hour, 6, tzinfo=UTC)), str(files))
    op = _check(admin_client)
    assert op.message.startswith("The repository exists: 2 snapshots, ")
    reading = RepositoryReading.objects.get(location=where.location)
    assert reading.snapshot_count == 2
    assert reading.size_bytes == restic.stats(repo).total_size
    assert reading.size_bytes > 300_000  # random bytes do not compress
    page = _page(admin_client)
    assert "<dt>Snapshots</dt><dd>2</dd>" in page
    assert "No locks: no job is using the repository." in page


def test_a_wrong_password_is_told_in_words(admin_client: Client, where: Where) -> None:
    _created(where)
    where.password_file.write_text("not the password\n")
    op = _check(admin_client)
    assert op.state == Operation.State.FAILED
    page = _page(admin_client)
    assert "Could not be read" in page
    assert "The password file does not open this repository (restic exit 12)" in page
    assert f"{where.password_file} holds another password" in page
    assert "not the password" not in page
    assert PASSWORD not in page
    assert 'id="create-form"' not in page  # wrong password is not "missing"


def test_an_unset_repository_says_which_settings_to_set(admin_client: Client, settings: Any) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = ""
    page = _page(admin_client)
    assert "No offsite repository is set up: set BACKUP_RESTIC_REPOSITORY" in page
    assert "BACKUP_RESTIC_PASSWORD_FILE" in page
    refused = admin_client.post(reverse("backups:offsite-check"))
    assert refused.status_code == 400
    assert not Operation.objects.exists()


def test_a_remote_rclone_remotes_lacks_is_named(admin_client: Client, local: Where, settings: Any) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = "rclone:gdrive:portal"
    assert "names the rclone remote &#x27;gdrive&#x27;, which RCLONE_REMOTES does not define" in _page(admin_client)


def test_a_missing_password_file_is_told_by_the_worker(admin_client: Client, local: Where) -> None:
    local.password_file.unlink()
    op = _check(admin_client)
    assert op.state == Operation.State.FAILED
    assert f"The repository's password file {local.password_file} is missing on the worker" in op.error


def test_a_second_check_while_one_waits_is_refused(admin_client: Client, local: Where) -> None:
    assert admin_client.post(reverse("backups:offsite-check")).status_code == 302
    refused = admin_client.post(reverse("backups:offsite-check"))
    assert refused.status_code == 400
    assert offsite_admin.BUSY in refused.content.decode()
    assert Operation.objects.count() == 1


# --- locks -----------------------------------------------------------------------------------


def test_a_stale_lock_is_listed_and_broken(admin_client: Client, where: Where) -> None:
    repo = _created(where)
    pid = stale_lock(repo)
    _check(admin_client)
    (lock,) = offsite_admin.locks_of(offsite_admin.reading())
    assert lock.stale
    assert lock.holder == f"root@{HOSTNAME} (PID {pid})"
    page = _page(admin_client)
    assert f"root@{HOSTNAME} (PID {pid})" in page
    assert "Stale" in page
    assert "Break stale lock" in page
    assert f"({lock.age} ago)" in page

    posted = admin_client.post(reverse("backups:offsite-unlock"), {"lock_id": lock.id})
    assert posted.status_code == 302, posted.content.decode()
    (op,) = run_queued()
    assert op.state == Operation.State.SUCCEEDED, op.error
    assert op.message.startswith("Removed 1 stale lock.")
    assert restic.list_locks(repo) == []
    assert RepositoryReading.objects.get(location=where.location).locks == []
    event = AuditEvent.objects.get(action=offsite_admin.UNLOCK_KIND)
    assert event.detail == {"location": where.location, "lock_id": lock.id}
    assert "No locks" in _page(admin_client)


def test_a_live_lock_is_not_stale_and_breaking_it_is_refused(
    admin_client: Client, local: Where, holders: Callable[[restic.Repository], subprocess.Popen[bytes]]
) -> None:
    repo = _created(local)
    proc = holders(repo)
    _check(admin_client)
    (lock,) = offsite_admin.locks_of(offsite_admin.reading())
    assert not lock.stale
    page = _page(admin_client)
    assert "In use" in page
    assert "Break stale lock" not in page
    refused = admin_client.post(reverse("backups:offsite-unlock"), {"lock_id": lock.id})
    assert refused.status_code == 400
    assert f"Lock {lock.short_id} is held by root@{HOSTNAME} (PID {proc.pid}) for " in refused.content.decode()
    assert ": a job is running" in refused.content.decode()
    assert not Operation.objects.filter(kind=offsite_admin.UNLOCK_KIND).exists()
    assert len(restic.list_locks(repo)) == 1
    assert proc.poll() is None


def test_the_worker_refuses_a_lock_that_is_live_whatever_the_reading_said(
    admin_client: Client, local: Where, holders: Callable[[restic.Repository], subprocess.Popen[bytes]]
) -> None:
    """The page's reading is old news: the worker reads the locks again before unlocking."""
    repo = _created(local)
    proc = holders(repo)
    _check(admin_client)
    reading = RepositoryReading.objects.get(location=local.location)
    reading.locks = [{**reading.locks[0], "stale": True}]
    reading.save()
    assert admin_client.post(reverse("backups:offsite-unlock"), {"lock_id": reading.locks[0]["id"]}).status_code == 302
    (op,) = run_queued()
    assert op.state == Operation.State.FAILED
    assert f"is held by root@{HOSTNAME} (PID {proc.pid}) for " in op.error
    assert op.error.endswith(": a job is running.")
    assert len(restic.list_locks(repo)) == 1
    assert proc.poll() is None


BAD_LOCK_IDS = [
    ("", "This field is required."),
    ("abc", "That is not a lock of the repository (64 hex digits)."),
    ("f" * 64, "That lock is not in the last reading of the repository; check it again."),
]


def test_bad_or_unknown_lock_ids_are_refused(admin_client: Client, local: Where) -> None:
    repo = _created(local)  # one repository and its reading for every refusal: restic is slow to start
    stale_lock(repo)
    _check(admin_client)
    for lock_id, words in BAD_LOCK_IDS:
        response = admin_client.post(reverse("backups:offsite-unlock"), {"lock_id": lock_id})
        assert response.status_code == 400, lock_id
        assert words in response.content.decode(), lock_id
    assert not Operation.objects.filter(kind=offsite_admin.UNLOCK_KIND).exists()
    assert len(restic.list_locks(repo)) == 1


def test_a_lock_gone_before_the_worker_came_is_reported_as_gone(admin_client: Client, local: Where) -> None:
    repo = _created(local)
    stale_lock(repo)
    _check(admin_client)
    lock_id = RepositoryReading.objects.get().locks[0]["id"]
    admin_client.post(reverse("backups:offsite-unlock"), {"lock_id": lock_id})
    restic.unlock(repo)
    (op,) = run_queued()
    assert (op.state, op.message) == (
        Operation.State.SUCCEEDED,
        f"Lock {lock_id[:8]} is gone already: its job ended, or it was removed.",
    )


def test_the_task_names_the_services_send_are_the_tasks_names() -> None:
    assert offsite_admin_tasks.repository_check_task.name == offsite_admin.CHECK_TASK
    assert offsite_admin_tasks.repository_create_task.name == offsite_admin.CREATE_TASK
    assert offsite_admin_tasks.repository_unlock_task.name == offsite_admin.UNLOCK_TASK


# --- who may -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("backups:offsite-check", {}),
        ("backups:offsite-create", {"location": "/tmp/x"}),
        ("backups:offsite-unlock", {"lock_id": "f" * 64}),
    ],
)
def test_a_member_is_refused_and_nothing_starts(alice_client: Client, local: Where, name: str, data: dict) -> None:
    response = alice_client.post(reverse(name), data)
    assert response.status_code == 403
    assert not Operation.objects.exists()
    assert AuditEvent.objects.filter(action="admin_page.denied", outcome="refused").count() == 1


# --- an exclusive lock, and the repository lock held by another job --------------------------


def test_an_exclusive_lock_of_a_live_job_is_told_as_locked_in_words(
    admin_client: Client, local: Where, tmp_path: Path
) -> None:
    repo = _created(local)
    (tmp_path / "data").mkdir()
    checker = exclusive_lock(repo, local.path / "locks", tmp_path / "data")
    try:
        op = _check(admin_client)
        assert op.state == Operation.State.SUCCEEDED  # it read what it could: the locks
        page = _page(admin_client)
        assert f"The repository is locked by PID {checker.pid} on {HOSTNAME} by root for " in page
        assert "(restic exit 11): another job is using it." in page
        (lock,) = offsite_admin.locks_of(offsite_admin.reading())
        assert (lock.exclusive, lock.stale) == (True, False)
        assert "exclusive" in page
        assert "In use" in page
    finally:
        checker.kill()
        checker.wait()
    _check(admin_client)  # killed: its lock is stale now, and still blocks the rest
    (lock,) = offsite_admin.locks_of(offsite_admin.reading())
    assert lock.stale
    admin_client.post(reverse("backups:offsite-unlock"), {"lock_id": lock.id})
    (op,) = run_queued()
    assert op.state == Operation.State.SUCCEEDED, op.error
    reading = RepositoryReading.objects.get(location=local.location)
    assert (reading.problem, reading.locks, reading.snapshot_count) == ("", [], 1)


@pytest.fixture
def repository_lock_held_elsewhere() -> Iterator[None]:
    """offsite_repo.repo_lock() held by another database session, as the night's backup holds it."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with offsite_repo.repo_lock() as mine:
                assert mine
                held.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(timeout=10)
    yield
    release.set()
    holder.join(timeout=10)


def test_create_waits_while_another_job_holds_the_repository_and_gives_up_in_words(
    admin_client: Client, local: Where, repository_lock_held_elsewhere: None
) -> None:
    _check(admin_client)
    admin_client.post(reverse("backups:offsite-create"), {"location": local.location})
    op = Operation.objects.get(kind=offsite_admin.CREATE_KIND)
    with pytest.raises(offsite_admin.RepositoryBusy):
        offsite_admin.repository_create_execute(op.pk, location=local.location)
    op.refresh_from_db()
    assert (op.state, op.message) == (Operation.State.QUEUED, "Waiting: another job is using the repository")
    # The task tries again (at once when run eagerly), then gives up in words.
    offsite_admin_tasks.repository_create_task.apply(args=[op.pk], kwargs=op.params)
    op.refresh_from_db()
    assert op.state == Operation.State.FAILED
    assert op.error.startswith("Not done: another job (the night's backup or the drill) held the repository")
    assert not local.path.exists()


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (PartialForget("x", exit_code=3), "restic forget could not remove some of the snapshots"),
        (ResticInterrupted("x", exit_code=130), "restic was interrupted before it finished (exit 130)"),
        (ResticFailed("restic backup on /r failed (exit 1): boom", exit_code=1), "restic backup on /r failed"),
    ],
)
def test_the_other_exit_codes_in_words(local: Where, error: Exception, words: str) -> None:
    assert offsite_repo.explain(error).startswith(words)  # type: ignore[arg-type]


def test_a_partial_backup_in_words() -> None:
    words = offsite_repo.partial_words(("/run/portal-backup/homes/alice/x: permission denied", "/y: gone"))
    assert words == (
        "restic read only part of the source (exit 3); the snapshot was written without what it could not "
        "read: /run/portal-backup/homes/alice/x: permission denied (and 1 more)."
    )
