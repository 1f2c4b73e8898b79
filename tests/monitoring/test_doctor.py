"""The doctor against the real parts, each really broken: a private Redis killed, a Docker socket
nobody listens on (how a stopped dockerd looks to a client) and one that takes the connection and
never answers, a BTRFS loop filesystem with its quotas turned off and then unmounted, a real
restic repository opened with the wrong password, an image the engine lacks. Slack and Guacamole
are local stand-ins that answer as they do (tests/monitoring/doctor_standins.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from hostops import btrfs, restic
from monitoring import doctor, doctor_config, doctor_remote, heartbeats
from monitoring import doctor_checks as checks
from monitoring.doctor_checks import Check, Status
from portal.models import Host
from tests.backups.offsite_helpers import point_offsite_at
from tests.conftest import DOCKER_URL, SLIM_IMAGE
from tests.loopfs import loop_btrfs, needs_loop_devices, umount
from tests.monitoring.doctor_standins import GUACAMOLE_KEY, SLACK_LIVE, StandIn, stand_in
from tests.worker import wait_for

RESTIC_0_18 = "/usr/local/lib/portal-test/bin/restic"
needs_restic = pytest.mark.skipif(not os.access(RESTIC_0_18, os.X_OK), reason=f"needs restic 0.18 at {RESTIC_0_18}")
pytestmark = pytest.mark.django_db


def _by_key(rows: list[Check] | tuple[Check, ...]) -> dict[str, Check]:
    return {row.key: row for row in rows}


def _production_settings(settings: Any) -> None:
    """Settings as a production .env gives them (the test settings are for a laptop)."""
    settings.ALLOWED_HOSTS = ["portal.team.org", "portal", "localhost", "127.0.0.1"]
    settings.PORTAL_DOMAIN = "team.org"
    settings.GOOGLE_WORKSPACE_DOMAIN = "team.org"
    settings.GATE_FORWARD_AUTH_KEY = "g" * 20 + "A1b2C3d4e5F6g7H8i9J0"
    settings.GOOGLE_CLIENT_ID = "1234567890-abcdefgh.apps.googleusercontent.com"
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True


@pytest.fixture
def services() -> Iterator[StandIn]:
    with stand_in() as state:
        yield state


@pytest.fixture
def storage_fs(tmp_path: Path, settings: Any) -> Iterator[str]:
    (tmp_path / "fs").mkdir()
    with loop_btrfs(tmp_path / "fs") as fs:
        btrfs.quota_enable(fs.mount)
        settings.STORAGE_ROOT = fs.mount
        yield fs.mount


@pytest.fixture
def healthy(settings: Any, tmp_path: Path, storage_fs: str, services: StandIn) -> StandIn:
    """Every part up: the real engine and image, BTRFS with quotas, a restic repository behind an
    rclone remote opened with its password, a live webhook, Guacamole with the portal's key, and
    each queue's worker lately stamped (as its heartbeat task does)."""
    _production_settings(settings)
    Host.objects.filter(pk=Host.local().pk).update(docker_url=DOCKER_URL)
    settings.WORKSPACE_IMAGE = SLIM_IMAGE
    settings.MONITORING_DISK_PATHS = ["/"]
    point_offsite_at(settings, tmp_path, "rclone")
    restic.init(doctor_remote.offsite_repo.repository())
    settings.SLACK_WEBHOOK_URL = services.base + SLACK_LIVE
    settings.GUACAMOLE_JSON_SECRET_KEY = GUACAMOLE_KEY
    settings.GUACAMOLE_URL = services.base + "/guacamole"
    for queue in heartbeats.expected_queues():
        heartbeats.stamp(queue, worker="worker@test")
    return services


