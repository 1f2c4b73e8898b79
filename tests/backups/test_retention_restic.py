"""The planner against the real restic 0.18: one repository with a handful of timelines (one
host each: hourly with outages, sparse over years with pinned snapshots, the DST changes of
Berlin and New York, ISO week-years, month ends, a snapshot in the future), made with
``restic backup --time``; then ``restic forget --dry-run --json --group-by host`` with several
policies, and the keep lists, their order, reasons and counters compared with plan().

restic's key derivation makes every command cost about half a second, so the timelines are
short (about 100 snapshots in all, made four at a time) and every policy is one forget over all
of them."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from backups.retention import Policy, Snapshot, plan

RESTIC = "/usr/local/lib/portal-test/bin/restic"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _restic_version() -> tuple[int, int] | None:
    if not os.access(RESTIC, os.X_OK):
        return None
    out = subprocess.run([RESTIC, "version"], capture_output=True, text=True, timeout=30, check=False).stdout
    found = re.match(r"restic (\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else None


VERSION = _restic_version()
pytestmark = pytest.mark.skipif(
    VERSION is None or VERSION < (0, 18),
    reason=f"needs restic 0.18 at {RESTIC} (scripts/test-setup.sh installs it); Debian 12's 0.14 lacks the "
    "oldest-snapshot rule",
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def hours(start: datetime, count: int, zone: Any = UTC) -> list[datetime]:
    return [(start + timedelta(hours=i)).astimezone(zone) for i in range(count)]


@dataclass(frozen=True)
class Point:
    time: datetime
    pinned: bool = False


def _sparse() -> list[Point]:
    rnd = random.Random(4)
    at = utc(2021, 3, 1, 6)
    points = []
    for _ in range(20):
        at += timedelta(seconds=rnd.choice([3600 * 5, 86400 * 2, 86400 * 9, 86400 * 40, 86400 * 120]))
        zone = rnd.choice([UTC, BERLIN, NEW_YORK])
        points.append(Point(at.astimezone(zone), pinned=rnd.random() < 0.2))
    return points


TIMELINES: dict[str, list[Point]] = {
    # Hourly for half a day, a few hours of an earlier day, then dailies and weeklies further back.
    "hourly": [
        Point(t)
        for t in [
            *hours(utc(2024, 2, 9, 12), 12),
            *hours(utc(2024, 2, 6, 19), 5),
            *(utc(2024, 2, d, 23) for d in (1, 2, 3, 5)),
            utc(2024, 1, 28, 23),
            utc(2024, 1, 21, 23),
            utc(2023, 12, 31, 23),
        ]
    ],
    "sparse": _sparse(),
    # Fall-back (02:00 twice) and spring-forward (no 02:00) in Berlin.
    "berlin": [Point(t) for t in [*hours(utc(2024, 10, 26, 22), 6, BERLIN), *hours(utc(2024, 3, 30, 23), 4, BERLIN)]],
    # Fall-back in New York (01:00 twice), and 23:30 / 00:30 local: two days there, one in UTC.
    "newyork": [
        Point(t)
        for t in [
            *hours(utc(2024, 11, 3, 4), 4, NEW_YORK),
            datetime(2024, 6, 1, 23, 30, tzinfo=NEW_YORK),
            datetime(2024, 6, 2, 0, 30, tzinfo=NEW_YORK),
            datetime(2024, 6, 1, 20, 0, tzinfo=NEW_YORK),
        ]
    ],
    # 2020 has an ISO week 53; Dec 30 2024 .. Jan 5 2025 is 2025-W01.
    "isoweek": [
        Point(t)
        for t in [
            *(utc(2020, 12, d, 12) for d in (27, 28, 31)),
            *(utc(2021, 1, d, 12) for d in (1, 3, 4)),
            utc(2024, 12, 29, 12),
            utc(2024, 12, 31, 12),
            utc(2025, 1, 1, 12),
        ]
    ],
    # Mar 31 - 1 month is "Feb 31", which Go normalises to Mar 2.
    "monthend": [
        Point(t)
        for t in [
            utc(2024, 3, 1, 12),
            utc(2024, 3, 2, 11),
            utc(2024, 3, 2, 12),
            utc(2024, 3, 2, 13),
            utc(2024, 3, 15, 12),
            utc(2024, 3, 31, 12),
        ]
    ],
    # A snapshot in the future is not the anchor of the within rules, but takes part in the counts.
    "future": [Point(t) for t in [utc(2024, 6, 1, 12), utc(2024, 6, 10, 12), utc(2024, 6, 10, 18), utc(2030, 1, 1)]],
    # Seven days back from Nov 1 12:00 CET is Oct 25 12:00 CEST in Berlin's zone, an hour earlier
    # than with a fixed +01:00 (see the zone-aware test below).
    "berlinwithin": [
        Point(t.astimezone(BERLIN))
        for t in [utc(2024, 10, 25, 9, 30), utc(2024, 10, 25, 10, 30), utc(2024, 10, 25, 11, 30), utc(2024, 11, 1, 11)]
    ],
}


def _tz_for(t: datetime) -> str:
    """A TZ for the restic process under which --time's wall clock means t: Etc/GMT-2 is +02:00."""
    offset = t.utcoffset()
    assert offset is not None
    whole = int(offset.total_seconds()) // 3600
    assert timedelta(hours=whole) == offset
    return "UTC" if whole == 0 else f"Etc/GMT{-whole:+d}"


