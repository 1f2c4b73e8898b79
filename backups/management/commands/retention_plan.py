"""Dry-run a retention policy on a list of snapshot times: what restic's forget would keep, and why.

For admins checking a policy before they set it, and for comparing the planner with restic by
hand; it reads and writes JSON and touches nothing else.
"""

from __future__ import annotations

import json
import sys
from argparse import RawDescriptionHelpFormatter
from datetime import datetime
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backups.retention import COUNT_RULES, WITHIN_RULES, Policy, PolicyError, Snapshot, plan
from backups.retention_io import parse_time

POLICY_KEYS = (
    *(f"keep_{rule}" for rule in COUNT_RULES),
    "keep_within",
    *(f"keep_within_{rule}" for rule in WITHIN_RULES),
)
BAD_INPUT = 2  # exit status for input that cannot be planned (nothing is printed on stdout)

HELP = """\
Read {"policy": {...}, "snapshots": ["<ISO 8601 time with offset>", ...], "now": "<time>"} as JSON
on stdin and print {"keep": [{"time": ..., "reasons": [...]}, ...], "remove": [{"time": ...}, ...]}.
Policy keys (all optional, at least one rule needed): keep_last, keep_hourly, keep_daily,
keep_weekly, keep_monthly, keep_yearly (whole numbers; -1 = unlimited, 0 = off) and keep_within,
keep_within_hourly/daily/weekly/monthly/yearly (durations such as "7d", "1y6m", "36h").
All snapshots form one group. Both lists are newest first, as restic lists them (snapshots with the
same instant keep their input order); times are printed exactly as given. Each snapshot's buckets
come from its own offset. "now" (optional, default the current time) decides which snapshots are
in the future. Bad input exits with status 2 and a message naming the field."""


def _time(where: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise CommandError(f"{where}: must be a string holding an ISO 8601 time with an offset", returncode=BAD_INPUT)
    try:
        return parse_time(value)
    except ValueError as exc:
        raise CommandError(f"{where}: {exc}", returncode=BAD_INPUT) from None


def _policy(value: object) -> Policy:
    if not isinstance(value, dict):
        raise CommandError('policy: must be an object such as {"keep_daily": 7}', returncode=BAD_INPUT)
    unknown = sorted(set(value) - set(POLICY_KEYS))
    if unknown:
        raise CommandError(
            f"policy.{unknown[0]}: not a rule this command knows (known: {', '.join(POLICY_KEYS)})",
            returncode=BAD_INPUT,
        )
    try:
        return Policy(**value)
    except PolicyError as exc:
        where = f"policy.{exc.field}" if exc.field else "policy"
        raise CommandError(f"{where}: {exc.message}", returncode=BAD_INPUT) from None


def run(stream: TextIO) -> dict[str, Any]:
    """The whole command without Django's plumbing: parse, plan, shape the answer."""
    try:
        doc = json.load(stream)
    except json.JSONDecodeError as exc:
        raise CommandError(f"stdin: not valid JSON ({exc})", returncode=BAD_INPUT) from None
    if not isinstance(doc, dict):
        raise CommandError('stdin: must be a JSON object {"policy": ..., "snapshots": [...]}', returncode=BAD_INPUT)
    unknown = sorted(set(doc) - {"policy", "snapshots", "now"})
    if unknown:
        raise CommandError(f"{unknown[0]}: unknown key (known: policy, snapshots, now)", returncode=BAD_INPUT)
    policy = _policy(doc.get("policy", {}))
    raw = doc.get("snapshots", [])
    if not isinstance(raw, list):
        raise CommandError("snapshots: must be a list of ISO 8601 times with offsets", returncode=BAD_INPUT)
    now = _time("now", doc["now"]) if "now" in doc else None
    snapshots = [Snapshot(id=str(i), time=_time(f"snapshots[{i}]", value)) for i, value in enumerate(raw)]
    result = plan(snapshots, policy, now=now)
    keep: list[dict[str, Any]] = []
    remove: list[dict[str, Any]] = []
    for group in result.groups:
        keep += [{"time": raw[int(k.snapshot.id)], "reasons": list(k.reasons)} for k in group.keep]
        remove += [{"time": raw[int(s.id)]} for s in group.remove]
    return {"keep": keep, "remove": remove}


class Command(BaseCommand):
    help = HELP
    requires_system_checks: list[str] = []  # pure computation: no database, nothing to check
    stealth_options = ("stdin",)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return super().create_parser(prog_name, subcommand, formatter_class=RawDescriptionHelpFormatter, **kwargs)

    def handle(self, *args: Any, **options: Any) -> None:
        stream = options.get("stdin") or sys.stdin
        self.stdout.write(json.dumps(run(stream), indent=2))