@needs_loop_devices
@needs_restic
@pytest.mark.docker
@pytest.mark.loopdev
def test_a_healthy_set_up_is_all_green_exits_0_and_posts_nothing_to_slack(
    healthy: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)  # the e2e tests' live server sets it
    report = doctor.doctor_run()
    assert [row for row in report.checks if row.status != Status.OK] == []
    keys = _by_key(report.checks)
    for key in ("database", "clock", "cache", "broker", "beat", "worker.portal", "worker.host.local", "docker.local"):
        assert key in keys, key
    assert keys["image.local"].detail.startswith(SLIM_IMAGE)
    assert keys["storage.quotas"].detail.startswith("on")
    assert "opens with the password file" in keys["restic"].detail
    assert keys["rclone.vault"].status == Status.OK
    assert healthy.posted == []  # the webhook was asked with an empty message, which Slack never shows
    assert healthy.signed_in == ["portal-doctor"]
    assert healthy.signed_out == ["T0KEN"]
    out = StringIO()
    call_command("doctor", "--json", stdout=out)  # no CommandError: exit 0
    data = json.loads(out.getvalue())
    assert data["ok"] is True
    assert data["counts"]["fail"] == 0
    assert set(data["checks"][0]) == {"key", "name", "status", "detail", "fix"}


def test_redis_stopped_fails_the_cache_and_the_broker_with_the_fix(settings: Any, tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}
        settings.CELERY_BROKER_URL = url
        probes = [checks.cache_probe(), checks.broker_probe()]
        wait_for(lambda: all(row.status == Status.OK for row in doctor._run_probes(probes, limit=None)), what="redis")
    finally:
        server.kill()
        server.wait()
    rows = _by_key(doctor._run_probes(probes, limit=None))
    for key in ("cache", "broker"):
        assert rows[key].status == Status.FAIL, rows[key]
        assert "Connection" in rows[key].detail or "refused" in rows[key].detail.lower()
        assert "Start Redis" in rows[key].fix


def test_a_stopped_dockerd_fails_its_host_and_skips_the_image(tmp_path: Path) -> None:
    # A dockerd that stopped leaves its socket file behind, and nobody listens on it any more.
    left = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(left))
    Host.objects.create(name="gpu-2", queue="host.gpu-2", docker_url=f"unix://{left}")
    Host.objects.create(name="gpu-3", queue="host.gpu-3", docker_url=f"unix://{tmp_path}/never.sock")
    rows = _by_key(doctor._run_probes(checks.docker_probes(), limit=None))
    assert rows["docker.gpu-2"].status == Status.FAIL
    assert "did not answer" in rows["docker.gpu-2"].detail or "does not answer" in rows["docker.gpu-2"].detail
    assert rows["docker.gpu-2"].fix.startswith("Start Docker on gpu-2")
    assert rows["image.gpu-2"].status == Status.SKIP
    assert rows["docker.gpu-3"].detail.startswith(f"There is no socket at {tmp_path}/never.sock")


def test_an_engine_that_takes_the_connection_and_never_answers_costs_only_its_time_limit(tmp_path: Path) -> None:
    path = tmp_path / "hung.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(8)  # connections wait in the backlog: nothing ever reads them
        Host.objects.create(name="gpu-4", queue="host.gpu-4", docker_url=f"unix://{path}")
        started = time.monotonic()
        rows = _by_key(doctor._run_probes([*checks.docker_probes(), checks.disk_probe()], limit=1.0))
        assert time.monotonic() - started < 3
    assert rows["docker.gpu-4"].status == Status.FAIL
    assert rows["docker.gpu-4"].detail == "no answer within 1 s"
    assert "restart it" in rows["docker.gpu-4"].fix
    assert rows["disk./"].status == Status.OK  # the others answered meanwhile


@pytest.mark.docker
def test_a_missing_workspace_image_fails_with_the_build_command(settings: Any) -> None:
    Host.objects.filter(pk=Host.local().pk).update(docker_url=DOCKER_URL)
    settings.WORKSPACE_IMAGE = "portal/no-such-image:never"
    settings.WORKSPACE_IMAGE_BUILD_HINT = ""
    rows = _by_key(doctor._run_probes(checks.docker_probes(), limit=None))
    assert rows["docker.local"].status == Status.OK
    assert rows["image.local"].status == Status.FAIL
    assert "docker buildx build --load -t portal/no-such-image:never" in rows["image.local"].fix


