"""Idle memory of the portal's processes, as compose runs them and as `make run` runs them.

Compose: the web, worker and beat commands are read from the Dockerfile's CMD and
docker-compose.yml (so this measures what ships, not a copy), and run here against PostgreSQL
and Redis: a database of their own (migrated by compose's migrate command), a Redis database of
their own (REDIS_DB), production settings (DEBUG off). `make run`: scripts/run-dev.sh itself,
on SQLite and the filesystem broker in a temporary folder. Each set idles IDLE_SECONDS after
the web answers; then every process of each tree is read from /proc: RSS (VmRSS, which counts
pages shared between a parent and its forked children once per process) and PSS (from
smaps_rollup, shared pages split between their sharers: the honest sum)."""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostops import run

ROOT = Path(__file__).resolve().parent.parent
IDLE_SECONDS = int(os.environ.get("FOOTPRINT_IDLE_SECONDS", "60"))
TARGET_MIB = 340  # twice JupyterHub's hub and proxy (169 MiB), BENCHMARKS.md
REDIS_DB = 2  # a Redis database no test run uses (settings_test picks 4-15)
DATABASE = "portal_footprint_bench"
MIB = 1024 * 1024


@dataclass
class Usage:
    rss: int = 0
    pss: int = 0
    processes: int = 0

    def add(self, other: Usage) -> None:
        self.rss, self.pss, self.processes = (
            self.rss + other.rss,
            self.pss + other.pss,
            self.processes + other.processes,
        )


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def usage(pids: list[int]) -> Usage:
    total = Usage()
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue  # it ended meanwhile
        rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        pss = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
        total.add(Usage(int(rss.group(1)) * 1024 if rss else 0, int(pss.group(1)) * 1024 if pss else 0, 1))
    return total


def _command(text: str, anchor: str) -> list[str]:
    """The JSON list following ``anchor`` in ``text`` (a compose command or a Dockerfile CMD)."""
    start = text.index(anchor) + len(anchor)
    start = text.index("[", start)
    end = text.index("]", start)
    return list(json.loads(text[start : end + 1].replace("\\\n", " ")))


def compose_commands() -> dict[str, list[str]]:
    compose = (ROOT / "docker-compose.yml").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    return {
        "web (gunicorn)": _command(dockerfile, "\nCMD "),
        "worker (celery)": _command(compose[compose.index("\n  worker:") :], "command:"),
        "beat (celery)": _command(compose[compose.index("\n  beat:") :], "command:"),
        "migrate": _command(compose[compose.index("\n  migrate:") :], "command:"),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (a local http URL)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.5)


@contextmanager
def _started(commands: dict[str, list[str]], env: dict[str, str], log: Path) -> Iterator[dict[str, int]]:
    services: list[run.Service] = []
    try:
        with log.open("ab") as out:
            for argv in commands.values():
                services.append(run.start_service(argv, env=env, cwd=str(ROOT), output=out))
        yield {name: service.pid for name, service in zip(commands, services, strict=True)}
    finally:
        for service in services:
            service.stop(grace=20)


def _bin(argv: list[str]) -> list[str]:
    """The virtualenv's copy of the program (the image has them on PATH)."""
    local = ROOT / ".venv" / "bin" / argv[0]
    return [str(local) if local.exists() else argv[0], *argv[1:]]


def _compose_env(folder: Path, database_url: str) -> dict[str, str]:
    return {
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(folder),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DEBUG": "false",
        "SECRET_KEY": "footprint-bench-" + "x" * 40,
        "GOOGLE_CLIENT_ID": "footprint",
        "GOOGLE_CLIENT_SECRET": "footprint",
        "GATE_FORWARD_AUTH_KEY": "footprint",
        "PORTAL_DOMAIN": "footprint.example",
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "PORTAL_VAR_DIR": str(folder / "var"),
        "STORAGE_ROOT": str(folder / "srv"),
        "MONITORING_DISK_PATHS": "/",
        "GPU_INVENTORY": "0:RTX 5080:16G",
        "LOG_LEVEL": "WARNING",
    }


def _database_url(settings_dict: dict[str, Any]) -> str:
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host, port = settings_dict.get("HOST") or "127.0.0.1", settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{DATABASE}"


