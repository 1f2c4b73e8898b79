"""A worker killed with SIGKILL while it follows a scrub, with real Celery worker processes and
a real BTRFS on a loop device. The kernel's scrub runs in a background btrfs process of its own,
so it goes on; the watch (beat, every minute) finds the job running with nobody holding its lock
and sends it again; a new worker takes it over, follows the same scrub to its end and records it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from hostops import btrfs
from portal.audit import SYSTEM
from portal.models import Host, Operation
from storage import scrub
from storage.models import ScrubRun
from tests.loopfs import LoopFs, loop_btrfs, needs_loop_devices
from tests.worker import WorkerProcess, wait_for

pytestmark = [
    pytest.mark.worker,
    pytest.mark.loopdev,
    needs_loop_devices,
    pytest.mark.django_db(transaction=True),
]

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopFs]:
    with loop_btrfs(tmp_path_factory.mktemp("scrub-worker")) as made:
        with open(os.path.join(made.mount, "data.bin"), "wb") as handle:
            for _ in range(48):
                handle.write(os.urandom(MIB))
            os.fsync(handle.fileno())
        os.sync()
        yield made


@pytest.fixture(scope="module")
def celery_worker_env(fs: LoopFs) -> dict[str, str]:
    return {"STORAGE_ROOT": fs.mount}


@pytest.fixture
def slow_scrub(fs: LoopFs, settings: Any) -> Iterator[LoopFs]:
    """48 MiB at 2 MiB/s: about 25 s of scrub, time enough to kill a worker in the middle."""
    settings.STORAGE_ROOT = fs.mount
    cache.delete(scrub.ROOT_FACT_KEY)
    shown = btrfs.filesystem_show(fs.mount)
    knob = Path(f"/sys/fs/btrfs/{shown.uuid}/devinfo/{shown.devices[0].devid}/scrub_speed_max")
    knob.write_text(f"{2 * MIB}\n")
    yield fs
    btrfs.scrub_cancel(fs.mount)
    knob.write_text("0\n")


def test_a_worker_killed_mid_scrub_is_replaced_and_the_same_scrub_is_recorded(
    slow_scrub: LoopFs, celery_worker_factory: Callable[[], WorkerProcess]
) -> None:
    Host.local()  # a transactional test elsewhere may have flushed the migration's row
    first = celery_worker_factory()
    op = scrub.scrub_start(actor=None, context=SYSTEM)

    def started() -> bool:
        op.refresh_from_db(fields=["log"])
        return "Started the scrub" in op.log

    wait_for(started, timeout=30, what="the first worker to start the scrub")
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    status = btrfs.scrub_status(slow_scrub.mount)
    assert status.running or status.status == ""  # the kernel's scrub goes on without its worker

    celery_worker_factory()
    assert scrub.scrub_watch() is True  # what beat does every minute

    def final() -> bool:
        op.refresh_from_db()
        return op.is_final

    wait_for(final, timeout=120, interval=0.5, what="the second worker to finish the scrub")
    assert op.state == Operation.State.SUCCEEDED, (op.message, op.error, op.log)
    assert op.attempts == 2
    assert op.log.count("Started the scrub") == 1  # one scrub, followed by two workers
    assert "taking over" in op.log
    run = ScrubRun.objects.get(operation=op)
    assert run.result == ScrubRun.Result.CLEAN
    assert run.bytes_scrubbed > 48 * MIB
    assert run.duration is not None
    assert run.duration.total_seconds() >= 10
