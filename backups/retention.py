"""The retention planner both backup tiers share: which snapshots a policy keeps, and why.

It reproduces restic's ``forget --keep-*`` (``ApplyPolicy`` in restic 0.18's
``internal/data/snapshot_policy.go``) so that the local BTRFS tier and the offsite restic tier
follow one rule, and so the portal can show a dry run with restic's own reasons before anything
is deleted. Pure Python: no Django, no I/O, so it is cheap to call from a page, a task or a test.

restic's rules, which this module keeps exactly (tests/backups/test_retention_restic.py checks
it against restic 0.18 itself):

* Each group is planned on its own; inside a group snapshots are taken newest first, by their
  instant (ties keep the input order, as Go's stable sort does).
* Bucket keys come from each snapshot's *own* wall clock (its offset or zone): hour, day, ISO
  week (ISO week-year), month, year. Python compares datetimes that share a ``ZoneInfo`` by
  wall clock, ignoring ``fold``, so instants (time since the epoch) are compared instead.
* Every count rule keeps the newest snapshot of each of its last n buckets that hold one, and
  the oldest snapshot too if the rule still has count left ("oldest daily snapshot"). Rules
  overlap: one snapshot can use a slot in several rules.
* ``keep_within`` keeps snapshots newer than ``latest - D``, where ``latest`` is the newest
  snapshot that is not in the future and ``D`` is applied like Go's ``AddDate`` (calendar
  arithmetic with normalisation: Oct 31 - 1m = Oct 1) in latest's zone, then minus the hours.
  ``keep_within_<rule>`` is the bucket logic, without a count, over the same window.
* Tags (``keep_tags``) and pins keep a snapshot without using up a count; the snapshot still
  takes part in the count rules like any other, so a pin never changes what else is kept.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import compress, repeat
from operator import attrgetter, ne, neg, sub

__all__ = [
    "COUNT_RULES",
    "WITHIN_RULES",
    "Counters",
    "Duration",
    "GroupPlan",
    "Kept",
    "Plan",
    "Policy",
    "PolicyError",
    "Snapshot",
    "plan",
]

#: The count rules, in restic's order (which is also the order of the reasons).
COUNT_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
#: The rules ``keep_within_<rule>`` exists for.
WITHIN_RULES = ("hourly", "daily", "weekly", "monthly", "yearly")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PolicyError(ValueError):
    """A policy that cannot be applied; ``field`` names the setting at fault ("" for the whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field or 'policy'}: {message}")
        self.field = field
        self.message = message


# --- durations: restic's "1y2m3d4h" ------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+)([ymdh])")


@dataclass(frozen=True, slots=True)
class Duration:
    """restic's ``Duration``: whole years, months, days and hours, applied as calendar steps."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse "1y2m3d4h" (any subset, any order, each unit once). Stricter than restic,
        which also takes negative numbers and repeated units; those are refused here because
        restic's forget refuses negative durations and a repeated unit is surely a typo."""
        s = text.strip()
        if not s:
            raise ValueError("is empty; write it like 7d, 24h or 1y6m")
        parts: dict[str, int] = {}
        pos = 0
        for m in _DURATION_PART.finditer(s):
            if m.start() != pos:
                break
            unit = m.group(2)
            if unit in parts:
                raise ValueError(f"{text!r} gives {unit!r} twice")
            parts[unit] = int(m.group(1))
            pos = m.end()
        if pos != len(s):
            raise ValueError(
                f"{text!r} is not a duration: whole numbers each followed by y, m, d or h (e.g. 7d, 1y6m, 36h)"
            )
        return cls(years=parts.get("y", 0), months=parts.get("m", 0), days=parts.get("d", 0), hours=parts.get("h", 0))

    @property
    def zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:  # restic's Duration.String(): the reasons quote it
        out = ""
        for value, unit in ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")):
            if value:
                out += f"{value}{unit}"
        return out


