"""docker-compose.yml as Docker Compose v2 reads it (`docker-compose config`, the binary from
scripts/test-setup.sh), and the promises it makes about the production stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from workspaces.deploy import INFRA_BACKENDS

REPO = Path(__file__).resolve().parent.parent
COMPOSE_BIN = os.environ.get("COMPOSE_BINARY", "/usr/local/lib/portal-test/bin/docker-compose")
TEAM_SERVICES = ["grafana", "prometheus", "netdata", "dozzle", "portainer", "tensorboard", "guacamole"]
MONITORING = ["grafana", "prometheus", "netdata", "dozzle", "tensorboard", "node-exporter", "cadvisor"]
# Images with no shell or HTTP client to run a check with (docker-compose.yml says so).
NO_HEALTHCHECK = {"portainer", "cloudflared", "guacd", "guacamole", "migrate", "deploy-config", "worker", "beat"}


def _compose(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(COMPOSE_BIN).exists():
        pytest.skip(f"no Docker Compose v2 at {COMPOSE_BIN} (scripts/test-setup.sh installs it)")
    argv = [COMPOSE_BIN, "-f", str(REPO / "docker-compose.yml"), "--project-directory", str(project), *args]
    env = {"PATH": os.environ["PATH"], "HOME": str(project)}  # only .env speaks, not this shell
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file resolved with .env.example's values and the tunnel profile on."""
    project = tmp_path_factory.mktemp("compose")
    shutil.copy(REPO / ".env.example", project / ".env")
    done = _compose(project, "--profile", "tunnel", "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_compose_file_is_valid_compose_v2(stack: dict[str, Any], tmp_path: Path) -> None:
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    done = _compose(tmp_path, "config", "-q")
    assert done.returncode == 0, done.stderr
    assert "cloudflared" not in _compose(tmp_path, "config", "--services").stdout  # only with --profile tunnel


def test_an_unset_domain_stops_compose_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SECRET_KEY=x\n")
    done = _compose(tmp_path, "config", "-q")
    assert done.returncode != 0
    assert "PORTAL_DOMAIN is required" in done.stderr


def test_every_team_service_of_the_seed_is_there(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert {*TEAM_SERVICES, "traefik", "cloudflared", "deploy-config"} <= set(services)


def test_every_image_is_pinned_by_version(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        image = service["image"]
        if image == "gpu-portal:latest":  # built here (build: .)
            assert "build" in service or name == "deploy-config", name
            continue
        assert re.fullmatch(r"[a-z0-9./_-]+:v?\d+(\.\d+)+[a-z0-9.+-]*", image), f"{name}: {image} is not pinned"


def test_every_long_running_service_restarts_and_is_health_checked(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        if name in {"migrate", "deploy-config"}:
            assert service["restart"] == "no", name
            continue
        assert service["restart"] == "unless-stopped", name
        if name not in NO_HEALTHCHECK:
            assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_the_monitoring_services_have_memory_and_cpu_limits(stack: dict[str, Any]) -> None:
    for name in MONITORING:
        service = stack["services"][name]
        assert int(service["mem_limit"]) <= 2 * 1024**3, name
        assert float(service["cpus"]) <= 1.0, name


def test_state_lives_in_named_volumes(stack: dict[str, Any]) -> None:
    expected = {"grafana": "/var/lib/grafana", "prometheus": "/prometheus", "portainer": "/data"}
    for name, target in expected.items():
        mounts = {m["target"]: m for m in stack["services"][name]["volumes"]}
        assert mounts[target]["type"] == "volume", name
        assert mounts[target]["source"] in stack["volumes"]


def test_only_the_services_that_must_drive_docker_hold_the_socket_and_read_only_where_they_can(
    stack: dict[str, Any],
) -> None:
    holders = {}
    for name, service in stack["services"].items():
        for mount in service.get("volumes", []):
            if mount["source"] == "/var/run/docker.sock":
                holders[name] = mount.get("read_only", False)
    # Root-equivalent all: a read-only bind does not make the engine's API read-only.
    assert holders == {
        "worker": False,
        "traefik": True,
        "netdata": True,
        "dozzle": True,
        "portainer": False,  # it manages containers
    }


def test_the_team_services_are_reachable_only_through_traefik(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name in TEAM_SERVICES:
        assert "ports" not in services[name], name
    gated = {name for name, service in services.items() if "gated" in service.get("networks", {})}
    assert gated == {"traefik", "grafana", "prometheus", "netdata", "dozzle", "portainer", "tensorboard"}
    assert services["portal"]["networks"].keys() == {"internal", "edge"}  # the gate's headers can't come from it


def test_every_backend_the_rendered_routes_name_is_a_service_traefik_reaches(stack: dict[str, Any]) -> None:
    services = stack["services"]
    traefik_networks = set(services["traefik"]["networks"])
    for router, backend in INFRA_BACKENDS.values():
        host = re.fullmatch(r"http://([a-z-]+):\d+", backend)
        assert host, backend
        assert host[1] in services, router
        assert traefik_networks & set(services[host[1]]["networks"]), f"Traefik can't reach {host[1]}"


def test_every_target_prometheus_scrapes_is_a_service_on_its_networks(stack: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    services = stack["services"]
    prometheus_networks = set(services["prometheus"]["networks"])
    targets = [
        target for job in config["scrape_configs"] for group in job["static_configs"] for target in group["targets"]
    ]
    assert {"portal:8000", "node-exporter:9100", "cadvisor:8080"} <= set(targets)
    for target in targets:
        name = target.partition(":")[0]
        if name == "localhost":
            continue
        assert name in services, target
        assert prometheus_networks & set(services[name]["networks"]), f"Prometheus can't reach {name}"
    # Nothing but Prometheus needs them: they are not routed and publish no port.
    for name in ("node-exporter", "cadvisor"):
        assert "ports" not in services[name], name
        assert set(services[name]["networks"]) == {"monitoring"}, name


def test_secrets_come_from_files_and_go_only_where_needed(stack: dict[str, Any]) -> None:
    services = stack["services"]
    users = {
        secret: sorted(name for name, s in services.items() if any(x["source"] == secret for x in s.get("secrets", [])))
        for secret in stack["secrets"]
    }
    assert users == {
        "restic-password": ["worker"],
        "metrics-token": ["portal", "prometheus"],
        "cf-dns-api-token": ["traefik"],
        "cloudflared-credentials": ["cloudflared"],
    }
    assert all("file" in secret for secret in stack["secrets"].values())
    assert services["portal"]["environment"]["METRICS_TOKEN_FILE"] == "/run/secrets/metrics-token"


def test_traefik_and_the_tunnel_start_after_their_configs_are_rendered(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name in ["traefik", "cloudflared"]:
        assert services[name]["depends_on"]["deploy-config"]["condition"] == "service_completed_successfully"
    render = services["deploy-config"]
    assert render["command"][:3] == ["python", "manage.py", "render_deploy"]
    assert {m["target"] for m in render["volumes"]} == {"/deploy/traefik", "/deploy/cloudflared"}


def test_grafana_trusts_the_gates_headers_and_has_no_login_of_its_own(stack: dict[str, Any]) -> None:
    env = stack["services"]["grafana"]["environment"]
    assert env["GF_AUTH_PROXY_ENABLED"] == "true"
    assert env["GF_AUTH_PROXY_HEADER_NAME"] == "X-Portal-User"
    assert env["GF_AUTH_PROXY_HEADERS"] == "Role:X-Portal-Role"
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
    assert stack["services"]["dozzle"]["environment"]["DOZZLE_AUTH_HEADER_USER"] == "X-Portal-User"
