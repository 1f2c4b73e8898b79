"""The retention planner against restic's rules: the research note's vectors V1-V8 exactly,
restic's corner rules (oldest snapshot, ISO weeks, own wall clock, DST, Go's AddDate), property
tests against a plain snapshot-by-snapshot port of restic's loop, bad policies, and the
retention_plan command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given, settings
from hypothesis import strategies as st

from backups.retention import (
    COUNT_RULES,
    WITHIN_RULES,
    Duration,
    Kept,
    Plan,
    Policy,
    PolicyError,
    Snapshot,
    _go_cutoff,
    plan,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H24_D7_W4 = Policy(keep_hourly=24, keep_daily=7, keep_weekly=4)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def snaps(times: Sequence[datetime], group: str = "") -> list[Snapshot]:
    return [Snapshot(id=f"{group}{i}", time=t, group=group) for i, t in enumerate(times)]


def series(start: datetime, count: int, step: timedelta = timedelta(hours=1)) -> list[datetime]:
    return [start + i * step for i in range(count)]


def kept(result: Plan) -> list[Kept]:
    (group,) = result.groups
    return list(group.keep)


def kept_times(result: Plan) -> list[datetime]:
    return [k.snapshot.time for k in kept(result)]


def reasons_at(result: Plan, t: datetime) -> tuple[str, ...]:
    return next(k.reasons for k in kept(result) if k.snapshot.time == t)


# --- the vectors of /work/shared/research/backups.md (b) -------------------------------------

V1 = series(utc(2024, 1, 1), 960)


def test_v1_hourly_for_forty_days_keeps_32() -> None:
    result = plan(snaps(V1), H24_D7_W4)
    assert V1[-1] == utc(2024, 2, 9, 23)
    expected = (
        [utc(2024, 2, 9, h) for h in range(23, -1, -1)]
        + [utc(2024, 2, d, 23) for d in (8, 7, 6, 5, 4, 3)]
        + [utc(2024, 1, 28, 23), utc(2024, 1, 21, 23)]
    )
    assert kept_times(result) == expected
    assert len(expected) == 32
    assert reasons_at(result, utc(2024, 2, 9, 23)) == ("hourly snapshot", "daily snapshot", "weekly snapshot")
    assert reasons_at(result, utc(2024, 2, 4, 23)) == ("daily snapshot", "weekly snapshot")
    assert reasons_at(result, utc(2024, 2, 9, 0)) == ("hourly snapshot",)
    assert reasons_at(result, utc(2024, 1, 21, 23)) == ("weekly snapshot",)
    # restic's counters: what each rule had left after that snapshot (zeros left out).
    first = kept(result)[0]
    assert first.counters.as_dict() == {"hourly": 23, "daily": 6, "weekly": 3}
    assert kept(result)[-1].counters.as_dict() == {}
    assert len(result.groups[0].remove) == 960 - 32


V2 = [
    *(datetime(2025, 4, d, 11, tzinfo=UTC) for d in (21, 22, 23, 24, 25)),
    datetime(2025, 4, 25, 23, tzinfo=UTC),
    datetime(2025, 4, 28, 11, tzinfo=UTC),
    datetime(2025, 4, 29, 11, tzinfo=UTC),
    datetime(2025, 5, 1, 11, tzinfo=UTC),
    datetime(2025, 5, 2, 11, tzinfo=UTC),
    datetime(2025, 5, 2, 23, tzinfo=UTC),
]


def test_v2_docs_example_the_missing_wednesday_pushes_the_window_back() -> None:
    result = plan(snaps(V2), Policy(keep_daily=5))
    assert kept_times(result) == [
        utc(2025, 5, 2, 23),
        utc(2025, 5, 1, 11),
        utc(2025, 4, 29, 11),
        utc(2025, 4, 28, 11),
        utc(2025, 4, 25, 23),
    ]
    assert all(k.reasons == ("daily snapshot",) for k in kept(result))


def test_v3_within_daily_seven_days() -> None:
    result = plan(snaps(V2), Policy(keep_within_daily="7d"))
    assert kept_times(result) == [utc(2025, 5, 2, 23), utc(2025, 5, 1, 11), utc(2025, 4, 29, 11), utc(2025, 4, 28, 11)]
    assert all(k.reasons == ("daily within 7d",) for k in kept(result))


def test_v4_the_oldest_snapshot_is_kept_while_the_rule_has_count_left() -> None:
    result = plan(snaps([utc(2024, 3, 5, 10), utc(2024, 3, 5, 11), utc(2024, 3, 5, 12)]), Policy(keep_daily=7))
    assert [(k.snapshot.time, k.reasons) for k in kept(result)] == [
        (utc(2024, 3, 5, 12), ("daily snapshot",)),
        (utc(2024, 3, 5, 10), ("oldest daily snapshot",)),
    ]
    assert [s.time for s in result.groups[0].remove] == [utc(2024, 3, 5, 11)]
    assert kept(result)[1].counters.as_dict() == {"daily": 5}


def test_v5_weeks_are_iso_weeks_of_the_iso_year() -> None:
    times = [utc(2024, 12, 29, 12), utc(2024, 12, 31, 12), utc(2025, 1, 1, 12)]
    result = plan(snaps(times), Policy(keep_weekly=4))
    assert kept_times(result) == [utc(2025, 1, 1, 12), utc(2024, 12, 29, 12)]
    assert [k.reasons for k in kept(result)] == [("weekly snapshot",), ("weekly snapshot",)]


def test_v6_a_server_outage_moves_the_hourly_window_back() -> None:
    down = (utc(2024, 2, 7), utc(2024, 2, 9, 11))
    times = [t for t in V1 if not down[0] <= t <= down[1]]
    result = plan(snaps(times), H24_D7_W4)
    by_reason: dict[str, set[datetime]] = {"hourly snapshot": set(), "daily snapshot": set(), "weekly snapshot": set()}
    for k in kept(result):
        for reason in k.reasons:
            by_reason[reason].add(k.snapshot.time)
    assert by_reason["hourly snapshot"] == {utc(2024, 2, 9, h) for h in range(12, 24)} | {
        utc(2024, 2, 6, h) for h in range(12, 24)
    }
    assert by_reason["daily snapshot"] == {utc(2024, 2, d, 23) for d in (9, 6, 5, 4, 3, 2, 1)}
    weeklies = [utc(2024, 2, 9, 23), utc(2024, 2, 4, 23), utc(2024, 1, 28, 23), utc(2024, 1, 21, 23)]
    assert by_reason["weekly snapshot"] == set(weeklies)
    assert len(kept(result)) == 31


def test_v7_daily_for_400_days_and_the_oldest_weekly() -> None:
    times = series(utc(2024, 1, 1, 6), 400, timedelta(days=1))
    policy = Policy(keep_daily=7, keep_weekly=52)
    result = plan(snaps(times), policy)
    assert len(kept(result)) == 57
    assert kept(result)[-1].snapshot.time == utc(2024, 2, 18, 6)
    assert kept(result)[-1].reasons == ("weekly snapshot",)
    short = plan(snaps(times[:100]), policy)
    assert len(kept(short)) == 21
    assert kept(short)[-1].snapshot.time == utc(2024, 1, 1, 6)
    assert kept(short)[-1].reasons == ("oldest weekly snapshot",)


def test_v8_berlin_fall_back_the_repeated_hour_is_one_bucket() -> None:
    times = [t.astimezone(BERLIN) for t in series(utc(2024, 10, 26, 22), 6)]
    result = plan(snaps(times), Policy(keep_hourly=24))
    assert [t.isoformat() for t in kept_times(result)] == [
        "2024-10-27T04:00:00+01:00",
        "2024-10-27T03:00:00+01:00",
        "2024-10-27T02:00:00+01:00",  # the later of the two 02:00s
        "2024-10-27T01:00:00+02:00",
        "2024-10-27T00:00:00+02:00",
    ]
    assert [s.time.isoformat() for s in result.groups[0].remove] == ["2024-10-27T02:00:00+02:00"]


# --- restic's other corners ------------------------------------------------------------------


def test_berlin_spring_forward_keeps_every_hour_that_exists() -> None:
    times = [t.astimezone(BERLIN) for t in series(utc(2024, 3, 30, 23), 5)]  # 00:00, 01:00, 03:00, 04:00, 05:00
    result = plan(snaps(times), Policy(keep_hourly=3))
    assert [t.isoformat() for t in kept_times(result)] == [
        "2024-03-31T05:00:00+02:00",
        "2024-03-31T04:00:00+02:00",
        "2024-03-31T03:00:00+02:00",
    ]
    daily = plan(snaps(times), Policy(keep_daily=1))
    assert [t.isoformat() for t in kept_times(daily)] == ["2024-03-31T05:00:00+02:00"]


def test_new_york_fall_back_and_the_local_day() -> None:
    # 01:00 EDT and 01:00 EST share the wall-clock hour 01 of Nov 3: one hourly bucket.
    times = [t.astimezone(NEW_YORK) for t in series(utc(2024, 11, 3, 4), 4)]  # 00:00-04, 01:00-04, 01:00-05, 02:00-05
    result = plan(snaps(times), Policy(keep_hourly=10))
    assert [t.isoformat() for t in kept_times(result)] == [
        "2024-11-03T02:00:00-05:00",
        "2024-11-03T01:00:00-05:00",
        "2024-11-03T00:00:00-04:00",
    ]
    # Days are the snapshot's own days: 23:30 and 00:30 New York time are two days, though
    # both fall on June 2 in UTC.
    evening = datetime(2024, 6, 1, 23, 30, tzinfo=NEW_YORK)
    after_midnight = datetime(2024, 6, 2, 0, 30, tzinfo=NEW_YORK)
    assert evening.astimezone(UTC).date() == after_midnight.astimezone(UTC).date()
    both = plan(snaps([evening, after_midnight]), Policy(keep_daily=2))
    assert kept_times(both) == [after_midnight, evening]
    assert [k.reasons for k in kept(both)] == [("daily snapshot",), ("daily snapshot",)]
    as_utc = plan(snaps([evening.astimezone(UTC), after_midnight.astimezone(UTC)]), Policy(keep_daily=1))
    assert len(kept(as_utc)) == 1


def test_a_fixed_offset_is_bucketed_by_its_own_wall_clock() -> None:
    plus14 = timezone(timedelta(hours=14))
    a = datetime(2024, 1, 1, 9, tzinfo=plus14)  # Dec 31 19:00 UTC
    b = datetime(2023, 12, 31, 20, tzinfo=UTC)  # an hour later, but still Dec 31 on its own clock
    result = plan(snaps([a, b]), Policy(keep_yearly=5))
    assert kept_times(result) == [b, a]  # 2023 and 2024: two years


def test_sorting_is_by_instant_even_within_one_zone() -> None:
    # 02:30+02:00 is before 02:10+01:00, though Python calls a same-zone pair equal-or-after by wall clock.
    early = datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN)  # fold=0: +02:00
    late = datetime(2024, 10, 27, 2, 10, tzinfo=BERLIN, fold=1)  # +01:00
    assert early.utcoffset() == timedelta(hours=2)
    assert late.utcoffset() == timedelta(hours=1)
    result = plan(snaps([late, early]), Policy(keep_last=1))
    assert kept_times(result) == [late]


def test_same_instant_keeps_input_order_like_gos_stable_sort() -> None:
    t = utc(2024, 5, 1, 12)
    result = plan([Snapshot(id="b", time=t), Snapshot(id="a", time=t.astimezone(BERLIN))], Policy(keep_last=1))
    assert [k.snapshot.id for k in kept(result)] == ["b"]


def test_keep_within_is_strictly_newer_than_latest_minus_d() -> None:
    times = series(utc(2024, 6, 1), 10, timedelta(days=1))  # Jun 1 .. Jun 10
    result = plan(snaps(times), Policy(keep_within="3d"))
    assert kept_times(result) == [utc(2024, 6, 10), utc(2024, 6, 9), utc(2024, 6, 8)]  # Jun 7 is exactly 3d back
    assert reasons_at(result, utc(2024, 6, 10)) == ("within 3d",)


@pytest.mark.parametrize(
    ("latest", "duration", "cutoff"),
    [
        (utc(2024, 10, 31, 12), "1m", utc(2024, 10, 1, 12)),  # "Sep 31" is Oct 1
        (utc(2024, 3, 31, 12), "1m", utc(2024, 3, 2, 12)),  # "Feb 31" of a leap year is Mar 2
        (utc(2023, 3, 31, 12), "1m", utc(2023, 3, 3, 12)),
        (utc(2024, 2, 29, 0), "1y", utc(2023, 3, 1, 0)),
        (utc(2024, 1, 15, 6), "1y2m3d4h", utc(2022, 11, 12, 2)),
        (utc(2024, 1, 1, 0), "13m", utc(2022, 12, 1, 0)),
        (utc(2024, 1, 1, 0), "36h", utc(2023, 12, 30, 12)),
        (utc(2024, 1, 1, 0), "400d", utc(2022, 11, 27, 0)),
    ],
)
def test_within_uses_gos_add_date(latest: datetime, duration: str, cutoff: datetime) -> None:
    assert _go_cutoff(latest, Duration.parse(duration)) == cutoff - datetime(1970, 1, 1, tzinfo=UTC)


def test_within_counts_calendar_days_in_latests_zone() -> None:
    """A zone with DST: 7 days back from Nov 1 12:00 CET is Oct 25 12:00 CEST (169 hours); a
    fixed +01:00 offset gives Oct 25 12:00+01:00 (168 hours). Go does the same with the zone
    it parsed the time into."""
    latest = datetime(2024, 11, 1, 12, tzinfo=BERLIN)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert _go_cutoff(latest, Duration(days=7)) == utc(2024, 10, 25, 10) - epoch
    fixed = latest.astimezone(timezone(timedelta(hours=1)))
    assert _go_cutoff(fixed, Duration(days=7)) == utc(2024, 10, 25, 11) - epoch
    # A wall time in the spring-forward gap lands where Go's Date puts it.
    gap_latest = datetime(2024, 4, 7, 2, 30, tzinfo=timezone(timedelta(hours=2))).astimezone(BERLIN)
    assert gap_latest.hour == 2
    assert _go_cutoff(gap_latest, Duration(days=7)) == utc(2024, 3, 31, 1, 30) - epoch  # 03:30+02:00


def test_huge_durations_reach_before_year_one_and_keep_everything() -> None:
    times = series(utc(2000, 1, 1), 5, timedelta(days=1000))
    result = plan(snaps(times), Policy(keep_within="9999y"))
    assert len(kept(result)) == 5
    assert _go_cutoff(utc(2024, 1, 1), Duration(years=9999)) is None
    assert _go_cutoff(utc(2024, 1, 1), Duration(hours=10**12)) is None


def test_the_anchor_is_the_newest_snapshot_not_in_the_future() -> None:
    now = utc(2024, 6, 15)
    times = [utc(2024, 6, 10), utc(2024, 6, 12), utc(2024, 6, 14), utc(2024, 6, 20)]  # Jun 20 is in the future
    result = plan(snaps(times), Policy(keep_within="3d"), now=now)
    assert result.groups[0].latest == utc(2024, 6, 14)
    assert kept_times(result) == [utc(2024, 6, 20), utc(2024, 6, 14), utc(2024, 6, 12)]
    # The future snapshot still takes part in the count rules: it is the newest daily.
    daily = plan(snaps([utc(2024, 6, 14, 8), utc(2024, 6, 14, 20)]), Policy(keep_daily=1), now=utc(2024, 6, 14, 12))
    assert kept_times(daily) == [utc(2024, 6, 14, 20)]


def test_a_snapshot_taken_exactly_now_is_not_the_anchor() -> None:
    times = [utc(2024, 6, 10), utc(2024, 6, 14)]
    result = plan(snaps(times), Policy(keep_within="1d"), now=utc(2024, 6, 14))  # restic: Before(now), strictly
    assert result.groups[0].latest == utc(2024, 6, 10)
    assert kept_times(result) == times[::-1]


def test_with_every_snapshot_in_the_future_all_are_within() -> None:
    times = series(utc(2030, 1, 1), 3, timedelta(days=30))
    result = plan(snaps(times), Policy(keep_within="1d"), now=utc(2024, 1, 1))
    assert result.groups[0].latest is None
    assert len(kept(result)) == 3


def test_unlimited_keeps_every_bucket_and_counters_stay_minus_one() -> None:
    times = series(utc(2024, 1, 1, 12), 10, timedelta(days=1))
    result = plan(snaps(times), Policy(keep_daily=-1, keep_last=2))
    assert len(kept(result)) == 10
    assert [k.counters.as_dict() for k in kept(result)][:3] == [
        {"last": 1, "daily": -1},
        {"daily": -1},
        {"daily": -1},
    ]
    assert kept(result)[0].reasons == ("last snapshot", "daily snapshot")


def test_every_rule_in_restics_reason_order() -> None:
    t = utc(2024, 6, 10, 12)
    snap = Snapshot(id="x", time=t, tags=("db", "monthly"), pinned=True, pin_reason="restore in progress")
    policy = Policy(
        keep_last=1,
        keep_hourly=1,
        keep_daily=1,
        keep_weekly=1,
        keep_monthly=1,
        keep_yearly=1,
        keep_within="1d",
        keep_within_hourly="1d",
        keep_within_daily="1d",
        keep_within_weekly="1d",
        keep_within_monthly="1d",
        keep_within_yearly="1d",
        keep_tags=[["monthly"], ["db", "monthly"], ["other"]],
    )
    (k,) = kept(plan([snap], policy))
    assert k.reasons == (
        "pinned: restore in progress",
        "has tags [monthly]",
        "has tags [db, monthly]",
        "within 1d",
        "last snapshot",
        "hourly snapshot",
        "daily snapshot",
        "weekly snapshot",
        "monthly snapshot",
        "yearly snapshot",
        "hourly within 1d",
        "daily within 1d",
        "weekly within 1d",
        "monthly within 1d",
        "yearly within 1d",
    )


def test_oldest_within_rule_reason() -> None:
    times = [utc(2024, 6, 10, 10), utc(2024, 6, 10, 11), utc(2024, 6, 10, 12)]
    result = plan(snaps(times), Policy(keep_within_daily="2d"))
    assert [k.reasons for k in kept(result)] == [("daily within 2d",), ("oldest daily within 2d",)]


def test_pins_keep_without_using_a_count_and_change_nothing_else() -> None:
    times = series(utc(2024, 1, 1, 12), 30, timedelta(days=1))
    plain = plan(snaps(times), Policy(keep_daily=3))
    pinned = [
        Snapshot(id=s.id, time=s.time, pinned=s.id in {"5", "29"}, pin_reason="send parent" if s.id == "5" else "")
        for s in snaps(times)
    ]
    result = plan(pinned, Policy(keep_daily=3))
    assert result.keep_ids == plain.keep_ids | {"5", "29"}
    assert reasons_at(result, times[5]) == ("pinned: send parent",)
    assert reasons_at(result, times[29]) == ("pinned", "daily snapshot")  # also the newest daily


def test_keep_tags_like_restic_and_the_empty_tag_for_untagged() -> None:
    items = [
        Snapshot(id="a", time=utc(2024, 1, 1), tags=("x",)),
        Snapshot(id="b", time=utc(2024, 1, 2)),
        Snapshot(id="c", time=utc(2024, 1, 3), tags=("x", "y")),
    ]
    result = plan(items, Policy(keep_tags=[["x", "y"]]))
    assert result.keep_ids == {"c"}
    assert plan(items, Policy(keep_tags=[[""]])).keep_ids == {"b"}
    assert plan(items, Policy(keep_tags=[["x"]])).keep_ids == {"a", "c"}


def test_groups_are_planned_apart_in_input_order() -> None:
    a = snaps(series(utc(2024, 1, 1), 5, timedelta(days=1)), group="home")
    b = snaps(series(utc(2024, 3, 1), 5, timedelta(days=1)), group="scratch")
    result = plan([*a, *b], Policy(keep_last=2))
    assert [g.group for g in result.groups] == ["home", "scratch"]
    assert result.group("home").latest == utc(2024, 1, 5)
    assert [k.snapshot.id for k in result.group("scratch").keep] == ["scratch4", "scratch3"]
    with pytest.raises(KeyError):
        result.group("datasets")


def test_ten_thousand_snapshots_in_under_100_ms() -> None:
    times = [t.astimezone(BERLIN) for t in series(utc(2023, 1, 1), 10_000)]
    items = snaps(times)
    policy = Policy(keep_last=10, keep_hourly=48, keep_daily=14, keep_weekly=8, keep_monthly=12, keep_yearly=-1)
    best = min(_timed(lambda: plan(items, policy)) for _ in range(5))
    assert best < 0.1, f"{best * 1000:.1f} ms"


def _timed(fn: Callable[[], object]) -> float:
    """CPU time, so that other tests running on the machine at the same time count less."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-2, 1.5, "7", True, [7]])