def _go_cutoff(latest: datetime, d: Duration) -> timedelta | None:
    """``latest.AddDate(-y, -m, -d).Add(-h hours)`` as the time since the epoch, or None
    when it lies before year 1 (Go would go on counting backwards: every snapshot is newer).

    AddDate works on latest's wall clock in latest's own zone, normalises the month and then
    the day (Mar 31 - 1m = "Feb 31" = Mar 2), and maps the wall time back to an instant the way
    Go's ``time.Date`` does (look up the offset at the wall time read as UTC, then at the
    resulting instant), which matters when latest carries a zone with DST rather than a fixed
    offset."""
    tz = latest.tzinfo
    try:
        months = latest.year * 12 + (latest.month - 1) - d.years * 12 - d.months
        year, month0 = divmod(months, 12)
        if year < 1:
            return None
        day = date(year, month0 + 1, 1) + timedelta(days=latest.day - 1 - d.days)
        wall = datetime(
            day.year, day.month, day.day, latest.hour, latest.minute, latest.second, latest.microsecond, tzinfo=UTC
        )
        if tz is None or isinstance(tz, timezone):  # a fixed offset
            offset = latest.utcoffset() or timedelta(0)
        else:
            first = wall.astimezone(tz).utcoffset() or timedelta(0)
            offset = (wall - first).astimezone(tz).utcoffset() or timedelta(0)
        instant = wall - offset - timedelta(hours=d.hours)
    except (OverflowError, ValueError):  # before year 1
        return None
    return instant - _EPOCH


# --- the policy ---------------------------------------------------------------------------