@needs_loop_devices
@pytest.mark.loopdev
def test_btrfs_with_quotas_is_green_quotas_off_fails_unmounted_fails(storage_fs: str, settings: Any) -> None:
    settings.MONITORING_DISK_PATHS = [storage_fs]
    rows = _by_key(doctor._run_probes([checks.storage_probe(), checks.disk_probe()], limit=None))
    assert rows["storage.btrfs"].status == Status.OK
    assert rows["storage.quotas"].status == Status.OK
    assert rows[f"disk.{storage_fs}"].status == Status.FAIL  # a 256 MiB filesystem: under 1 GiB free
    btrfs.quota_disable(storage_fs)
    rows = _by_key(doctor._run_probes([checks.storage_probe()], limit=None))
    assert rows["storage.quotas"].status == Status.FAIL
    assert rows["storage.quotas"].fix.startswith(f"btrfs quota enable {storage_fs}")
    umount(storage_fs)
    rows = _by_key(doctor._run_probes([checks.storage_probe()], limit=None))
    assert rows["storage.btrfs"].status == Status.FAIL
    assert "not BTRFS" in rows["storage.btrfs"].detail
    assert f"mount {storage_fs}" in rows["storage.btrfs"].fix
    assert rows["storage.quotas"].status == Status.SKIP


def test_a_storage_root_that_is_not_there_fails(settings: Any, tmp_path: Path) -> None:
    settings.STORAGE_ROOT = str(tmp_path / "srv")
    rows = _by_key(doctor._run_probes([checks.storage_probe()], limit=None))
    assert rows["storage.btrfs"].status == Status.FAIL
    assert "does not exist" in rows["storage.btrfs"].detail


@needs_restic
def test_a_wrong_restic_password_fails_and_a_missing_repository_says_create_it(settings: Any, tmp_path: Path) -> None:
    where = point_offsite_at(settings, tmp_path, "local")
    found, probes = doctor_remote.restic_probes()
    assert found == []
    assert _by_key(doctor._run_probes(probes, limit=None))["restic"].fix.startswith("Create it")
    restic.init(doctor_remote.offsite_repo.repository())
    where.password_file.write_text("not the password\n")
    _found, probes = doctor_remote.restic_probes()
    row = _by_key(doctor._run_probes(probes, limit=None))["restic"]
    assert row.status == Status.FAIL
    assert "password file does not open this repository" in row.detail
    assert str(where.password_file) in row.fix
    assert "not the password" not in row.detail + row.fix


def test_a_missing_restic_password_file_fails_without_running_restic(settings: Any, tmp_path: Path) -> None:
    where = point_offsite_at(settings, tmp_path, "local")
    where.password_file.unlink()
    found, probes = doctor_remote.restic_probes()
    assert probes == []
    assert found[0].status == Status.FAIL
    assert "password file" in found[0].detail


def test_unset_parts_are_skipped_not_failed(settings: Any) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = ""
    settings.RCLONE_REMOTES_JSON = "[]"
    settings.SLACK_WEBHOOK_URL = ""
    settings.GUACAMOLE_JSON_SECRET_KEY = ""
    rows = [
        *doctor_remote.restic_probes()[0],
        *doctor_remote.rclone_probes()[0],
        doctor_remote.slack_probe(),
        doctor_remote.guacamole_probe(),
    ]
    assert [row.status for row in rows if isinstance(row, Check)] == [Status.SKIP] * 4


def test_a_removed_slack_webhook_and_an_unreachable_one_fail(settings: Any, services: StandIn) -> None:
    settings.SLACK_WEBHOOK_URL = services.base + "/services/T0/B0/removed"
    probe = doctor_remote.slack_probe()
    assert isinstance(probe, checks.Probe)
    row = doctor._run_probes([probe], limit=None)[0]
    assert row.status == Status.FAIL
    assert "HTTP 404: no_service" in row.detail
    assert "new incoming webhook" in row.fix
    settings.SLACK_WEBHOOK_URL = f"http://127.0.0.1:{_free_port()}/services/T0/B0/secret-part"
    row = doctor._run_probes([probe], limit=None)[0]
    assert row.status == Status.FAIL
    assert "secret-part" not in row.detail
    assert services.posted == []


def test_guacamole_with_another_key_fails_and_a_wrong_address_fails(settings: Any, services: StandIn) -> None:
    settings.GUACAMOLE_JSON_SECRET_KEY = "f" * 32
    settings.GUACAMOLE_URL = services.base + "/guacamole"
    probe = doctor_remote.guacamole_probe()
    assert isinstance(probe, checks.Probe)
    row = doctor._run_probes([probe], limit=None)[0]
    assert row.status == Status.FAIL
    assert "JSON_SECRET_KEY" in row.detail
    assert services.signed_in == []
    settings.GUACAMOLE_URL = services.base + "/elsewhere"
    row = doctor._run_probes([probe], limit=None)[0]
    assert row.status == Status.FAIL
    assert "HTTP 404" in row.detail


