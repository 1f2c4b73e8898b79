"""Reading snapshot times typed by a person: the ``retention_plan`` command's JSON and the
prune simulator's pasted lines share one rule, so both accept and refuse the same times."""

from __future__ import annotations

import json
from datetime import datetime

#: More lines than this in the simulator is a paste gone wrong, not a policy check.
MAX_LINES = 20_000
EXAMPLE = "2026-12-02T14:00:00+00:00"


class TimesError(ValueError):
    """Pasted times that cannot be planned; the message names the line."""


def parse_time(value: str) -> datetime:
    """An ISO 8601 time with an offset (a time without one has no buckets: its day depends on
    where it was taken). ValueError quoting the value otherwise."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise ValueError(f"{json.dumps(value)} is not an ISO 8601 time with an offset")
    return parsed


def parse_lines(text: str) -> list[tuple[int, str, datetime]]:
    """One time per line (blank lines skipped): (line number, the text as given, the time).
    TimesError names the first bad line by its number."""
    found: list[tuple[int, str, datetime]] = []
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise TimesError(f"{len(lines):,} lines: paste at most {MAX_LINES:,} times.")
    for number, line in enumerate(lines, start=1):
        raw = line.strip()
        if not raw:
            continue
        try:
            found.append((number, raw, parse_time(raw)))
        except ValueError as exc:
            raise TimesError(f"Line {number}: {exc} (write it like {EXAMPLE}).") from None
    if not found:
        raise TimesError(f"Paste at least one snapshot time, one per line, such as {EXAMPLE}.")
    return found
