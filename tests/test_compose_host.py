"""docker-compose.host.yml (a second GPU server's worker) and docker-compose.lan.yml (the first
server's PostgreSQL and Redis on its LAN address) as Docker Compose v2 reads them, and the
promises they make."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
COMPOSE_BIN = os.environ.get("COMPOSE_BINARY", "/usr/local/lib/portal-test/bin/docker-compose")


def _compose(project: Path, files: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(COMPOSE_BIN).exists():
        pytest.skip(f"no Docker Compose v2 at {COMPOSE_BIN} (scripts/test-setup.sh installs it)")
    chosen = [arg for name in files for arg in ("-f", str(REPO / name))]
    argv = [COMPOSE_BIN, *chosen, "--project-directory", str(project)]
    env = {"PATH": os.environ["PATH"], "HOME": str(project)}  # only .env speaks, not this shell
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def _project(tmp: Path, *lines: str) -> Path:
    shutil.copy(REPO / ".env.example", tmp / ".env")
    with (tmp / ".env").open("a") as env:
        env.writelines(f"{line}\n" for line in lines)
    return tmp


def _resolved(tmp: Path, files: list[str], *lines: str) -> dict[str, Any]:
    done = _compose(_project(tmp, *lines), files, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def host_stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _resolved(tmp_path_factory.mktemp("host"), ["docker-compose.host.yml"], "PORTAL_HOST_NAME=gpu2")


def test_the_host_file_is_valid_compose_v2(tmp_path: Path) -> None:
    done = _compose(_project(tmp_path, "PORTAL_HOST_NAME=gpu2"), ["docker-compose.host.yml"], "config", "-q")
    assert done.returncode == 0, done.stderr


def test_a_second_server_runs_only_a_worker_of_its_own_queue(host_stack: dict[str, Any]) -> None:
    assert set(host_stack["services"]) == {"worker"}  # no portal, beat, migrate, postgres or redis
    command = host_stack["services"]["worker"]["command"]
    assert command[:4] == ["celery", "-A", "project", "worker"]
    assert command[command.index("-Q") + 1] == "host.gpu2"
    assert command[command.index("--hostname") + 1] == "gpu2@%h"
    assert "beat" not in command
    assert "-B" not in command


def test_a_queue_of_its_own_from_the_servers_page_replaces_the_default(tmp_path: Path) -> None:
    stack = _resolved(tmp_path, ["docker-compose.host.yml"], "PORTAL_HOST_NAME=gpu2", "PORTAL_HOST_QUEUE=gpu.second")
    command = stack["services"]["worker"]["command"]
    assert command[command.index("-Q") + 1] == "gpu.second"


def test_an_unset_server_name_stops_compose_naming_the_variable(tmp_path: Path) -> None:
    done = _compose(_project(tmp_path), ["docker-compose.host.yml"], "config", "-q")
    assert done.returncode != 0
    assert "PORTAL_HOST_NAME is required" in done.stderr


def test_the_worker_has_the_engine_the_storage_and_the_gpus_as_the_first_one(host_stack: dict[str, Any]) -> None:
    worker = host_stack["services"]["worker"]
    mounts = {mount["target"]: mount for mount in worker["volumes"]}
    assert mounts["/var/run/docker.sock"]["source"] == "/var/run/docker.sock"
    assert not mounts["/var/run/docker.sock"].get("read_only", False)
    assert mounts["/srv"]["source"] == "/srv"
    assert mounts["/host/proc"] == {**mounts["/host/proc"], "source": "/proc", "read_only": True}
    assert worker["environment"]["HOST_PROC"] == "/host/proc"
    assert worker["cap_add"] == ["SYS_ADMIN"]
    assert worker["user"] == "root"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert set(device["capabilities"]) == {"gpu", "utility"}
    assert worker["image"] == "gpu-portal:latest"
    assert worker["pull_policy"] == "never"  # loaded from the first server, never some other build
    assert "build" not in worker


def test_the_database_and_broker_addresses_come_from_secret_files(host_stack: dict[str, Any]) -> None:
    worker = host_stack["services"]["worker"]
    assert worker["environment"]["DATABASE_URL_FILE"] == "/run/secrets/database-url"
    assert worker["environment"]["REDIS_URL_FILE"] == "/run/secrets/redis-url"
    assert {secret["source"] for secret in worker["secrets"]} == {"database-url", "redis-url"}
    assert host_stack["secrets"]["database-url"]["file"] == "/etc/gpu-portal/database-url"
    assert host_stack["secrets"]["redis-url"]["file"] == "/etc/gpu-portal/redis-url"


def test_the_first_server_publishes_postgres_and_redis_on_its_lan_address_only(tmp_path: Path) -> None:
    files = ["docker-compose.yml", "docker-compose.lan.yml"]
    stack = _resolved(tmp_path, files, "PORTAL_LAN_ADDRESS=10.0.0.11")
    for name, port in (("postgres", "5432"), ("redis", "6379")):
        (published,) = stack["services"][name]["ports"]
        assert (published["host_ip"], published["published"], str(published["target"])) == ("10.0.0.11", port, port)
    redis = stack["services"]["redis"]
    assert redis["command"] == ["redis-server", "/run/secrets/redis-conf"]  # the password is in the file, not argv
    assert [secret["source"] for secret in redis["secrets"]] == ["redis-conf"]
    assert "ports" not in stack["services"]["portal"]


def test_the_lan_override_refuses_to_guess_the_address(tmp_path: Path) -> None:
    done = _compose(_project(tmp_path), ["docker-compose.yml", "docker-compose.lan.yml"], "config", "-q")
    assert done.returncode != 0
    assert "PORTAL_LAN_ADDRESS is required" in done.stderr