def _ensure_database() -> None:
    """A fresh database each run, as compose's first start has: one kept from an older checkout
    may hold migrations this one doesn't have, and migrate would refuse it."""
    from django.db import connection

    with connection._nodb_cursor() as cursor:  # the server's maintenance database
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')


def measure_compose(commands: dict[str, list[str]] | None = None) -> dict[str, Usage]:
    """The compose set's idle usage (``commands``: others than compose's, to compare choices)."""
    from django.db import connection

    _ensure_database()
    commands = dict(commands or compose_commands())
    port = _free_port()
    web = _bin(commands.pop("web (gunicorn)"))
    web[web.index("--bind") + 1] = f"127.0.0.1:{port}"
    commands = {"web (gunicorn)": web, **{name: _bin(argv) for name, argv in commands.items()}}
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        folder = Path(tmp)
        (folder / "srv").mkdir()
        env = _compose_env(folder, _database_url(connection.settings_dict))
        with (folder / "compose.log").open("ab") as out:
            migrate = run.start_service(commands.pop("migrate"), env=env, cwd=str(ROOT), output=out)
            if migrate.wait(timeout=600) != 0:
                raise RuntimeError(f"compose's migrate failed: {(folder / 'compose.log').read_text()[-2000:]}")
        with _started(commands, env, folder / "compose.log") as pids:
            _wait_for(f"http://127.0.0.1:{port}/healthz")
            time.sleep(IDLE_SECONDS)
            return {name: usage(tree(pid)) for name, pid in pids.items()}


def measure_run_dev() -> dict[str, Usage]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="footprint-dev-") as tmp:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tmp,
            "PORTAL_VAR_DIR": tmp,
            "PORTAL_DEV_PORT": str(port),
            "PORTAL_DEV_BUILD_IMAGE": "0",
            "LOG_LEVEL": "WARNING",
        }
        with _started({"run-dev.sh": [str(ROOT / "scripts" / "run-dev.sh")]}, env, Path(tmp) / "run.log") as pids:
            _wait_for(f"http://127.0.0.1:{port}/healthz", timeout=180)
            time.sleep(IDLE_SECONDS)
            script = pids["run-dev.sh"]
            parts: dict[str, Usage] = {}
            for child in _children(script):  # the script's own bash is not the portal
                name = _name(child)
                parts.setdefault(name, Usage()).add(usage(tree(child)))
            return parts


def _name(pid: int) -> str:
    words = [word.decode() for word in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if word]
    if any(Path(word).name == "celery" for word in words):
        return "worker (celery)" if "worker" in words else "beat (celery)"
    if "runserver" in words:
        return "web (runserver)"
    return " ".join(Path(word).name for word in words[:3])


def _rows(kind: str, parts: dict[str, Usage], target: str) -> list[dict[str, Any]]:
    total = Usage()
    for part in parts.values():
        total.add(part)
    detail = "; ".join(
        f"{name}: {part.processes} proc, RSS {part.rss / MIB:.0f} / PSS {part.pss / MIB:.0f} MiB"
        for name, part in parts.items()
    )
    return [
        {
            "name": f"idle memory, {kind} (PSS)",
            "value": round(total.pss / MIB),
            "unit": "MiB",
            "target": target,
            "baseline": f"after {IDLE_SECONDS}s idle; {detail}",
        },
        {
            "name": f"idle memory, {kind} (RSS)",
            "value": round(total.rss / MIB),
            "unit": "MiB",
            "target": target,
            "baseline": f"{total.processes} processes; RSS counts pages shared between them once in each",
        },
    ]


def benchmarks() -> list[dict[str, Any]]:
    rows = _rows("compose", measure_compose(), f"<= {TARGET_MIB} MiB")
    rows += _rows("make run", measure_run_dev(), "(reported)")
    return rows


if __name__ == "__main__":  # python -m bench.footprint: this benchmark alone, written like make bench's
    from datetime import UTC, datetime

    from bench.__main__ import _print, _setup

    _setup()
    found = benchmarks()
    _print(found)
    out = Path(__file__).parent / "results" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-footprint.json"
    out.write_text(json.dumps({"database": DATABASE, "rows": found}, indent=2))
    print(f"\nwritten to {out}")
