"""The gate behind a real proxy: caddy's forward_auth asks the portal (gunicorn, production's
worker settings) about every request, against caddy answering a static 204 itself, both
loaded by wrk in the same run. The authorised request ends in caddy's own 204 too, so the
difference is the forward-auth round trip: caddy -> gunicorn -> the gate -> caddy."""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hostops import run as hostrun

HOST = "jupyter-benchproxy.corp.example"
CADDYFILE = """{
	admin off
	auto_https off
}
http://static.bench:{$BENCH_PORT} {
	bind 127.0.0.1
	respond 204
}
http://*.corp.example:{$BENCH_PORT} {
	bind 127.0.0.1
	route {
		request_header -X-Portal-User
		forward_auth {$BENCH_PORTAL} {
			uri /_auth/traefik?k={$BENCH_KEY}
			copy_headers X-Portal-User
		}
		respond 204
	}
}
"""
# The portal image's CMD (Dockerfile): gthread workers, 3 x 4.
GUNICORN = ["--workers", "3", "--threads", "4", "--worker-class", "gthread", "--access-logfile", "-"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int, service: hostrun.Service, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (status := service.exit_status()) is not None:
            raise RuntimeError(f"{what} exited with status {status}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


def _wrk(port: int, host: str, cookie: str = "", seconds: int = 5, connections: int = 16) -> tuple[float, float]:
    """Requests per second and p99 latency in ms."""
    threads = min(2, connections)
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Host: {host}:{port}"]
    if cookie:
        args += ["-H", f"Cookie: {cookie}"]
    out = hostrun.run([*args, f"http://127.0.0.1:{port}/"], timeout=seconds + 30).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw refusals from {host}: {out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run(rounds: int = 2) -> list[dict[str, Any]]:
    from django.conf import settings
    from django.db import connection

    from portal.models import Host, User
    from workspaces import gate
    from workspaces.models import Workspace

    caddy, wrk = shutil.which("caddy"), shutil.which("wrk")
    if caddy is None or wrk is None:
        print("proxy bench skipped: needs caddy and wrk (scripts/test-setup.sh installs caddy)")
        return []
    user, _ = User.objects.get_or_create(username="benchproxy", defaults={"email": "benchproxy@bench.example"})
    Workspace.objects.get_or_create(
        owner=user, name="", defaults={"host": Host.local(), "ssh_port": 2998, "slug": "benchproxy"}
    )
    value = gate.signing.dumps({"u": user.pk, "h": HOST, "v": user.session_version}, salt=gate.COOKIE_SALT)
    cookie = f"{gate.cookie_name()}={value}"

    db = connection.settings_dict
    portal_port, proxy_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        caddyfile = Path(tmp) / "Caddyfile"
        caddyfile.write_text(CADDYFILE)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings_test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "GATE_FORWARD_AUTH_KEY": settings.GATE_FORWARD_AUTH_KEY,
            "HOME": tmp,
            "XDG_CONFIG_HOME": tmp,
            "XDG_DATA_HOME": tmp,
            "BENCH_PORT": str(proxy_port),
            "BENCH_PORTAL": f"127.0.0.1:{portal_port}",
            "BENCH_KEY": settings.GATE_FORWARD_AUTH_KEY,
        }
        gunicorn_bin = str(Path(sys.executable).parent / "gunicorn")
        portal = hostrun.start_service(
            [gunicorn_bin, "project.wsgi:application", "--bind", f"127.0.0.1:{portal_port}", *GUNICORN], env=env
        )
        proxy = hostrun.start_service([caddy, "run", "--adapter", "caddyfile", "--config", str(caddyfile)], env=env)
        try:
            _wait(portal_port, portal, "gunicorn")
            _wait(proxy_port, proxy, "caddy")
            _wrk(proxy_port, HOST, cookie, seconds=1)  # warm-up: workers import, the gate builds its index
            # Throughput under load (16 connections, more than gunicorn's 12 threads); latency
            # with one client, where p99 is the gate's own tail rather than queueing.
            static, gated, static_one, gated_one = [], [], [], []
            for _round in range(rounds):
                static.append(_wrk(proxy_port, "static.bench"))
                gated.append(_wrk(proxy_port, HOST, cookie))
                static_one.append(_wrk(proxy_port, "static.bench", seconds=2, connections=1))
                gated_one.append(_wrk(proxy_port, HOST, cookie, seconds=2, connections=1))
        finally:
            for service in (proxy, portal):
                service.stop(grace=15)
    static_rps = statistics.median(r[0] for r in static)
    gated_rps = statistics.median(r[0] for r in gated)
    static_p99 = statistics.median(r[1] for r in static_one)
    gated_p99 = statistics.median(r[1] for r in gated_one)
    loaded_p99 = statistics.median(r[1] for r in gated)
    return [
        {
            "name": "proxy: gated request vs caddy's own 204",
            "value": round(gated_rps / static_rps, 3),
            "unit": "x",
            "baseline": f"caddy 204 {static_rps:.0f} req/s; gated {gated_rps:.0f} req/s",
            "target": "report",
        },
        {
            "name": "proxy: gated request p99 (one client)",
            "value": round(gated_p99, 2),
            "unit": "ms",
            "baseline": f"caddy 204 p99 {static_p99:.2f} ms; gated p99 at 16 conns {loaded_p99:.1f} ms",
            "target": "<= 5",
        },
    ]
