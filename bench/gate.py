"""Forward-auth gate vs a bare Django view with no middleware, both through Django's WSGI
handler in this process (CPU time per request; throughput ratio = bare / gate)."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings


def _environ(path: str, query: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "portal",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "portal",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "REMOTE_ADDR": "172.30.0.2",
    }
    env.update(headers or {})
    return env


def _time_per_request(handler: WSGIHandler, make_env: Callable[[], dict[str, Any]], n: int) -> tuple[float, float]:
    def start_response(status: str, headers: list[Any]) -> None:
        start_response.status = status  # type: ignore[attr-defined]

    samples = []
    for _ in range(n):
        env = make_env()
        t0 = time.perf_counter()
        for _chunk in handler(env, start_response):
            pass
        samples.append(time.perf_counter() - t0)
    cpu0 = time.process_time()
    for _ in range(n):
        for _chunk in handler(make_env(), start_response):
            pass
    cpu = (time.process_time() - cpu0) / n
    samples.sort()
    return cpu, samples[int(len(samples) * 0.99) - 1]


def run(n: int = 5000) -> list[dict[str, Any]]:
    from django.conf import settings

    from portal.models import Host, User
    from workspaces import gate
    from workspaces.models import Workspace, service_hosts

    user, _ = User.objects.get_or_create(username="benchgate", defaults={"email": "benchgate@bench.example"})
    workspace, _ = Workspace.objects.get_or_create(
        owner=user, name="", defaults={"host": Host.local(), "ssh_port": 2999, "slug": "benchgate"}
    )
    host = next(iter(service_hosts(workspace.slug, settings.PORTAL_DOMAIN)))
    cookie = gate.signing.dumps({"u": user.pk, "h": host, "v": user.session_version}, salt=gate.COOKIE_SALT)
    headers = {"HTTP_X_FORWARDED_HOST": host, "HTTP_COOKIE": f"{gate.cookie_name()}={cookie}"}
    key = f"k={settings.GATE_FORWARD_AUTH_KEY}"

    with override_settings(MIDDLEWARE=[], ROOT_URLCONF="bench.urls"):
        bare_handler = WSGIHandler()
    gate_handler = WSGIHandler()
    gate.index()
    results = []
    for _round in range(3):
        with override_settings(ROOT_URLCONF="bench.urls"):
            bare_cpu, bare_p99 = _time_per_request(bare_handler, lambda: _environ("/bare"), n)
        gate_cpu, gate_p99 = _time_per_request(gate_handler, lambda: _environ(gate.AUTH_PATH, key, headers), n)
        results.append((bare_cpu, gate_cpu, gate_p99, bare_p99))
    bare_cpu = statistics.median(r[0] for r in results)
    gate_cpu = statistics.median(r[1] for r in results)
    gate_p99 = statistics.median(r[2] for r in results)
    return [
        {
            "name": "gate throughput vs bare view",
            "value": round(bare_cpu / gate_cpu, 3),
            "unit": "x",
            "baseline": f"bare view {bare_cpu * 1e6:.1f} us/req",
            "target": ">= 0.85",
        },
        {
            "name": "gate CPU per decision",
            "value": round(gate_cpu * 1e6, 1),
            "unit": "us",
            "baseline": f"bare view {bare_cpu * 1e6:.1f} us",
            "target": "<= 60",
        },
        {
            "name": "gate p99 latency (in-process)",
            "value": round(gate_p99 * 1e3, 3),
            "unit": "ms",
            "baseline": "",
            "target": "<= 5",
        },
    ]