@pytest.mark.parametrize("rule", COUNT_RULES)
def test_a_count_must_be_a_whole_number_from_minus_one(rule: str, value: object) -> None:
    with pytest.raises(PolicyError) as exc:
        Policy(**{f"keep_{rule}": value})  # type: ignore[arg-type]
    assert exc.value.field == f"keep_{rule}"
    assert str(exc.value).startswith(f"keep_{rule}: must be a whole number ≥ -1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("7x", "is not a duration"),
        ("-1d", "is not a duration"),
        ("d", "is not a duration"),
        ("7d 2h", "is not a duration"),
        ("7d7d", "gives 'd' twice"),
        ("   ", "is empty"),
        (7, "must be a duration"),
        (Duration(days=-1), "must not be negative"),
    ],
)
@pytest.mark.parametrize("name", ["keep_within", *(f"keep_within_{rule}" for rule in WITHIN_RULES)])
def test_a_duration_must_be_restics_form(name: str, value: object, message: str) -> None:
    with pytest.raises(PolicyError) as exc:
        Policy(keep_daily=1, **{name: value})  # type: ignore[arg-type]
    assert exc.value.field == name
    assert message in str(exc.value)


def test_zero_and_none_turn_rules_off_and_an_empty_policy_is_refused() -> None:
    for empty in (
        {},
        {"keep_last": 0, "keep_daily": None},
        {"keep_within": "0d", "keep_within_daily": ""},
        {"keep_tags": []},
    ):
        with pytest.raises(PolicyError) as exc:
            Policy(**empty)  # type: ignore[arg-type]
        assert exc.value.field == ""
        assert str(exc.value) == (
            "policy: empty: set at least one keep_* rule (an empty policy would remove every snapshot)"
        )


