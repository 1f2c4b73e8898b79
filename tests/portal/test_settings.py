"""Settings fail fast with a message naming the variable, and production passes check --deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "p" * 20 + "r0d-K3y-with-enough-entropy-" + "q" * 30,
    "GOOGLE_CLIENT_ID": "client",
    "GOOGLE_CLIENT_SECRET": "secret",
    "PORTAL_DOMAIN": "corp.example",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "GATE_FORWARD_AUTH_KEY": "k" * 40,
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PORTAL_", "QUOTA_"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "project.settings", "PORTAL_VAR_DIR": "/tmp/portal-settings-test"})
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_the_deploy_check() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_cookies_are_host_only_and_secure() -> None:
    code = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_NAME, s.CSRF_COOKIE_NAME, s.SESSION_COOKIE_DOMAIN, s.SESSION_COOKIE_SECURE)"
    )
    result = _manage("shell", "--no-imports", "-c", code, env=PRODUCTION_ENV)
    assert result.stdout.split() == ["__Host-sessionid", "__Host-csrftoken", "None", "True"], result.stderr


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"GOOGLE_CLIENT_ID": ""}, "GOOGLE_CLIENT_ID"),
        ({"GATE_FORWARD_AUTH_KEY": ""}, "GATE_FORWARD_AUTH_KEY"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"QUOTA_MEM_LIMIT": "lots"}, "QUOTA_MEM_LIMIT"),
        ({"QUOTA_MEM_GUARANTEE": "200G", "QUOTA_MEM_LIMIT": "100G"}, "QUOTA_MEM_GUARANTEE"),
        ({"WORKSPACE_SSH_PORT_BASE": "twenty"}, "WORKSPACE_SSH_PORT_BASE"),
        ({"SECRET_KEY": "", "SECRET_KEY_FILE": "/nonexistent/secret"}, "SECRET_KEY_FILE"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"GUACAMOLE_JSON_SECRET_KEY": "not-hex-" + "0" * 24}, "GUACAMOLE_JSON_SECRET_KEY"),
        ({"GUACAMOLE_JSON_SECRET_KEY": "4C0B569E4C96DF157EEE1B65DD0E4D"}, "GUACAMOLE_JSON_SECRET_KEY"),
        ({"GUACAMOLE_URL": "remote.corp.example"}, "GUACAMOLE_URL"),
        ({"PORTAL_TRUSTED_PROXIES": "172.30.0.0/24,traefik"}, "PORTAL_TRUSTED_PROXIES"),
        ({"WORKSPACE_DOCKER_RUNTIME": "runc --privileged"}, "WORKSPACE_DOCKER_RUNTIME"),
        ({"WORKSPACE_NETWORK_PREFIX": "Bad Prefix"}, "WORKSPACE_NETWORK_PREFIX"),
        ({"WORKSPACE_SUBNET_POOL": "10.213.0.0/16x"}, "WORKSPACE_SUBNET_POOL"),
        ({"WORKSPACE_SUBNET_PREFIX": "30"}, "WORKSPACE_SUBNET_PREFIX"),
        ({"WORKSPACE_SUBNET_POOL": "10.213.0.0/28", "WORKSPACE_SUBNET_PREFIX": "28"}, "WORKSPACE_SUBNET_PREFIX"),
        ({"MONITORING_DISK_PATHS": "/,srv/data"}, "MONITORING_DISK_PATHS"),
    ],
)
def test_a_bad_variable_stops_startup_naming_it(override: dict[str, str], named: str) -> None:
    result = _manage("check", env={**PRODUCTION_ENV, **override})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr.splitlines()[-1]


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text("from-a-file-" + "z" * 50 + "\n")
    env = {**PRODUCTION_ENV, "SECRET_KEY": "", "SECRET_KEY_FILE": str(secret_file)}
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    result = _manage("shell", "--no-imports", "-c", code, env=env)
    assert result.stdout.strip() == "from-a-file-" + "z" * 50


# `make run` sets DEBUG and no domain: nothing routes <name>.<domain>, so the cards show no web
# links (PORTAL_WEB_ROUTES off) and SSH goes to 127.0.0.1. A domain, or production, routes them.
DEVELOPMENT_ENV = {"DEBUG": "true", "SECRET_KEY": "", "REDIS_URL": "", "DATABASE_URL": "sqlite:///:memory:"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {**DEVELOPMENT_ENV, "LINK_TENSORBOARD": "http://127.0.0.1:6006"},
            "False 127.0.0.1 TensorBoard",
            id="make run",
        ),
        pytest.param({**DEVELOPMENT_ENV, "PORTAL_DOMAIN": "corp.example"}, "True corp.example -", id="debug+domain"),
        pytest.param({**DEVELOPMENT_ENV, "PORTAL_WEB_ROUTES": "true"}, "True 127.0.0.1 -", id="debug+routes"),
        pytest.param(PRODUCTION_ENV, "True corp.example -", id="production"),
    ],
)
def test_web_routes_are_off_by_default_only_under_make_run(env: dict[str, str], expected: str) -> None:
    code = (
        "from django.conf import settings as s;"
        "print(s.PORTAL_WEB_ROUTES, s.SSH_HOST, ','.join(sorted(s.TEAM_LINKS_SET)) or '-')"
    )
    result = _manage("shell", "--no-imports", "-c", code, env=env)
    assert result.stdout.strip() == expected, result.stderr
