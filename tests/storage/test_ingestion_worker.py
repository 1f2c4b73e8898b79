"""Ingestion end to end through a real Celery worker: beat's task (by its name, on the default
queue) starts a run, the run task goes to the host's queue, the worker runs rclone (remotes,
config folder and datasets root from its environment, as in production) and the admin's page
shows the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from celery import current_app
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from portal.audit import SYSTEM
from storage import ingestion
from storage.models import IngestionJob, IngestionRun
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("transactional_db")]


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ingestion")
    (root / "datasets").mkdir()
    (root / "incoming" / "2026").mkdir(parents=True)
    (root / "incoming" / "a.csv").write_text("id\n1\n")
    (root / "incoming" / "2026" / "b.csv").write_text("id\n2\n")
    return root


def _environment(place: Path) -> dict[str, str]:
    return {
        "RCLONE_REMOTES": json.dumps([{"name": "customer", "type": "local"}]),
        "RCLONE_CONFIG_DIR": str(place / "rclone"),
        "WORKSPACE_DATASETS_PATH": str(place / "datasets"),
    }


@pytest.fixture(scope="module")
def celery_worker_env(place: Path) -> dict[str, str]:
    return _environment(place)


@pytest.fixture
def same_settings(settings: Settings, place: Path) -> None:
    settings.RCLONE_REMOTES_JSON = _environment(place)["RCLONE_REMOTES"]
    settings.WORKSPACE_DATASETS_PATH = str(place / "datasets")


def test_beats_task_starts_a_run_that_the_hosts_worker_carries_out(
    same_settings: None, place: Path, admin_client: Client, celery_worker_process: WorkerProcess
) -> None:
    values = {
        "name": "customer-data",
        "source": f"customer:{place}/incoming",
        "target_kind": IngestionJob.TargetKind.DATASET,
        "target": "customer/daily",
        "bwlimit_mbps": 100,
        "check_after": True,
        "schedule_minute": "0",
        "schedule_hour": "4",
    }
    job = ingestion.ingestion_job_create(values=values, actor=None, context=SYSTEM)
    assert job.periodic_task is not None
    # What beat does at 04:00: send the PeriodicTask's task by name with its args.
    current_app.send_task(job.periodic_task.task, args=json.loads(job.periodic_task.args))
    run = wait_for(
        lambda: IngestionRun.objects.filter(job=job).exclude(result=IngestionRun.Result.RUNNING).first(),
        timeout=60,
        what="the run to end",
    )
    assert run.result == IngestionRun.Result.SUCCEEDED, run.message
    assert run.message.endswith("checked: all 2 files match.")
    assert (place / "datasets" / "customer" / "daily" / "2026" / "b.csv").read_text() == "id\n2\n"
    assert (place / "rclone" / "rclone.conf").read_text() == "[customer]\ntype = local\n"
    page = admin_client.get(reverse("storage:ingestion-run-detail", args=[run.pk])).content.decode()
    assert "--bwlimit=12207K" in page