def test_production_settings_problems_fail_each_with_its_fix(settings: Any) -> None:
    _production_settings(settings)
    assert all(row.status == Status.OK for row in doctor_config.settings_checks())
    settings.DEBUG = True
    settings.SECRET_KEY = "change-me"
    settings.ALLOWED_HOSTS = ["*"]
    settings.PORTAL_DOMAIN = "localhost"
    settings.GATE_FORWARD_AUTH_KEY = "change-me-too"
    settings.GOOGLE_CLIENT_SECRET = ""
    rows = doctor_config.settings_checks()
    assert [row.status for row in rows] == [Status.FAIL] * 6
    assert all(row.fix for row in rows)
    assert not any("change-me" in row.detail for row in rows if row.key == "config.secret_key")


def test_the_clock_warns_past_2_s_and_fails_past_30_s() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    moment = now.timestamp()
    statuses = [
        checks._clock(now + timedelta(seconds=skew), moment, moment, vendor="postgresql").status
        for skew in (0.5, -3, 31)
    ]
    assert statuses == [Status.OK, Status.WARN, Status.FAIL]


def test_a_queue_without_a_recent_heartbeat_fails_its_worker_and_all_late_fails_beat() -> None:
    now = datetime.now(UTC)
    Host.local()
    heartbeats.stamp("portal", worker="w@a", now=now)
    rows = _by_key(checks.heartbeat_checks(now=now))
    assert rows["worker.portal"].status == Status.OK
    assert rows["worker.host.local"].status == Status.FAIL
    assert "never" in rows["worker.host.local"].detail
    assert rows["beat"].status == Status.OK
    rows = _by_key(checks.heartbeat_checks(now=now + timedelta(minutes=10)))
    assert rows["beat"].status == Status.FAIL
    assert "docker compose up -d beat" in rows["beat"].fix


def test_exit_codes_of_the_command_fail_is_1_a_warning_only_with_strict(settings: Any) -> None:
    settings.DEBUG = True  # one failure whatever else this machine has
    with pytest.raises(CommandError) as raised:
        call_command("doctor", "--timeout", "20", stdout=StringIO())
    assert raised.value.returncode == 1
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("doctor", "--timeout", "20", stdout=out)
    assert "FAIL  DEBUG" in out.getvalue()
    assert "fix: Set DEBUG=false" in out.getvalue()
    with pytest.raises(CommandError, match="--timeout must be a positive"):
        call_command("doctor", "--timeout", "0")
    warned = doctor.Report(datetime.now(UTC), "here", 0.0, (Check("x", "X", Status.WARN, "meh", "do"),))
    assert warned.exit_code() == 0
    assert warned.exit_code(strict=True) == 1


def test_the_command_run_as_a_process_exits_1_and_prints_json_for_scripts() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings_test", "DEBUG": "true"}
    done = subprocess.run(
        [sys.executable, "manage.py", "doctor", "--json", "--timeout", "20"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is False
    assert {"at", "where", "seconds", "counts", "checks"} <= set(data)
    debug = next(row for row in data["checks"] if row["key"] == "config.debug")
    assert debug["status"] == "fail"
    assert debug["fix"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_drive_remote_without_its_token_fails_with_how_to_give_it_one(settings: Any, tmp_path: Path) -> None:
    settings.RCLONE_CONFIG_DIR = str(tmp_path / "rclone")
    settings.RCLONE_REMOTES_JSON = json.dumps([{"name": "gdrive", "type": "drive", "options": {"scope": "drive"}}])
    found, probes = doctor_remote.rclone_probes()
    assert found == []
    row = doctor._run_probes(probes, limit=None)[0]
    assert row.key == "rclone.gdrive"
    assert row.status == Status.FAIL
    assert "empty token" in row.detail
    assert "paste Drive's token again on the Backups page" in row.fix


def test_a_bad_rclone_remotes_setting_fails_without_running_rclone(settings: Any) -> None:
    settings.RCLONE_REMOTES_JSON = "[{"
    found, probes = doctor_remote.rclone_probes()
    assert probes == []
    assert found[0].status == Status.FAIL
    assert "RCLONE_REMOTES is not valid JSON" in found[0].detail
