"""The shipped Prometheus and Grafana files, against Debian's real Prometheus: promtool checks the
config and the rules and runs the rules' unit tests, and a Prometheus on loopback scrapes the
live server's /metrics, with the token and without it. Every metric the dashboard and the rules
name must then exist there, except those of node-exporter and cAdvisor, which can't run here:
they are checked against NODE_AND_CADVISOR below, names those exporters do export."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from monitoring.metrics import metrics_text
from tests.monitoring.metrics_world import world_make

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "portal.json"
# scripts/test-setup.sh unpacks Debian's prometheus package here (no daemon is left running).
BIN_DIR = Path("/usr/local/lib/portal-test/bin")
TOKEN = "metrics-test-token-" + "m" * 32
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

# Metrics of node-exporter (1.5, Debian 12's) and cAdvisor the shipped files may name, and
# Prometheus' own "up". Neither exporter runs in the tests, so these are taken on trust.
NODE_AND_CADVISOR = {
    "up",
    "node_cpu_seconds_total",
    "node_memory_MemTotal_bytes",
    "node_memory_MemAvailable_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_pressure_memory_waiting_seconds_total",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def _binary(name: str) -> str:
    found = BIN_DIR / name if (BIN_DIR / name).exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (scripts/test-setup.sh unpacks Debian's prometheus package)")
    return str(found)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, keywords or labels)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        function = expr[match.end() :].lstrip().startswith("(")
        if not function and match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def rule_exprs() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules" / "portal.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_metric_names_are_read_from_an_expression_without_functions_keywords_or_labels() -> None:
    expr = 'sum by (state) (rate(a_total{x="b(c)"}[5m])) > on (tier) group_left b_seconds or time() - c > 1e9'
    assert metric_names(expr) == {"a_total", "b_seconds", "c"}


def test_promtool_passes_the_shipped_config_rules_and_the_rules_unit_tests(tmp_path: Path) -> None:
    promtool = _binary("promtool")
    # The config as shipped, with its secret and rule paths pointed at files that exist here.
    (tmp_path / "metrics-token").write_text(TOKEN)
    shutil.copytree(PROMETHEUS_DIR / "rules", tmp_path / "rules")
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    assert "credentials_file: /run/secrets/metrics-token" in config
    assert "/etc/prometheus/rules/*.yml" in config
    config = config.replace("/run/secrets/metrics-token", str(tmp_path / "metrics-token"))
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/rules", str(tmp_path / "rules")))
    checks = [
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        [promtool, "check", "rules", str(PROMETHEUS_DIR / "rules" / "portal.yml")],
        [promtool, "test", "rules", str(PROMETHEUS_DIR / "tests" / "portal_test.yml")],
    ]
    for argv in checks:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{' '.join(argv[1:3])}: {done.stdout}{done.stderr}"
    assert "SUCCESS: 1 rule files found" in subprocess.run(checks[0], capture_output=True, text=True, check=True).stdout


def test_promtool_finds_nothing_to_lint_in_the_exposition(db: None) -> None:
    world_make(NOW)  # every family with series in it
    exposition = metrics_text(now=NOW)
    done = subprocess.run(
        [_binary("promtool"), "check", "metrics"], input=exposition, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    assert exposition.count(b"# TYPE portal_") >= 30


def test_the_grafana_files_name_the_prometheus_data_source_the_dashboard_uses() -> None:
    datasources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/portal.yml").read_text())
    (source,) = datasources["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/portal.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {target["datasource"]["uid"] for panel in panels for target in panel.get("targets", [])}
    assert used == {source["uid"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path, live_server: LiveServer) -> Iterator[str]:
    """Debian's prometheus on a free loopback port, scraping the live server every second twice:
    job "portal" with the token (from a file, as in the shipped config), "portal-no-token" without."""
    binary = _binary("prometheus")
    (tmp_path / "token").write_text(TOKEN + "\n")
    target = live_server.url.removeprefix("http://")
    jobs = [
        {"job_name": "portal", "authorization": {"credentials_file": str(tmp_path / "token")}},
        {"job_name": "portal-no-token"},
    ]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{**job, "static_configs": [{"targets": [target]}]} for job in jobs],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    argv = [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
    with (tmp_path / "prometheus.log").open("w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _until_ready(base, process, tmp_path / "prometheus.log")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def _until_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until Prometheus says it is ready: it answers 503 while its storage opens (seconds on a
    busy machine; seen in CI), and the queries would read that as no data."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
        try:
            if requests.get(f"{base}/-/ready", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass  # not listening yet
        time.sleep(0.2)
    raise AssertionError(f"Prometheus was not ready in 60 s: {log.read_text()[-2000:]}")


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
    return list(answer["data"]["result"])


def _until_both_jobs_scraped(base: str) -> dict[str, float]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            up = {row["metric"]["job"]: float(row["value"][1]) for row in _query(base, "up")}
        except requests.ConnectionError:
            up = {}  # not listening yet
        if len(up) == 2:
            return up
        time.sleep(0.3)
    raise AssertionError("Prometheus scraped neither job in 30 s")


@pytest.mark.django_db(transaction=True)
def test_a_real_prometheus_scrapes_with_the_token_and_is_refused_without(prometheus: str) -> None:
    world_make(timezone.now())
    up = _until_both_jobs_scraped(prometheus)
    assert up == {"portal": 1.0, "portal-no-token": 0.0}
    targets = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    refused = next(target for target in targets if target["labels"]["job"] == "portal-no-token")
    assert "401" in refused["lastError"], refused
    (running,) = _query(prometheus, 'portal_workspaces{job="portal", host="local", state="running"}')
    assert float(running["value"][1]) == 1
    (alice,) = _query(prometheus, 'portal_storage_used_bytes{member="alice"}')
    assert float(alice["value"][1]) == 5 * 1024**3
    # Every metric the dashboard's panels and the alerting rules read exists (or is an exporter's).
    exported = set(requests.get(f"{prometheus}/api/v1/label/__name__/values", timeout=5).json()["data"])
    named = set().union(*(metric_names(expr) for expr in dashboard_exprs() + rule_exprs()))
    missing = named - exported - NODE_AND_CADVISOR
    assert not missing, f"named in deploy/ but not exported: {sorted(missing)}"
    assert len({name for name in named if name.startswith("portal_")}) >= 20
    # Each panel's query is valid PromQL, and one that reads only the portal's metrics has data.
    for expr in dashboard_exprs():
        answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert answer["status"] == "success", (expr, answer)
        if all(name.startswith("portal_") for name in metric_names(expr)):
            assert answer["data"]["result"], f"no data for the panel query {expr!r}"
