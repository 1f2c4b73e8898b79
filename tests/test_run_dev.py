"""`make run` (scripts/run-dev.sh) stops everything it started, promptly, on SIGTERM and on
the terminal's Ctrl-C (SIGINT to the script's process group).

The script runs as a user would start it: in a session of its own, with none of the test
settings' environment, on a free port, with a temporary PORTAL_VAR_DIR. Every process it
starts inherits that PORTAL_VAR_DIR, which is how the test finds them in /proc, whatever
process group or session they moved to."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "run-dev.sh"
READY_TIMEOUT_S = 45
STOP_WITHIN_S = 15

pytestmark = pytest.mark.worker  # it starts a real Celery worker (and beat, and runserver)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _started_by(var_dir: Path) -> list[int]:
    """Live processes whose environment carries PORTAL_VAR_DIR=var_dir (zombies excluded)."""
    marker = f"PORTAL_VAR_DIR={var_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if state != "Z" and marker in environ:
            found.append(int(entry.name))
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _healthz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One var folder for both runs: the second finds its database migrated."""
    return tmp_path_factory.mktemp("run-dev-var")


@pytest.fixture
def run_dev(var_dir: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = _free_port()
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "DOCKER_HOST")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        PORTAL_VAR_DIR=str(var_dir),
        PORTAL_DEV_PORT=str(port),
        PORTAL_DEV_BUILD_IMAGE="0",  # never a multi-minute image build inside a test
        PORTAL_DEV_STOP_TIMEOUT="10",
    )
    log = tmp_path / "run-dev.log"
    # A terminal's shell hands the script SIGINT at its default. A test run started in the
    # background (`make test &`) ignores SIGINT, the script would inherit that, and bash can't
    # trap a signal ignored on entry: so the child starts with SIGINT at its default here.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(SCRIPT)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
    finally:
        signal.signal(signal.SIGINT, ignored)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while _healthz(port) != 200:
            if process.poll() is not None:
                pytest.fail(f"run-dev.sh exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                pytest.fail(f"/healthz not 200 after {READY_TIMEOUT_S} s:\n{log.read_text(errors='replace')}")
            time.sleep(0.3)
        yield process, port, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        _kill_all(_started_by(var_dir))  # a failed test must not leave a worker behind


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("sigterm", id="SIGTERM to the script"),
        pytest.param("ctrl-c", id="SIGINT to its process group, as a terminal's Ctrl-C"),
    ],
)
def test_stopping_make_run_ends_every_process_it_started(
    run_dev: tuple[subprocess.Popen[bytes], int, Path], var_dir: Path, how: str
) -> None:
    process, port, log = run_dev
    before = _started_by(var_dir)
    # The script, the worker (its pool is threads), beat, runserver and its reloaded child.
    assert len(before) >= 5, before

    if how == "sigterm":
        os.kill(process.pid, signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_WITHIN_S
    while (left := _started_by(var_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)

    assert left == [], f"still running {STOP_WITHIN_S} s after the signal: {left}\n{log.read_text(errors='replace')}"
    assert process.wait(timeout=1) == (143 if how == "sigterm" else 130)
    assert _healthz(port) is None  # nothing answers on the port any more
