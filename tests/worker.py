"""pytest plugin: a real Celery worker process for integration tests.

The worker is a separate process, so it only sees committed rows: tests that use it also use
``transactional_db``. It talks to the same Redis as the tests and to the test database that
pytest-django made (test_portal_<suffix>), not to the development one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from project.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent
QUEUES = ("portal", "host.local")
READY_TIMEOUT_S = 90
T = TypeVar("T")


def wait_for(probe: Callable[[], T], *, timeout: float = 30, interval: float = 0.2, what: str = "condition") -> T:
    """Call ``probe`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    nodename: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 30) -> None:
        wait_for(lambda: text in self.log(), timeout=timeout, what=f"{text!r} in the worker log")


def _database_url(db: dict[str, Any]) -> str:
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def purge_queues(queues: Sequence[str] = QUEUES) -> None:
    # Messages left by an earlier run (or a test that never got its worker) would run first.
    with celery_app.connection_for_write() as conn:
        for queue in queues:
            conn.default_channel.queue_purge(queue)


def _worker_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings_test",
        REDIS_URL=settings.CELERY_BROKER_URL,
        DATABASE_URL=_database_url(connection.settings_dict),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _wait_until_ready(worker: WorkerProcess) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while " ready." not in worker.log():
        if worker.process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {worker.process.returncode}:\n{worker.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"the Celery worker was not ready after {READY_TIMEOUT_S} s:\n{worker.log()}")
        time.sleep(0.2)
    # The log line comes as consumers start; a ping proves the worker answers over the broker.
    wait_for(
        lambda: celery_app.control.ping(destination=[worker.nodename], timeout=1.0),
        timeout=30,
        what="the worker to answer a ping",
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown: finish the task, ack, exit
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def celery_worker_env() -> dict[str, str]:
    """Extra environment for the worker process; a test module overrides this fixture."""
    return {}


def start_worker(
    *,
    nodename: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    queues: Sequence[str] = QUEUES,
    wait: bool = True,
) -> WorkerProcess:
    """Start a ``celery worker`` (solo pool: the main process runs the tasks, so its pid is the
    one to kill) on ``queues`` and wait until it answers a ping (``wait=False``: the caller
    calls ``wait_until_ready``, so several workers boot at once). Tests that need a second
    worker, one of another host's queue, or a new one after killing the first, call this;
    ``stop_worker`` ends it."""
    celery = str(Path(sys.executable).with_name("celery"))
    argv = [celery, "-A", "project", "worker", "-Q", ",".join(queues), "-n", nodename, "--pool", "solo"]
    argv += ["--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=_worker_env(extra_env or {}), stdout=log_file, stderr=subprocess.STDOUT
        )
    worker = WorkerProcess(process=process, log_path=log_path, nodename=nodename)
    if wait:
        wait_until_ready(worker)
    return worker


def wait_until_ready(worker: WorkerProcess) -> None:
    """Wait for a worker ``start_worker(wait=False)`` started; stop it if it never answers."""
    try:
        _wait_until_ready(worker)
    except BaseException:
        _stop(worker.process)
        raise


def stop_worker(worker: WorkerProcess) -> None:
    """Warm shutdown (the running task finishes); a worker already dead is left as it is."""
    _stop(worker.process)


@pytest.fixture(scope="module")
def celery_worker_process(
    django_db_setup: None,
    celery_worker_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """A real ``celery worker`` on the portal and host.local queues, stopped after the module."""
    purge_queues()
    nodename = f"pytest-{os.getpid()}@{socket.gethostname()}"
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    worker = start_worker(nodename=nodename, log_path=log_path, extra_env=celery_worker_env)
    try:
        yield worker
    finally:
        stop_worker(worker)


@pytest.fixture
def celery_worker_factory(
    django_db_setup: None, celery_worker_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[], WorkerProcess]]:
    """Start as many workers as a test needs (a spare, or a new one after killing one), each
    with ``celery_worker_env``; all are stopped after the test, the queues purged before."""
    purge_queues()
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        number = len(started) + 1
        nodename = f"pytest-{os.getpid()}-{number}@{socket.gethostname()}"
        log_path = tmp_path / f"worker-{number}.log"
        worker = start_worker(nodename=nodename, log_path=log_path, extra_env=celery_worker_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        stop_worker(worker)
