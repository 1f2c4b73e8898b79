"""The production path with a real Celery worker process: the page's buttons send the
repository's Operations by name to the storage host's queue, the worker runs restic 0.18 with
its own settings (the repository, its password file), and the page shows what it recorded."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from backups import offsite_admin, offsite_repo
from backups.models import RepositoryReading
from hostops import restic
from portal.models import Operation
from tests.backups.offsite_helpers import HOSTNAME, PASSWORD, stale_lock
from tests.worker import WorkerProcess, wait_for

RESTIC_0_18 = "/usr/local/lib/portal-test/bin/restic"
pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.access(RESTIC_0_18, os.X_OK), reason=f"needs restic 0.18 at {RESTIC_0_18}"),
    # The worker imports every module of CELERY_IMPORTS when it starts.
    pytest.mark.skipif(
        importlib.util.find_spec("backups.offsite_tasks") is None,
        reason="backups.offsite_tasks (in CELERY_IMPORTS) is not written yet, so no worker starts",
    ),
]


@pytest.fixture(scope="module")
def offsite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("offsite-worker")
    (folder / "restic-password").write_text(PASSWORD + "\n")
    (folder / "restic-password").chmod(0o600)
    return folder


def _offsite_env(folder: Path) -> dict[str, str]:
    return {
        "BACKUP_RESTIC_REPOSITORY": f"rclone:vault:{folder}/repo",
        "BACKUP_RESTIC_PASSWORD_FILE": str(folder / "restic-password"),
        "BACKUP_RESTIC_CACHE_DIR": str(folder / "cache"),
        "RCLONE_REMOTES": json.dumps([{"name": "vault", "type": "local"}]),
        "RCLONE_CONFIG_DIR": str(folder / "rclone"),
    }


@pytest.fixture(scope="module")
def celery_worker_env(offsite_dir: Path) -> dict[str, str]:
    return _offsite_env(offsite_dir)


@pytest.fixture
def same_settings(settings: Any, offsite_dir: Path) -> None:
    """The web side's settings as the worker's (the page names the same repository)."""
    env = _offsite_env(offsite_dir)
    settings.BACKUP_RESTIC_REPOSITORY = env["BACKUP_RESTIC_REPOSITORY"]
    settings.BACKUP_RESTIC_PASSWORD_FILE = env["BACKUP_RESTIC_PASSWORD_FILE"]
    settings.BACKUP_RESTIC_CACHE_DIR = env["BACKUP_RESTIC_CACHE_DIR"]
    settings.RCLONE_REMOTES_JSON = env["RCLONE_REMOTES"]
    settings.RCLONE_CONFIG_DIR = str(offsite_dir / "rclone-web")


def _done(kind: str) -> Operation:
    return wait_for(
        lambda: Operation.objects.filter(kind=kind, state__in=Operation.FINAL_STATES).order_by("-pk").first(),
        timeout=60,
        what=f"the {kind} to end",
    )


def test_the_worker_checks_creates_and_unlocks(
    admin_client: Client, same_settings: None, offsite_dir: Path, celery_worker_process: WorkerProcess
) -> None:
    location = f"rclone:vault:{offsite_dir}/repo"
    assert admin_client.post(reverse("backups:offsite-check")).status_code == 302
    check = _done(offsite_admin.CHECK_KIND)
    assert check.state == Operation.State.SUCCEEDED, (check.error, celery_worker_process.log()[-3000:])
    assert RepositoryReading.objects.get(location=location).state == "missing"

    assert admin_client.post(reverse("backups:offsite-create"), {"location": location}).status_code == 302
    create = _done(offsite_admin.CREATE_KIND)
    assert create.state == Operation.State.SUCCEEDED, (create.error, celery_worker_process.log()[-3000:])
    assert (offsite_dir / "repo" / "config").is_file()

    pid = stale_lock(offsite_repo.repository())
    check.delete()
    admin_client.post(reverse("backups:offsite-check"))
    _done(offsite_admin.CHECK_KIND)
    (lock,) = offsite_admin.locks_of(offsite_admin.reading())
    assert (lock.holder, lock.stale) == (f"root@{HOSTNAME} (PID {pid})", True)
    assert admin_client.post(reverse("backups:offsite-unlock"), {"lock_id": lock.id}).status_code == 302
    unlock = _done(offsite_admin.UNLOCK_KIND)
    assert unlock.state == Operation.State.SUCCEEDED, unlock.error
    assert restic.list_locks(offsite_repo.repository()) == []
    assert "No locks: no job is using the repository." in admin_client.get(reverse("backups:offsite")).content.decode()
