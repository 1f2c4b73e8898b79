"""The doctor: every part the portal depends on, checked where it runs (`python manage.py doctor`
in the worker container, and the dashboard's Health checks card, whose checks a task runs on the
local host's worker and leaves in the cache; the request only reads that report).

Each probe (monitoring/doctor_checks.py, doctor_config.py, doctor_remote.py) runs in a daemon
thread of its own with a time limit, so one hung part (a dockerd that takes the connection and
never answers, a stuck NFS) costs its limit and a failed row, never the whole command. A thread
that is still waiting is left behind: it ends with the process."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from celery import current_app
from django.core.cache import cache
from django.db import connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from monitoring import doctor_checks as checks
from monitoring import doctor_config, doctor_remote
from monitoring.doctor_checks import Check, Probe, Status
from portal.models import Host

logger = logging.getLogger(__name__)

REPORT_KEY = "monitoring.doctor.report"
REQUESTED_KEY = "monitoring.doctor.requested"
TASK = "monitoring.tasks.doctor_task"
# A report older than this is shown as old: beat runs the checks every hour (CELERY_BEAT_SCHEDULE).
STALE_SECONDS = 2 * 3600
_ORDER = {Status.FAIL: 0, Status.WARN: 1, Status.OK: 2, Status.SKIP: 3}


@dataclass(frozen=True)
class Report:
    """Every check's answer, when and where (the machine) it was found, and how long it took."""

    at: datetime
    where: str
    seconds: float
    checks: tuple[Check, ...]
    token: str = ""  # the request it answers (doctor --via-worker waits for its own)

    def with_status(self, *statuses: Status) -> list[Check]:
        return [check for check in self.checks if check.status in statuses]

    def exit_code(self, *, strict: bool = False) -> int:
        """1 when a check failed (or, with ``strict``, warned); 0 otherwise."""
        bad = (Status.FAIL, Status.WARN) if strict else (Status.FAIL,)
        return 1 if self.with_status(*bad) else 0

    def counts(self) -> dict[str, int]:
        return {status.value: len(self.with_status(status)) for status in Status}

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "where": self.where,
            "seconds": round(self.seconds, 2),
            "token": self.token,
            "ok": not self.with_status(Status.FAIL),
            "counts": self.counts(),
            "checks": [{**asdict(check), "status": check.status.value} for check in self.checks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        at = parse_datetime(str(data["at"]))
        if at is None:
            raise ValueError(f"{data['at']!r} is not a time")
        rows = tuple(Check(**{**row, "status": Status(row["status"])}) for row in data["checks"])
        where, seconds, token = str(data["where"]), float(data["seconds"]), str(data.get("token", ""))
        return cls(at=at, where=where, seconds=seconds, checks=rows, token=token)


def doctor_run(*, limit: float | None = None) -> Report:
    """Run every check; ``limit`` caps each probe's time (seconds). Reads the database in this
    thread (what the probes need), then runs the probes in parallel."""
    started = time.monotonic()
    rows: list[Check] = doctor_config.settings_checks()
    first = _run_probes([checks.database_probe(), checks.cache_probe(), checks.broker_probe()], limit=limit)
    rows += first
    probes: list[Probe] = [doctor_config.django_probe(), checks.storage_probe(), checks.disk_probe()]
    if any(row.key == "database" and row.status == Status.OK for row in first):
        Host.local()  # the server the portal runs on is always checked (recreated if deleted, as everywhere)
        rows += checks.heartbeat_checks()
        probes += checks.docker_probes()
        for found, more in (doctor_remote.restic_probes(), doctor_remote.rclone_probes()):
            rows += found
            probes += more
    else:
        rows += [Check(key, name, Status.SKIP, "needs the database") for key, name in _NEEDS_DATABASE]
    for maybe in (doctor_remote.slack_probe(), doctor_remote.guacamole_probe()):
        if isinstance(maybe, Probe):
            probes.append(maybe)
        else:
            rows.append(maybe)
    rows += _run_probes(probes, limit=limit)
    ordered = sorted(rows, key=lambda row: _ORDER[row.status])  # stable: failures first, in check order
    return Report(timezone.now(), socket.gethostname(), time.monotonic() - started, tuple(ordered))


_NEEDS_DATABASE = (
    ("worker", "Workers"),
    ("beat", "Beat (the scheduler)"),
    ("docker", "Docker engines"),
    ("restic", "Offsite repository (restic)"),
    ("rclone", "rclone remotes"),
)


def _run_probes(probes: Iterable[Probe], *, limit: float | None) -> list[Check]:
    started = time.monotonic()
    running = []
    for probe in probes:
        box: list[list[Check]] = []
        thread = threading.Thread(target=_run_one, args=(probe, box), name=f"doctor-{probe.key}", daemon=True)
        thread.start()
        running.append((probe, thread, box))
    rows: list[Check] = []
    for probe, thread, box in running:
        allowed = min(probe.timeout, limit) if limit else probe.timeout
        thread.join(max(0.0, started + allowed - time.monotonic()))
        rows += box[0] if box else [_hung(probe, allowed)]
    return rows


def _run_one(probe: Probe, box: list[list[Check]]) -> None:
    try:
        box.append(probe.run())
    except Exception as exc:  # a check's own bug or an error it did not expect: a failed row, not a crash
        box.append(
            [Check(probe.key, probe.name, Status.FAIL, f"{type(exc).__name__}: {str(exc)[:300]}", probe.hung_fix)]
        )
    finally:
        connections.close_all()  # this thread's own connections


def _hung(probe: Probe, seconds: float) -> Check:
    return Check(probe.key, probe.name, Status.FAIL, f"no answer within {seconds:g} s", probe.hung_fix)


# --- the dashboard's report ---------------------------------------------------------------------


def report_store(report: Report) -> None:
    """Keep the report for the dashboard (no expiry: an old one is shown with its age)."""
    cache.set(REPORT_KEY, report.to_json(), timeout=None)


def report_last() -> tuple[Report | None, datetime | None]:
    """The last stored report, and when someone last asked for a run (one cache round trip)."""
    found = cache.get_many([REPORT_KEY, REQUESTED_KEY])
    data = found.get(REPORT_KEY)
    try:
        report = Report.from_json(data) if isinstance(data, dict) else None
    except (KeyError, TypeError, ValueError):  # a report of an older release: shown as none
        report = None
    requested = found.get(REQUESTED_KEY)
    return report, parse_datetime(requested) if isinstance(requested, str) else None


def doctor_request(*, token: str = "") -> str:
    """Send the checks to the local host's worker (by name; the web process never imports the
    tasks); the problem in words, or "" once the broker has the task. Its report carries
    ``token``."""
    try:
        current_app.send_task(TASK, kwargs={"token": token}, queue=Host.local().queue, expires=600, retry=False)
    except Exception as exc:  # kombu's OperationalError, or whatever the transport raises
        return (
            f"The job queue is not answering ({type(exc).__name__}), so the checks cannot be sent to the worker. "
            "Run `docker compose exec worker python manage.py doctor` on the server instead."
        )
    try:
        cache.set(REQUESTED_KEY, timezone.now().isoformat(), timeout=STALE_SECONDS)
    except Exception:  # the cache is down but the broker took the task: the card just won't say "asked"
        logger.warning("could not note the doctor's request in the cache", exc_info=True)
    return ""


def report_wait(*, token: str, timeout: float) -> Report | None:
    """The report the worker makes for the request ``token``, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report, _asked = report_last()
        if report is not None and report.token == token:
            return report
        time.sleep(0.5)
    return None
