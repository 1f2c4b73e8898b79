"""python manage.py doctor: check the configuration and the running system from this process.

Run it where the parts are: in the worker container (docker compose exec worker python manage.py
doctor), which has the Docker socket, the storage root and the restic password file. Exit 1 when
a check failed (with --strict, also when one warned), 0 otherwise; --json prints the report for
scripts."""

from __future__ import annotations

import json
import shutil
import textwrap
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring.doctor import Report, doctor_run
from monitoring.doctor_checks import Status

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

    def handle(self, *args: Any, **options: Any) -> None:
        if options["timeout"] is not None and options["timeout"] <= 0:
            raise CommandError("--timeout must be a positive number of seconds")
        report = doctor_run(limit=options["timeout"])
        if options["json"]:
            self.stdout.write(json.dumps(report.to_json(), indent=2))
        else:
            self.stdout.write(table(report, width=shutil.get_terminal_size((120, 40)).columns))
        code = report.exit_code(strict=options["strict"])
        if code:
            counts = report.counts()
            raise CommandError(f"{counts['fail']} check(s) failed, {counts['warn']} warned", returncode=code)


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
