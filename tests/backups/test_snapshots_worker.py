"""Beat's hourly start through a real Celery worker process and a real BTRFS: the task on the
default queue records the pass and sends it to the storage host's queue, where the worker takes
the snapshots and records them; a second delivery of the same message does nothing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import current_app

from backups import snapshots
from backups.models import BackupRun, Snapshot
from portal.models import Host, Operation
from storage.layout import prepare_member
from tests.factories import UserFactory
from tests.loopfs import LoopFs, needs_loop_devices
from tests.storage.conftest import point_settings_at, storage_fs, wipe
from tests.worker import WorkerProcess, wait_for

__all__ = ["storage_fs"]  # the storage tests' RAID10 on loop devices

pytestmark = [
    pytest.mark.worker,
    pytest.mark.loopdev,
    needs_loop_devices,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def worker_root(storage_fs: LoopFs) -> Iterator[str]:
    root = os.path.join(storage_fs.mount, f"srv-worker-{uuid.uuid4().hex[:8]}")
    os.mkdir(root)
    yield root
    wipe(storage_fs.mount, root)


@pytest.fixture(scope="module")
def celery_worker_env(worker_root: str) -> dict[str, str]:
    return {"STORAGE_ROOT": worker_root}


def test_the_hourly_pass_runs_on_the_worker_and_a_second_delivery_does_nothing(
    worker_root: str, settings: Any, celery_worker_factory: Callable[[], WorkerProcess]
) -> None:
    point_settings_at(settings, worker_root)
    Host.local()  # a transactional test elsewhere may have flushed the migration's row
    prepare_member(UserFactory(username="alice"))
    worker = celery_worker_factory()

    current_app.send_task("backups.tasks.snapshot_run_task", queue="portal")  # what beat does

    def final() -> Operation | None:
        op = Operation.objects.filter(kind=snapshots.SNAPSHOT_KIND).first()
        return op if op is not None and op.is_final else None

    op = wait_for(final, timeout=60, interval=0.3, what="the pass to end on the worker")
    assert op.state == Operation.State.SUCCEEDED, (op.message, op.error, worker.log()[-3000:])
    run = BackupRun.objects.get(operation=op)
    assert (run.result, run.snapshots_made) == (BackupRun.Result.SUCCEEDED, 3)
    hour = snapshots.hour_of(run.started_at)
    path = snapshots.snapshot_path(worker_root, "homes/alice", hour)
    assert Snapshot.objects.get(source="homes/alice").path == path
    assert os.path.isdir(path)

    current_app.send_task(snapshots.EXECUTE_TASK, args=[op.pk], queue="host.local")  # delivered twice
    worker.wait_for_log(f"{snapshots.EXECUTE_TASK}[", timeout=30)
    wait_for(lambda: worker.log().count("succeeded in") >= 3, timeout=30, what="the second delivery to end")
    op.refresh_from_db()
    assert op.attempts == 1
    assert Snapshot.objects.count() == 3