def test_keep_tags_must_be_lists_of_tags() -> None:
    for bad in ("monthly", ["monthly"], [[1]]):
        with pytest.raises(PolicyError, match="keep_tags: must be a list of lists of tags"):
            Policy(keep_tags=bad)  # type: ignore[arg-type]


def test_snapshot_times_must_be_aware_and_ids_unique() -> None:
    with pytest.raises(ValueError, match="has no offset or zone"):
        Snapshot(id="a", time=datetime(2024, 1, 1))  # noqa: DTZ001
    twice = [Snapshot(id="a", time=utc(2024, 1, 1)), Snapshot(id="a", time=utc(2024, 1, 2), group="other")]
    with pytest.raises(ValueError, match="ids must be unique"):
        plan(twice, Policy(keep_last=1))
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        plan([], Policy(keep_last=1), now=datetime(2024, 1, 1))  # noqa: DTZ001


def test_policies_hold_parsed_durations() -> None:
    assert Policy(keep_within="7d") == Policy(keep_within=Duration(days=7))
    assert Policy(keep_daily=1, keep_within="0d").keep_within is None
    assert Policy(keep_within_weekly=" 2m ").keep_within_weekly == Duration(months=2)


def test_forget_args_say_the_policy_to_restic() -> None:
    policy = Policy(keep_last=1, keep_daily=7, keep_monthly=-1, keep_within="1y2m", keep_within_hourly="36h")
    assert policy.forget_args() == [
        "--keep-last",
        "1",
        "--keep-daily",
        "7",
        "--keep-monthly",
        "unlimited",
        "--keep-within",
        "1y2m",
        "--keep-within-hourly",
        "36h",
    ]
    assert Policy(keep_tags=[["a", "b"], [""]]).forget_args() == ["--keep-tag", "a,b", "--keep-tag", ""]
    with pytest.raises(PolicyError, match="keep_tags: a tag with a comma"):
        Policy(keep_tags=[["a,b"]]).forget_args()


