"""The production path with a real Celery worker process: the page asks the worker for a
snapshot's listing and a file through the broker and gets them back through the cache (the web
process never opens the snapshot), and the restore runs as the worker's Operation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from backups import restore
from backups.models import Snapshot
from hostops import btrfs
from portal.models import Operation
from storage.models import MemberStorage
from tests.factories import UserFactory
from tests.loopfs import LoopFs, loop_btrfs, needs_loop_devices
from tests.storage.conftest import point_settings_at, wipe
from tests.worker import WorkerProcess, wait_for

pytestmark = [
    pytest.mark.worker,
    pytest.mark.loopdev,
    needs_loop_devices,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopFs]:
    with loop_btrfs(tmp_path_factory.mktemp("restore-worker")) as made:
        btrfs.quota_enable(made.mount)
        yield made


@pytest.fixture(scope="module")
def celery_worker_env(fs: LoopFs) -> dict[str, str]:
    return {"STORAGE_ROOT": f"{fs.mount}/srv", "BACKUP_BROWSE_LOCAL": "false"}


@pytest.fixture
def root(fs: LoopFs, settings: Any) -> Iterator[str]:
    path = f"{fs.mount}/srv"
    os.makedirs(path, exist_ok=True)
    point_settings_at(settings, path)
    settings.BACKUP_BROWSE_LOCAL = False  # as in production: only the worker reads snapshots
    yield path
    wipe(fs.mount, path)


def test_the_worker_lists_the_snapshot_and_restores_the_file(root: str, celery_worker_process: WorkerProcess) -> None:
    alice = UserFactory(username="alice")  # the invite sends the worker to make her home
    home = wait_for(
        lambda: MemberStorage.objects.filter(user=alice, state=MemberStorage.State.PRESENT).first(),
        timeout=60,
        what="alice's home",
    ).home_path
    data = os.urandom(64 * 1024)
    with open(f"{home}/model.ckpt", "wb") as handle:
        handle.write(data)
    base = f"{root}/.snapshots/homes/alice"
    os.makedirs(base, exist_ok=True)
    when = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    btrfs.snapshot_readonly(home, f"{base}/{when:%Y-%m-%dT%H%M%SZ}")
    snapshot = Snapshot.objects.create(
        source="homes/alice", owner=alice, path=f"{base}/{when:%Y-%m-%dT%H%M%SZ}", taken_at=when
    )
    os.unlink(f"{home}/model.ckpt")
    client = Client()
    client.force_login(alice)

    page = client.get(reverse("backups:my-snapshot", args=[snapshot.pk]))
    assert page.status_code == 200, page.content.decode()
    assert "model.ckpt" in page.content.decode()
    celery_worker_process.wait_for_log(restore.LIST_TASK)
    got = client.get(reverse("backups:my-download", args=[snapshot.pk]), {"path": "model.ckpt"})
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == data  # type: ignore[attr-defined]

    posted = client.post(reverse("backups:my-restore", args=[snapshot.pk]), {"paths": ["model.ckpt"]})
    assert posted.status_code == 302
    op = Operation.objects.get(kind=restore.RESTORE_KIND)
    done = wait_for(
        lambda: Operation.objects.filter(pk=op.pk, state__in=Operation.FINAL_STATES).first(),
        timeout=60,
        what="the restore to end",
    )
    assert done.state == Operation.State.SUCCEEDED, (done.error, celery_worker_process.log()[-3000:])
    with open(f"{home}/restored/{restore.restore_folder_name(op.created)}/model.ckpt", "rb") as handle:
        assert handle.read() == data
    snapshot.refresh_from_db()
    assert snapshot.pinned == ""