def _count(name: str, value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise PolicyError(name, "must be a whole number ≥ -1 (-1 keeps all, 0 turns the rule off)")
    return value


def _duration(name: str, value: object) -> Duration:
    if value is None or value == "":
        return Duration()
    if isinstance(value, Duration):
        if min(value.years, value.months, value.days, value.hours) < 0:
            raise PolicyError(name, "must not be negative")
        return value
    if not isinstance(value, str):
        raise PolicyError(name, "must be a duration such as 7d, 24h or 1y6m")
    try:
        return Duration.parse(value)
    except ValueError as exc:
        raise PolicyError(name, str(exc)) from None


@dataclass(frozen=True)
class Policy:
    """What to keep. Counts: None or 0 = rule off, -1 = every bucket, n = the last n buckets.
    Durations: restic's "1y2m3d4h" strings (or ``Duration``); None, "" or zero = off. After
    construction they hold a ``Duration``, or None where off.
    ``keep_tags``: lists of tags; a snapshot carrying all tags of any one list is kept (a list
    holding "" matches untagged snapshots), like ``--keep-tag``.

    A policy that keeps nothing is refused: applied, it would remove every snapshot (restic
    refuses too)."""

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: Duration | str | None = None
    keep_within_hourly: Duration | str | None = None
    keep_within_daily: Duration | str | None = None
    keep_within_weekly: Duration | str | None = None
    keep_within_monthly: Duration | str | None = None
    keep_within_yearly: Duration | str | None = None
    keep_tags: Sequence[Sequence[str]] = ()
    counts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    within: Duration = field(init=False, repr=False, compare=False)
    withins: tuple[Duration, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        counts = tuple(_count(f"keep_{rule}", getattr(self, f"keep_{rule}")) for rule in COUNT_RULES)
        within = _duration("keep_within", self.keep_within)
        withins = tuple(_duration(f"keep_within_{rule}", getattr(self, f"keep_within_{rule}")) for rule in WITHIN_RULES)
        if isinstance(self.keep_tags, str) or not all(
            not isinstance(tags, str) and all(isinstance(t, str) for t in tags) for tags in self.keep_tags
        ):
            raise PolicyError("keep_tags", 'must be a list of lists of tags, e.g. [["monthly"], ["keep", "db"]]')
        tag_lists = tuple(tuple(tags) for tags in self.keep_tags)
        if not any(counts) and within.zero and all(d.zero for d in withins) and not tag_lists:
            raise PolicyError("", "empty: set at least one keep_* rule (an empty policy would remove every snapshot)")
        # Parsed forms, so that Policy(keep_within="7d") == Policy(keep_within=Duration(days=7)).
        object.__setattr__(self, "keep_within", None if within.zero else within)
        for rule, d in zip(WITHIN_RULES, withins, strict=True):
            object.__setattr__(self, f"keep_within_{rule}", None if d.zero else d)
        object.__setattr__(self, "keep_tags", tag_lists)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "within", within)
        object.__setattr__(self, "withins", withins)

    def forget_args(self) -> list[str]:
        """The same policy as ``restic forget`` options, so the offsite tier runs restic with
        exactly what the planner dry-ran. Pins are not policy: restic needs them as tags
        (``--keep-tag``) on the snapshots."""
        args: list[str] = []
        for rule, count in zip(COUNT_RULES, self.counts, strict=True):
            if count:
                args += [f"--keep-{rule}", "unlimited" if count < 0 else str(count)]
        if not self.within.zero:
            args += ["--keep-within", str(self.within)]
        for rule, d in zip(WITHIN_RULES, self.withins, strict=True):
            if not d.zero:
                args += [f"--keep-within-{rule}", str(d)]
        for tags in self.keep_tags:
            if any("," in tag for tag in tags):
                raise PolicyError("keep_tags", "a tag with a comma cannot be passed to restic's --keep-tag")
            args += ["--keep-tag", ",".join(tags)]
        return args


# --- input and output ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One snapshot as the planner sees it. ``time`` must be aware; its own offset or zone
    decides its buckets (restic stores the offset of the machine that made the snapshot).
    ``group``: snapshots are planned per group (one subvolume, or restic's host+paths).
    ``pinned``: kept whatever the policy says (a restore reading it, the source of tonight's
    offsite run, a send parent), with ``pin_reason`` shown as the reason."""

    id: str
    time: datetime
    group: Hashable = ""
    tags: tuple[str, ...] = ()
    pinned: bool = False
    pin_reason: str = ""

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError(f"snapshot {self.id}: time {self.time.isoformat()} has no offset or zone")

    def has_tags(self, tags: Sequence[str]) -> bool:
        """restic's ``HasTags``: all of ``tags``; a "" in the list matches an untagged snapshot."""
        for tag in tags:
            if tag == "" and not self.tags:
                return True
            if tag not in self.tags:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Counters:
    """What each count rule had left after this snapshot (-1: unlimited; 0: off or used up):
    the counters of restic's ``KeepReason`` (restic 0.18's ``forget --json`` does not print
    them; a page can, to show how much of each rule is used)."""

    last: int
    hourly: int
    daily: int
    weekly: int
    monthly: int
    yearly: int

    def as_dict(self) -> dict[str, int]:
        """As restic's KeepReason marshals them: zeros left out."""
        return {rule: n for rule in COUNT_RULES if (n := getattr(self, rule))}


@dataclass(frozen=True, slots=True)
class Kept:
    snapshot: Snapshot
    reasons: tuple[str, ...]
    counters: Counters


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """One group's outcome; ``keep`` and ``remove`` are newest first, as restic lists them.
    ``latest``: the newest snapshot not in the future, the anchor of the within rules."""

    group: Hashable
    keep: tuple[Kept, ...]
    remove: tuple[Snapshot, ...]
    latest: datetime | None


@dataclass(frozen=True, slots=True)
class Plan:
    policy: Policy
    now: datetime
    groups: tuple[GroupPlan, ...]  # in the order each group first appears in the input

    def group(self, key: Hashable) -> GroupPlan:
        for g in self.groups:
            if g.group == key:
                return g
        raise KeyError(key)

    @property
    def keep_ids(self) -> frozenset[str]:
        return frozenset(k.snapshot.id for g in self.groups for k in g.keep)

    @property
    def remove_ids(self) -> frozenset[str]:
        return frozenset(s.id for g in self.groups for s in g.remove)


# --- the algorithm --------------------------------------------------------------------------


def _week_keys(times: list[datetime]) -> list[int]:
    """The ordinal of each time's ISO-week Monday: one number per ISO week (Mon-Sun), so it
    names the same bucket as restic's ISO year+week."""
    return list(map(sub, map(datetime.toordinal, times), map(datetime.weekday, times)))


# Each bucket's key from the snapshot's own wall clock (datetime fields are the local wall
# time, whatever the zone), computed for a whole group through C-level maps: a Python call per
# snapshot per rule is what would make 10,000 snapshots slow.
_BUCKET_KEYS: dict[str, Callable[[list[datetime]], Sequence[Hashable]]] = {
    "hourly": lambda times: list(map(attrgetter("year", "month", "day", "hour"), times)),
    "daily": lambda times: list(map(datetime.toordinal, times)),
    "weekly": _week_keys,
    "monthly": lambda times: list(map(attrgetter("year", "month"), times)),
    "yearly": lambda times: list(map(attrgetter("year"), times)),
}


def plan(snapshots: Iterable[Snapshot], policy: Policy, *, now: datetime | None = None) -> Plan:
    """Apply ``policy`` to each group of ``snapshots``, as ``restic forget`` would at ``now``
    (default: the current time; it only decides which snapshots count as "in the future").
    Snapshot ids must be unique."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    everything = list(snapshots)
    if len({snap.id for snap in everything}) != len(everything):
        raise ValueError("snapshot ids must be unique")
    group_keys = list(map(attrgetter("group"), everything))
    groups: dict[Hashable, list[Snapshot]] = {}
    if len(set(group_keys)) == 1:
        groups[group_keys[0]] = everything
    else:
        for snap, group in zip(everything, group_keys, strict=True):
            members = groups.get(group)
            if members is None:
                members = groups[group] = []
            members.append(snap)
    return Plan(
        policy=policy,
        now=now,
        groups=tuple(_plan_group(key, members, policy, now - _EPOCH) for key, members in groups.items()),
    )


def _plan_group(key: Hashable, members: list[Snapshot], policy: Policy, now: timedelta) -> GroupPlan:
    """restic's ApplyPolicy for one group, taken rule by rule rather than snapshot by
    snapshot (the same outcome: each rule only looks at its own bucket keys). Reasons still come
    out in restic's order (pin, tags, within, count rules, within rules) because the rules are
    taken in that order."""
    # Exact instants (time since the epoch): never compare the datetimes themselves, which
    # Python does by wall clock when they share a zone, ignoring fold.
    instants = list(map(sub, map(attrgetter("time"), members), repeat(_EPOCH)))
    order = sorted(range(len(members)), key=instants.__getitem__, reverse=True)  # stable, like Go's
    snaps = [members[i] for i in order]
    ats = [instants[i] for i in order]  # newest first
    times = [snap.time for snap in snaps]
    size = len(snaps)
    final = size - 1
    # latest: the newest snapshot strictly before now (ats descend: skip those at or after now).
    future = bisect_right(ats, -now, key=neg)
    latest = times[future] if future < size else None

    def within(d: Duration) -> int:
        """How many snapshots, from the newest, are strictly newer than latest - d. With no
        snapshot before now Go's latest is its zero time (year 1), and a cutoff before year 1
        has every snapshot within."""
        cut = None if latest is None else _go_cutoff(latest, d)
        return size if cut is None else bisect_left(ats, -cut, key=neg)

    reasons: dict[int, list[str]] = {}

    def add(nr: int, reason: str) -> None:
        got = reasons.get(nr)
        if got is None:
            reasons[nr] = [reason]
        else:
            got.append(reason)

    tag_lists = policy.keep_tags
    for nr in range(size) if tag_lists else [nr for nr, snap in enumerate(snaps) if snap.pinned]:
        snap = snaps[nr]
        if snap.pinned:
            add(nr, f"pinned: {snap.pin_reason}" if snap.pin_reason else "pinned")
        for tags in tag_lists:
            if snap.has_tags(tags):
                add(nr, f"has tags [{', '.join(tags)}]")
    if not policy.within.zero:
        text = f"within {policy.within}"
        for nr in range(within(policy.within)):
            add(nr, text)

    keys: dict[str, Sequence[Hashable]] = {}

    def bucket_starts(rule: str, end: int) -> list[int]:
        """Where, among the newest ``end`` snapshots, a new bucket of ``rule`` starts: the
        newest snapshot of each bucket."""
        k = keys.get(rule)
        if k is None:
            k = keys[rule] = _BUCKET_KEYS[rule](times)
        return [0, *compress(range(1, end), map(ne, k[1:end], k[: end - 1]))] if end else []

    # Count rules; where each one used up a count, to give restic's counters afterwards.
    used: list[list[int]] = []
    for rule, count in zip(COUNT_RULES, policy.counts, strict=True):
        spent: list[int] = []
        used.append(spent)
        if count == 0:
            continue
        reason = f"{rule} snapshot"
        starts = list(range(size)) if rule == "last" else bucket_starts(rule, size)
        spent.extend(starts if count < 0 else starts[:count])
        for nr in spent:
            add(nr, reason)
        if size and spent[-1] != final and (count < 0 or len(spent) < count):
            add(final, f"oldest {reason}")  # count left at the oldest snapshot: keep it too
            spent.append(final)

    for rule, d in zip(WITHIN_RULES, policy.withins, strict=True):
        if d.zero:
            continue
        end = within(d)
        starts = bucket_starts(rule, end)
        for nr in starts:
            add(nr, f"{rule} within {d}")
        if end == size and size and starts[-1] != final:
            add(final, f"oldest {rule} within {d}")

    counts = policy.counts
    keep = []
    for nr in sorted(reasons):
        left = [
            count if count <= 0 else count - bisect_right(spent, nr) for count, spent in zip(counts, used, strict=True)
        ]
        keep.append(Kept(snapshot=snaps[nr], reasons=tuple(reasons[nr]), counters=Counters(*left)))
    remove = [snaps[nr] for nr in range(size) if nr not in reasons]
    return GroupPlan(group=key, keep=tuple(keep), remove=tuple(remove), latest=latest)
