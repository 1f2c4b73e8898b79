"""Booked against used GPU-hours, per member and team week (Monday 00:00 in the team's time
zone, so a week with a clock change lasts 167 or 169 hours).

- booked: bookings not cancelled, clipped to the week, times their GPUs (a booking released
  early counts up to its release);
- released early: what a released or no-show booking gave back (its old end minus its end);
- used: sample-minutes with one of the member's workspaces on a GPU at or above the policy's
  idle threshold; ``used_in_bookings`` only those on a GPU the member had booked then,
  ``unbooked`` the rest (possible on advisory hosts);
- idle: booked on sampled hosts minus used in bookings, never negative.

Use is measured only where GPUs are sampled (NVML). Where no host is, used, idle and
unbooked are None ("not measured"), never 0. Each sample is one GPU-minute.

The figures for any number of members take a fixed number of queries: the bookings in one,
the samples summed by the database in one per week.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection

from gpus.models import Booking, BookingGPU, BookingPolicy, GpuHost, GpuSample
from gpus.services import overlap, week_start
from workspaces.models import Workspace

Week = tuple[datetime, datetime]


@dataclass
class Figures:
    """One member's week, in GPU-hours (None: not measured)."""

    booked: float = 0.0
    released: float = 0.0
    noshows: int = 0
    used: float | None = None
    used_in_bookings: float | None = None
    unbooked: float | None = None
    idle: float | None = None
    booked_sampled: float = field(default=0.0, repr=False)  # the part of booked that samples can judge

    @property
    def measured(self) -> bool:
        return self.used is not None


def last_weeks(now: datetime, count: int = 8) -> list[Week]:
    """The ``count`` team weeks up to the one holding ``now``, oldest first."""
    weeks: list[Week] = []
    monday = week_start(now)
    following = week_start(monday + timedelta(days=8))
    for _ in range(count):
        weeks.append((monday, following))
        following, monday = monday, week_start(monday - timedelta(days=1))
    return weeks[::-1]


def measured() -> bool:
    """Whether any host's GPUs are sampled (only NVML gives samples)."""
    return GpuHost.objects.filter(source=GpuHost.Source.NVML).exists()


def usage(member_ids: Iterable[int], weeks: Sequence[Week]) -> dict[int, list[Figures]]:
    """Per member id, one Figures per week (in the order given)."""
    ids = sorted(set(member_ids))
    table = {member: [Figures() for _ in weeks] for member in ids}
    if not ids or not weeks:
        return table
    _add_bookings(table, ids, weeks)
    if measured():
        idle_percent = BookingPolicy.current().idle_percent
        for index, week in enumerate(weeks):
            _add_samples(table, ids, index, week, idle_percent)
    return table


def _add_bookings(table: dict[int, list[Figures]], ids: list[int], weeks: Sequence[Week]) -> None:
    lo, hi = weeks[0][0], weeks[-1][1]
    bookings = (
        Booking.objects.filter(user_id__in=ids, start__lt=hi)
        .exclude(state=Booking.State.CANCELLED)
        .exclude(end__lte=lo, released_end=None)
        .values_list("user_id", "start", "end", "released_end", "state", "gpu_count", "host__gpu_host__source")
    )
    for user_id, start, end, released_end, state, gpus, source in bookings:
        for figures, (w_lo, w_hi) in zip(table[user_id], weeks, strict=True):
            booked = _hours(overlap(start, end, w_lo, w_hi)) * gpus
            figures.booked += booked
            if source == GpuHost.Source.NVML:
                figures.booked_sampled += booked
            if released_end is not None:
                figures.released += _hours(overlap(end, released_end, w_lo, w_hi)) * gpus
            if state == Booking.State.NO_SHOW and w_lo <= start < w_hi:
                figures.noshows += 1


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _samples_sql(member_count: int) -> str:
    q = connection.ops.quote_name
    if connection.vendor == "postgresql":
        elements = "CROSS JOIN LATERAL jsonb_array_elements_text(s.workspaces) AS e(value)"
    else:
        elements = "CROSS JOIN json_each(s.workspaces) AS e"
    members = ", ".join(["%s"] * member_count)
    # Only table and column names and placeholders are put in; every value is a parameter.
    return f"""
        SELECT m.owner_id, COUNT(DISTINCT m.sample_id),
               COUNT(DISTINCT m.sample_id) FILTER (WHERE sp.user_id IS NOT NULL)
        FROM (
            SELECT DISTINCT s.id AS sample_id, s.gpu_id, s.at, w.owner_id
            FROM {q(GpuSample._meta.db_table)} s
            {elements}
            JOIN {q(Workspace._meta.db_table)} w ON w.id = CAST(e.value AS integer)
            WHERE s.at >= %s AND s.at < %s AND s.utilization >= %s AND w.owner_id IN ({members})
        ) m
        LEFT JOIN (
            SELECT b.user_id, bg.gpu_id, bg.start, bg.{q("end")} AS stop
            FROM {q(BookingGPU._meta.db_table)} bg
            JOIN {q(Booking._meta.db_table)} b ON b.id = bg.booking_id
            WHERE b.state <> %s AND bg.start < %s AND bg.{q("end")} > %s
        ) sp ON sp.user_id = m.owner_id AND sp.gpu_id = m.gpu_id AND sp.start <= m.at AND sp.stop > m.at
        GROUP BY m.owner_id
    """  # noqa: S608


def _add_samples(table: dict[int, list[Figures]], ids: list[int], index: int, week: Week, idle_percent: int) -> None:
    """Sum one week's samples per member in the database, then fill the measured figures."""
    lo, hi = (connection.ops.adapt_datetimefield_value(moment) for moment in week)
    params = [lo, hi, idle_percent, *ids, Booking.State.CANCELLED, hi, lo]
    with connection.cursor() as cursor:
        cursor.execute(_samples_sql(len(ids)), params)
        counts = {owner: (total, inside) for owner, total, inside in cursor.fetchall()}
    for member in ids:
        total, inside = counts.get(member, (0, 0))
        figures = table[member][index]
        figures.used = total / 60
        figures.used_in_bookings = inside / 60
        figures.unbooked = (total - inside) / 60
        figures.idle = max(0.0, figures.booked_sampled - figures.used_in_bookings)


def team_week(member_ids: Iterable[int], now: datetime) -> tuple[Week, dict[int, Figures]]:
    """The current week's figures of every member given."""
    week = last_weeks(now, 1)[0]
    return week, {member: rows[0] for member, rows in usage(member_ids, [week]).items()}