def test_duration_text_is_restics() -> None:
    assert str(Duration.parse("4h3d2m1y")) == "1y2m3d4h"
    assert str(Duration.parse(" 24h ")) == "24h"
    assert Duration.parse("0d").zero


def test_no_snapshots_plans_nothing() -> None:
    assert plan([], Policy(keep_last=1)).groups == ()


# --- properties, against a plain port of restic's loop --------------------------------------


def restic_loop(items: Sequence[Snapshot], policy: Policy, now: datetime) -> dict[str, tuple[str, ...]]:
    """ApplyPolicy as restic writes it, snapshot by snapshot, for one group: id -> reasons."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    order = sorted(items, key=lambda s: s.time - epoch, reverse=True)
    keyers = {
        "last": None,
        "hourly": lambda t: (t.year, t.month, t.day, t.hour),
        "daily": lambda t: (t.year, t.month, t.day),
        "weekly": lambda t: tuple(t.isocalendar())[:2],
        "monthly": lambda t: (t.year, t.month),
        "yearly": lambda t: t.year,
    }
    latest = next((s.time for s in order if s.time - epoch < now - epoch), None)

    def within(t: datetime, d: Duration) -> bool:
        cut = None if latest is None else _go_cutoff(latest, d)
        return cut is None or t - epoch > cut

    counts = list(policy.counts)
    last: list[object] = [object()] * 6
    wlast: list[object] = [object()] * 5
    out: dict[str, tuple[str, ...]] = {}
    for nr, s in enumerate(order):
        why: list[str] = []
        if s.pinned:
            why.append(f"pinned: {s.pin_reason}" if s.pin_reason else "pinned")
        why += [f"has tags [{', '.join(tags)}]" for tags in policy.keep_tags if s.has_tags(tags)]
        if not policy.within.zero and within(s.time, policy.within):
            why.append(f"within {policy.within}")
        for i, rule in enumerate(COUNT_RULES):
            if counts[i] > 0 or counts[i] == -1:
                keyer = keyers[rule]
                val = nr if keyer is None else keyer(s.time)
                if val != last[i] or nr == len(order) - 1:
                    why.append(("oldest " if val == last[i] else "") + f"{rule} snapshot")
                    last[i] = val
                    if counts[i] > 0:
                        counts[i] -= 1
        for i, (rule, d) in enumerate(zip(WITHIN_RULES, policy.withins, strict=True)):
            if not d.zero and within(s.time, d):
                val = keyers[rule](s.time)  # type: ignore[misc]
                if val != wlast[i] or nr == len(order) - 1:
                    why.append(("oldest " if val == wlast[i] else "") + f"{rule} within {d}")
                    wlast[i] = val
        if why:
            out[s.id] = tuple(why)
    return out


ZONES = [UTC, BERLIN, NEW_YORK, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-9))]
NOW = utc(2024, 7, 1)


@st.composite
def timelines(draw: st.DrawFn, max_size: int = 60) -> list[Snapshot]:
    start = draw(st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2024, 6, 1)))  # noqa: DTZ001
    steps = draw(
        st.lists(
            st.one_of(
                st.integers(0, 3 * 3600),  # often within the hour
                st.integers(0, 3 * 86400),
                st.integers(0, 90 * 86400),
            ),
            max_size=max_size,
        )
    )
    items = []
    at = start.replace(tzinfo=UTC)
    for i, step in enumerate(steps):
        at += timedelta(seconds=step)
        zone = draw(st.sampled_from(ZONES))
        pinned = draw(st.integers(0, 9)) == 0
        tags = draw(st.sampled_from([(), ("a",), ("a", "b")]))
        items.append(Snapshot(id=str(i), time=at.astimezone(zone), tags=tags, pinned=pinned, pin_reason="p" * pinned))
    if draw(st.integers(0, 3)) == 0:  # one taken exactly at NOW: not the anchor (restic: Before(now))
        items.append(Snapshot(id="now", time=NOW.astimezone(draw(st.sampled_from(ZONES)))))
    return items


counts = st.one_of(st.none(), st.just(-1), st.integers(0, 8))
durations = st.one_of(st.none(), st.sampled_from(["1d", "36h", "1m", "2m3d", "1y", "5d12h"]))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    kwargs: dict[str, object] = {f"keep_{rule}": draw(counts) for rule in COUNT_RULES}
    kwargs["keep_within"] = draw(durations)
    for rule in WITHIN_RULES:
        kwargs[f"keep_within_{rule}"] = draw(durations)
    kwargs["keep_tags"] = draw(st.sampled_from([(), (("a", "b"),), (("",),)]))
    # One rule always on, so the policy is never empty.
    anchor = draw(st.sampled_from([*COUNT_RULES, "within", *(f"within_{rule}" for rule in WITHIN_RULES)]))
    if anchor in COUNT_RULES:
        kwargs[f"keep_{anchor}"] = draw(st.one_of(st.just(-1), st.integers(1, 8)))
    else:
        kwargs[f"keep_{anchor}"] = draw(st.sampled_from(["1d", "36h", "1m", "1y"]))
    return Policy(**kwargs)  # type: ignore[arg-type]


def as_reasons(result: Plan) -> dict[str, tuple[str, ...]]:
    return {k.snapshot.id: k.reasons for g in result.groups for k in g.keep}


@settings(max_examples=300, deadline=None)
@given(timelines(), policies())
def test_plan_equals_restics_loop_and_partitions_the_input(items: list[Snapshot], policy: Policy) -> None:
    result = plan(items, policy, now=NOW)
    assert as_reasons(result) == restic_loop(items, policy, NOW)
    assert result.keep_ids | result.remove_ids == {s.id for s in items}
    assert not result.keep_ids & result.remove_ids
    for group in result.groups:
        stamps = [k.snapshot.time for k in group.keep]
        assert stamps == sorted(stamps, reverse=True)
        assert all(k.reasons for k in group.keep)
    assert {s.id for s in items if s.pinned} <= result.keep_ids


@settings(max_examples=150, deadline=None)
@given(timelines(), policies(), st.sampled_from(COUNT_RULES), st.integers(1, 5))
def test_a_more_generous_policy_never_removes_a_kept_snapshot(
    items: list[Snapshot], policy: Policy, rule: str, more: int
) -> None:
    before = plan(items, policy, now=NOW).keep_ids
    count = getattr(policy, f"keep_{rule}") or 0
    wider = Policy(**{**_fields(policy), f"keep_{rule}": -1 if count == -1 else count + more})  # type: ignore[arg-type]
    assert before <= plan(items, wider, now=NOW).keep_ids
    extra = Policy(**{**_fields(policy), "keep_within": "1y"})  # type: ignore[arg-type]
    assert before <= plan(items, extra, now=NOW).keep_ids


def _fields(policy: Policy) -> dict[str, object]:
    names = [f"keep_{r}" for r in COUNT_RULES] + ["keep_within", *(f"keep_within_{r}" for r in WITHIN_RULES)]
    return {**{n: getattr(policy, n) for n in names}, "keep_tags": policy.keep_tags}


@settings(max_examples=150, deadline=None)
@given(timelines(), st.integers(1, 30))
def test_keep_last_n_keeps_at_least_n(items: list[Snapshot], n: int) -> None:
    assert len(plan(items, Policy(keep_last=n), now=NOW).keep_ids) >= min(n, len(items))


@settings(max_examples=150, deadline=None)
@given(timelines(), policies())
def test_the_newest_snapshot_is_kept_by_any_count_rule(items: list[Snapshot], policy: Policy) -> None:
    """The newest snapshot always opens a bucket. (The newest one *before now* is not always
    kept: a future snapshot in the same bucket takes its place, as in restic.)"""
    if not items or not any(policy.counts):
        return
    result = plan(items, policy)  # today: every generated snapshot is in the past
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    newest = max(items, key=lambda s: s.time - epoch)
    assert newest.id in result.keep_ids


@settings(max_examples=100, deadline=None)
@given(timelines(30), timelines(30), policies())
def test_groups_are_independent(a: list[Snapshot], b: list[Snapshot], policy: Policy) -> None:
    a = [Snapshot(id=f"a{s.id}", time=s.time, group="a", tags=s.tags, pinned=s.pinned) for s in a]
    b = [Snapshot(id=f"b{s.id}", time=s.time, group="b", tags=s.tags, pinned=s.pinned) for s in b]
    mixed = [x for pair in zip(a, b, strict=False) for x in pair] + a[len(b) :] + b[len(a) :]
    together = as_reasons(plan(mixed, policy, now=NOW))
    assert together == {**as_reasons(plan(a, policy, now=NOW)), **as_reasons(plan(b, policy, now=NOW))}


@settings(max_examples=100, deadline=None)
@given(timelines(), policies(), st.randoms(use_true_random=False))
def test_input_order_does_not_matter_between_distinct_instants(items: list[Snapshot], policy: Policy, rnd) -> None:  # type: ignore[no-untyped-def]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    distinct = list({s.time - epoch: s for s in items}.values())
    shuffled = distinct[:]
    rnd.shuffle(shuffled)
    assert as_reasons(plan(distinct, policy, now=NOW)) == as_reasons(plan(shuffled, policy, now=NOW))


@settings(max_examples=100, deadline=None)
@given(timelines(), policies())
def test_pins_add_themselves_and_nothing_else(items: list[Snapshot], policy: Policy) -> None:
    unpinned = [Snapshot(id=s.id, time=s.time, tags=s.tags) for s in items]
    pinned = {s.id for s in items if s.pinned}
    assert plan(items, policy, now=NOW).keep_ids == plan(unpinned, policy, now=NOW).keep_ids | pinned


@given(st.integers(0, 500), st.integers(0, 500), st.integers(0, 500), st.integers(0, 500))
def test_duration_round_trips(y: int, m: int, d: int, h: int) -> None:
    duration = Duration(years=y, months=m, days=d, hours=h)
    if duration.zero:
        assert str(duration) == ""
    else:
        assert Duration.parse(str(duration)) == duration


# --- the retention_plan command --------------------------------------------------------------


def command(doc: object) -> dict[str, object]:
    out = io.StringIO()
    text = doc if isinstance(doc, str) else json.dumps(doc)
    call_command("retention_plan", stdin=io.StringIO(text), stdout=out)
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def command_error(doc: object) -> CommandError:
    with pytest.raises(CommandError) as exc:
        command(doc)
    assert exc.value.returncode == 2
    return exc.value


def test_command_keeps_newest_first_with_reasons_and_times_as_given() -> None:
    given_times = ["2024-03-05T10:00:00+00:00", "2024-03-05T13:00:00+01:00", "2024-03-05T11:00:00Z"]
    result = command({"policy": {"keep_daily": 7}, "snapshots": given_times})
    assert result == {
        "keep": [
            {"time": "2024-03-05T13:00:00+01:00", "reasons": ["daily snapshot"]},
            {"time": "2024-03-05T10:00:00+00:00", "reasons": ["oldest daily snapshot"]},
        ],
        "remove": [{"time": "2024-03-05T11:00:00Z"}],
    }


def test_command_takes_within_rules_nanoseconds_and_now() -> None:
    result = command(
        {
            "policy": {"keep_within": "2d", "keep_last": 1},
            "snapshots": ["2024-06-01T00:00:00.123456789+02:00", "2024-06-05T00:00:00Z", "2024-06-09T00:00:00Z"],
            "now": "2024-06-06T00:00:00Z",
        }
    )
    assert result["keep"] == [
        {"time": "2024-06-09T00:00:00Z", "reasons": ["within 2d", "last snapshot"]},  # in the future
        {"time": "2024-06-05T00:00:00Z", "reasons": ["within 2d"]},
    ]
    assert result["remove"] == [{"time": "2024-06-01T00:00:00.123456789+02:00"}]


def test_command_with_no_snapshots() -> None:
    assert command({"policy": {"keep_last": 3}}) == {"keep": [], "remove": []}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("", "stdin: not valid JSON"),
        ("{", "stdin: not valid JSON"),
        ("[]", "stdin: must be a JSON object"),
        ({"policy": {"keep_daily": -2}}, "policy.keep_daily: must be a whole number ≥ -1"),
        ({"policy": {"keep_daily": "7"}}, "policy.keep_daily: must be a whole number ≥ -1"),
        ({"policy": {"keep_weekly": 1.5}}, "policy.keep_weekly: must be a whole number ≥ -1"),
        ({"policy": {"keep_dayly": 7}}, "policy.keep_dayly: not a rule this command knows"),
        ({"policy": {"keep_within": "7 days"}}, "policy.keep_within: '7 days' is not a duration"),
        ({"policy": []}, "policy: must be an object"),
        ({"policy": {}}, "policy: empty: set at least one keep_* rule"),
        ({}, "policy: empty"),
        ({"policy": {"keep_last": 0, "keep_daily": 0}}, "policy: empty"),
        ({"policy": {"keep_last": 1}, "snapshots": "2024-01-01T00:00:00Z"}, "snapshots: must be a list"),
        (
            {"policy": {"keep_last": 1}, "snapshots": ["2024-01-01T00:00:00Z", "x", "y", "2024-13-01"]},
            'snapshots[1]: "x" is not an ISO 8601 time with an offset',
        ),
        (
            {"policy": {"keep_last": 1}, "snapshots": ["2024-01-01T00:00:00Z"] * 3 + ["2024-13-01"]},
            'snapshots[3]: "2024-13-01" is not an ISO 8601 time with an offset',
        ),
        (
            {"policy": {"keep_last": 1}, "snapshots": ["2024-01-01T00:00:00"]},
            'snapshots[0]: "2024-01-01T00:00:00" is not an ISO 8601 time with an offset',
        ),
        ({"policy": {"keep_last": 1}, "snapshots": [17]}, "snapshots[0]: must be a string"),
        ({"policy": {"keep_last": 1}, "now": "today"}, 'now: "today" is not an ISO 8601 time'),
        ({"policy": {"keep_last": 1}, "snapshot": []}, "snapshot: unknown key"),
    ],
)
def test_command_refuses_bad_input_naming_the_field(doc: object, message: str) -> None:
    assert str(command_error(doc)).startswith(message)


def test_command_as_a_process_exit_status_and_stderr() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings_test"}

    def run(doc: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "retention_plan"],
            input=doc,
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            timeout=60,
            check=False,
        )

    good = run(json.dumps({"policy": {"keep_last": 1}, "snapshots": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"]}))
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["keep"] == [{"time": "2024-01-02T00:00:00Z", "reasons": ["last snapshot"]}]
    bad = run(json.dumps({"policy": {"keep_daily": -5}}))
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert "policy.keep_daily: must be a whole number ≥ -1" in bad.stderr
    helped = run("")
    assert helped.returncode == 2
    assert "stdin: not valid JSON" in helped.stderr


@settings(max_examples=150, deadline=None)
@given(timelines(), st.lists(st.integers(0, 6), min_size=6, max_size=6))
def test_count_rules_keep_no_more_than_their_counts_summed(items: list[Snapshot], numbers: list[int]) -> None:
    """restic's own check (policySum): without tags, pins, within rules or unlimited counts, at
    most the sum of the counts is kept; the oldest-snapshot rule uses a count too."""
    if not any(numbers):
        return
    unpinned = [Snapshot(id=s.id, time=s.time) for s in items]
    policy = Policy(**{f"keep_{rule}": n for rule, n in zip(COUNT_RULES, numbers, strict=True)})  # type: ignore[arg-type]
    assert len(plan(unpinned, policy, now=NOW).keep_ids) <= sum(numbers)