@dataclass(frozen=True)
class Repo:
    env: dict[str, str]
    snapshots: list[dict[str, Any]]

    def forget(self, args: Sequence[str], tz: str = "UTC") -> list[dict[str, Any]]:
        done = subprocess.run(
            [RESTIC, "forget", "--dry-run", "--no-lock", "--json", "--group-by", "host", *args],
            env={**self.env, "TZ": tz},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    base = tmp_path_factory.mktemp("restic")
    (base / "pw").write_text("retention-test\n")
    (base / "data").mkdir()
    (base / "data" / "file").write_text("the same few bytes in every snapshot\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base),
        "RESTIC_REPOSITORY": str(base / "repo"),
        "RESTIC_PASSWORD_FILE": str(base / "pw"),
        "RESTIC_CACHE_DIR": str(base / "cache"),
    }
    subprocess.run([RESTIC, "init", "-q"], env=env, check=True, capture_output=True, timeout=120)

    def backup(job: tuple[str, Point]) -> None:
        host, point = job
        args = [RESTIC, "backup", "-q", "--no-scan", "--host", host, "--time", point.time.strftime("%Y-%m-%d %H:%M:%S")]
        if point.pinned:
            args += ["--tag", "pinned"]
        done = subprocess.run(
            [*args, str(base / "data")],
            env={**env, "TZ": _tz_for(point.time)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    jobs = [(host, point) for host, points in TIMELINES.items() for point in points]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(backup, jobs))
    listed = subprocess.run(
        [RESTIC, "snapshots", "--json", "--no-lock"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return Repo(env=env, snapshots=json.loads(listed.stdout))


def _inputs(repo: Repo, *, zone: ZoneInfo | None = None, pins: bool = False) -> list[Snapshot]:
    """The repository's snapshots as the planner's input, in restic's listing order. With
    ``zone``, times whose offset is that zone's at the instant carry the zone, as Go's parser
    gives them the Local location when restic runs with TZ=zone."""
    out = []
    for sn in repo.snapshots:
        t = datetime.fromisoformat(sn["time"])
        if zone is not None and t.utcoffset() == t.astimezone(zone).utcoffset():
            t = t.astimezone(zone)
        tags = tuple(sn.get("tags") or ())
        pinned = pins and "pinned" in tags
        out.append(Snapshot(id=sn["id"], time=t, group=sn["hostname"], tags=tags, pinned=pinned, pin_reason="tagged"))
    return out


def _restic_groups(answer: list[dict[str, Any]]) -> dict[str, list[tuple[str, list[str]]]]:
    """host -> [(id, reasons)], newest first. (restic 0.18's forget --json leaves the counters
    out of its reasons; unit tests check ours against restic's loop instead.)"""
    return {group["host"]: [(r["snapshot"]["id"], r["matches"]) for r in group["reasons"] or []] for group in answer}


def _planned(items: list[Snapshot], policy: Policy) -> dict[str, list[tuple[str, list[str]]]]:
    return {str(g.group): [(k.snapshot.id, list(k.reasons)) for k in g.keep] for g in plan(items, policy).groups}


def test_the_repository_holds_the_timelines_with_their_offsets(repo: Repo) -> None:
    def shown(t: datetime) -> tuple[datetime, timedelta | None]:
        return t.astimezone(UTC), t.utcoffset()  # instants: never sort datetimes of one zone by wall clock

    made = sorted((sn["hostname"], *shown(datetime.fromisoformat(sn["time"]))) for sn in repo.snapshots)
    wanted = sorted((host, *shown(p.time)) for host, points in TIMELINES.items() for p in points)
    assert made == wanted


POLICIES: dict[str, tuple[list[str], Policy]] = {
    "last": (["--keep-last", "3"], Policy(keep_last=3)),
    "calendar": (
        ["--keep-hourly", "8", "--keep-daily", "4", "--keep-weekly", "3", "--keep-monthly", "3", "--keep-yearly", "2"],
        Policy(keep_hourly=8, keep_daily=4, keep_weekly=3, keep_monthly=3, keep_yearly=2),
    ),
    "unlimited": (
        ["--keep-last", "1", "--keep-daily", "5", "--keep-weekly", "3", "--keep-monthly", "unlimited"],
        Policy(keep_daily=5, keep_weekly=3, keep_monthly=-1, keep_last=1),
    ),
    "hourly": (["--keep-hourly", "30"], Policy(keep_hourly=30)),
    "weekly": (["--keep-weekly", "5", "--keep-yearly", "3"], Policy(keep_weekly=5, keep_yearly=3)),
    "within": (["--keep-within", "1m"], Policy(keep_within="1m")),
    "within-rules": (
        ["--keep-within-hourly", "36h", "--keep-within-daily", "10d", "--keep-within-weekly", "2m"],
        Policy(keep_within_hourly="36h", keep_within_daily="10d", keep_within_weekly="2m"),
    ),
    "within-long": (
        [
            "--keep-daily",
            "2",
            "--keep-within",
            "1y2m3d4h",
            "--keep-within-monthly",
            "2y",
            "--keep-within-yearly",
            "9999y",
        ],
        Policy(keep_within="1y2m3d4h", keep_within_monthly="2y", keep_within_yearly="9999y", keep_daily=2),
    ),
    "tags": (["--keep-daily", "2", "--keep-tag", "pinned"], Policy(keep_tags=[["pinned"]], keep_daily=2)),
}


@pytest.mark.parametrize("name", POLICIES)
def test_plan_matches_restic_forget(repo: Repo, name: str) -> None:
    args, policy = POLICIES[name]
    assert policy.forget_args() == args  # what the offsite tier will pass restic
    theirs = _restic_groups(repo.forget(args))
    ours = _planned(_inputs(repo), policy)
    assert set(ours) == set(TIMELINES)
    for host in TIMELINES:
        assert ours[host] == theirs.get(host, []), host


def test_pins_keep_what_restics_keep_tag_keeps(repo: Repo) -> None:
    theirs = _restic_groups(repo.forget(["--keep-tag", "pinned", "--keep-daily", "2"]))
    ours = _planned(_inputs(repo, pins=True), Policy(keep_daily=2))
    assert any("pinned: tagged" in why for kept in ours.values() for _id, why in kept)
    for host in TIMELINES:
        assert [i for i, _why in ours[host]] == [i for i, _why in theirs.get(host, [])], host


def test_within_in_a_zone_with_dst_matches_restic_run_in_that_zone(repo: Repo) -> None:
    """restic run with TZ=Europe/Berlin parses +01:00/+02:00 times into Berlin's zone, and its
    AddDate then counts calendar days across the DST change; with TZ=UTC they are fixed
    offsets. The planner gives both answers, from the zone the times carry."""
    args = ["--keep-within", "7d"]
    in_berlin = _restic_groups(repo.forget(args, tz="Europe/Berlin"))
    in_utc = _restic_groups(repo.forget(args, tz="UTC"))
    zoned = _planned(_inputs(repo, zone=BERLIN), Policy(keep_within="7d"))
    fixed = _planned(_inputs(repo), Policy(keep_within="7d"))
    for host in TIMELINES:
        assert zoned[host] == in_berlin.get(host, []), host
        assert fixed[host] == in_utc.get(host, []), host
    # The snapshot at 10:30Z on Oct 25 is within 7 days of Nov 1 12:00 in Berlin's calendar only.
    assert len(zoned["berlinwithin"]) == 3
    assert len(fixed["berlinwithin"]) == 2
