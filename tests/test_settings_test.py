"""The test settings give each pytest-xdist process its own Redis database and storage root,
even though every process inherits the environment of xdist's controller, which imported the
same settings first (CI once saw one process's task in the queue another process was reading)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRINT = (
    "import json, os; import project.settings_test as s; "
    "print(json.dumps([s.CELERY_BROKER_URL, os.environ['STORAGE_ROOT'], dict(os.environ)]))"
)


def _settings(env: dict[str, str]) -> tuple[str, str, dict[str, str]]:
    """The broker and storage root the test settings choose under ``env``, and the environment
    they leave (what a process started from there inherits)."""
    done = subprocess.run(
        [sys.executable, "-c", PRINT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    broker, root, environ = json.loads(done.stdout)
    return broker, root, environ


def _clean_env() -> dict[str, str]:
    prefixes = ("REDIS_URL", "STORAGE_ROOT", "PORTAL_TEST_", "PYTEST_XDIST_")
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}


def test_each_xdist_process_gets_its_own_redis_database_and_storage_root_despite_the_controllers_environment() -> None:
    controller_broker, controller_root, inherited = _settings(_clean_env())
    assert inherited["REDIS_URL"] == controller_broker  # what the controller's processes inherit

    seen = {(controller_broker, controller_root)}
    for worker in ("gw0", "gw1"):
        here = _settings({**inherited, "PYTEST_XDIST_WORKER": worker})[:2]
        assert here not in seen, f"{worker} shares {here} with another process"
        assert here[1].endswith(f"-{worker}")
        seen.add(here)
    assert len({broker for broker, _root in seen}) == 3


def test_a_value_chosen_by_the_caller_is_kept() -> None:
    chosen = {"PYTEST_XDIST_WORKER": "gw1", "REDIS_URL": "redis://127.0.0.1:6379/3", "STORAGE_ROOT": "/tmp/elsewhere"}
    assert _settings({**_clean_env(), **chosen})[:2] == ("redis://127.0.0.1:6379/3", "/tmp/elsewhere")
