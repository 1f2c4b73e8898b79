"""python manage.py doctor: check the configuration and the running system from this process.

Run it where the parts are: in the worker container (docker compose exec worker python manage.py
doctor), which has the Docker socket, the storage root and the restic password file. Exit 1 when
a check failed (with --strict, also when one warned), 0 otherwise, 2 when --via-worker got no
report; --json prints the report for scripts. --via-worker has the local host's worker run them
(from the web container, which lacks those parts) and prints what it found."""

from __future__ import annotations

import json
import secrets
import shutil
import textwrap
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring import doctor
from monitoring.doctor import Report, doctor_run
from monitoring.doctor_checks import Status
from portal.models import Host

# The worker runs every check, the slowest allowed 120 s (restic on a slow remote).
WORKER_WAIT = 180
_MARK = {Status.OK: "ok", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "skip"}


class Command(BaseCommand):
    help = "Check the configuration and every part the portal depends on; exit 1 when something is wrong."
    # Django's checks are among the doctor's own (a check error must not keep the doctor from running).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--strict", action="store_true", help="exit 1 on a warning too")
        parser.add_argument(
            "--timeout", type=float, default=None, metavar="SECONDS", help="at most this long for each check"
        )
        parser.add_argument(
            "--via-worker",
            action="store_true",
            help="have the local host's worker run the checks (from a container without the host's parts)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["timeout"] is not None and options["timeout"] <= 0:
            raise CommandError("--timeout must be a positive number of seconds")
        report = self._via_worker() if options["via_worker"] else doctor_run(limit=options["timeout"])
        if options["json"]:
            self.stdout.write(json.dumps(report.to_json(), indent=2))
        else:
            self.stdout.write(table(report, width=shutil.get_terminal_size((120, 40)).columns))
        code = report.exit_code(strict=options["strict"])
        if code:
            counts = report.counts()
            raise CommandError(f"{counts['fail']} check(s) failed, {counts['warn']} warned", returncode=code)

    def _via_worker(self) -> Report:
        token = secrets.token_hex(8)
        problem = doctor.doctor_request(token=token)
        if problem:
            raise CommandError(problem, returncode=2)
        report = doctor.report_wait(token=token, timeout=WORKER_WAIT)
        if report is None:
            raise CommandError(
                f"The worker of queue {Host.local().queue} sent no report within {WORKER_WAIT} s: is it running? "
                "(docker compose ps worker; docker compose logs worker)",
                returncode=2,
            )
        return report


def table(report: Report, *, width: int = 120) -> str:
    """One line per check (status, what, what was found) and an indented fix line under each
    warning and failure; a summary line last."""
    names = max((len(check.name) for check in report.checks), default=10)
    detail_width = max(width - names - 8, 40)
    lines = []
    for check in report.checks:
        detail = textwrap.wrap(check.detail, detail_width) or [""]
        lines.append(f"{_MARK[check.status]:<5} {check.name:<{names}}  {detail[0]}")
        lines += [f"{'':<5} {'':<{names}}  {more}" for more in detail[1:]]
        if check.fix and check.status in (Status.FAIL, Status.WARN):
            fix = textwrap.wrap(check.fix, max(width - 12, 40))
            lines += [f"{'fix:' if number == 0 else '':>10} {part}" for number, part in enumerate(fix)]
    counts = report.counts()
    lines.append(
        f"\n{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s), {counts['skip']} skipped "
        f"on {report.where} in {report.seconds:.1f} s"
    )
    return "\n".join(lines)
