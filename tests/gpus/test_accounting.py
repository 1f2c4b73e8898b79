"""Booked against used GPU-hours per member and team week, on constructed bookings and samples."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gpus.accounting import Figures, last_weeks, usage
from gpus.models import GPU, Booking, GpuSample
from gpus.services import booking_release
from portal.models import Host, User
from tests.factories import UserFactory
from tests.gpus.sampling import book, make_sampled, samples, workspace_of

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # the team's time zone is UTC here
WEEK = (MONDAY, MONDAY + timedelta(days=7))


def h(hours: float, day: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hours)


def week_of(user: User, week: tuple[datetime, datetime] = WEEK) -> Figures:
    return usage([user.pk], [week])[user.pk][0]


@pytest.fixture
def sampled(host: Host, gpus: list[GPU]) -> list[GPU]:
    make_sampled(host)
    return gpus


def test_the_figures_of_a_week_of_bookings_and_samples(
    sampled: list[GPU], alice: User, bob: User, host: Host, admin_user: User
) -> None:
    gpu0, gpu1 = sampled
    mine, bobs = workspace_of(alice, host), workspace_of(bob, host, port=2300)
    # Monday 10-14 on both GPUs: 8 GPU-hours booked, 2 h + 1 h used, 5 idle.
    book(alice, sampled, h(10), h(14), admin=admin_user)
    samples(gpu0, h(10), 120, utilization=80, workspaces=[mine])
    samples(gpu1, h(10), 60, utilization=80, workspaces=[mine])
    samples(gpu1, h(11), 60, utilization=2, workspaces=[mine])  # under the 5 % threshold: not use
    # Tuesday 10-16, released at 12: 2 booked, 4 released early.
    released = book(alice, [gpu0], h(10, 1), h(16, 1), admin=admin_user)
    booking_release(booking=released, actor=alice, now=h(12, 1))
    # Wednesday 10-12, a no-show released at 10:20.
    noshow = book(alice, [gpu0], h(10, 2), h(12, 2), admin=admin_user)
    booking_release(booking=noshow, actor=None, state=Booking.State.NO_SHOW, now=h(10 + 1 / 3, 2))
    # Cancelled before it began: counts nothing.
    book(alice, [gpu1], h(10, 3), h(20, 3), admin=admin_user, state=Booking.State.CANCELLED)
    # Thursday: alice's workspace on GPU 1 for 30 minutes without a booking; bob's work isn't hers.
    samples(gpu1, h(12, 3), 30, utilization=50, workspaces=[mine])
    samples(gpu0, h(12, 3), 90, utilization=99, workspaces=[bobs])
    # Sunday 22:00 to Monday 02:00 next week: 2 of its 4 hours are in this week.
    book(alice, [gpu1], h(22, 6), h(26, 6), admin=admin_user)

    figures = week_of(alice)
    assert figures.booked == pytest.approx(8 + 2 + 1 / 3 + 2)
    assert figures.released == pytest.approx(4 + 5 / 3)
    assert figures.noshows == 1
    assert figures.used_in_bookings == pytest.approx(3)
    assert figures.unbooked == pytest.approx(0.5)
    assert figures.used == pytest.approx(3.5)
    assert figures.idle == pytest.approx(8 + 2 + 1 / 3 + 2 - 3)
    assert usage([alice.pk], [(WEEK[1], WEEK[1] + timedelta(days=7))])[alice.pk][0].booked == pytest.approx(2)
    bob_figures = week_of(bob)
    assert (bob_figures.booked, bob_figures.used, bob_figures.unbooked) == (0, 1.5, 1.5)


def test_idle_is_never_negative(sampled: list[GPU], alice: User, host: Host, admin_user: User) -> None:
    mine = workspace_of(alice, host)
    book(alice, [sampled[0]], h(10), h(11), admin=admin_user)
    # Two of her workspaces' processes on the GPU in the same minute count that minute once.
    other = workspace_of(alice, host, port=2301, name="two")
    samples(sampled[0], h(10), 60, utilization=90, workspaces=[mine, other])
    figures = week_of(alice)
    assert (figures.booked, figures.used_in_bookings, figures.idle) == (1, 1, 0)


def test_without_a_sampled_host_use_is_not_measured(gpus: list[GPU], alice: User, admin_user: User) -> None:
    book(alice, gpus[:1], h(10), h(14), admin=admin_user)
    figures = week_of(alice)
    assert figures.booked == 4
    assert not figures.measured
    assert (figures.used, figures.idle, figures.unbooked) == (None, None, None)


def test_a_sampled_host_with_no_use_measures_zero(sampled: list[GPU], alice: User, admin_user: User) -> None:
    book(alice, sampled[:1], h(10), h(14), admin=admin_user)
    figures = week_of(alice)
    assert figures.measured
    assert (figures.used, figures.idle, figures.unbooked) == (0, 4, 0)


@pytest.mark.parametrize(
    ("zone", "monday", "hours"),
    [
        ("Europe/Berlin", date(2026, 3, 23), 167),  # clocks go forward on Sunday 29 March
        ("America/New_York", date(2026, 10, 26), 169),  # and back on Sunday 1 November
    ],
)
def test_a_week_with_a_clock_change_books_167_or_169_hours(
    zone: str, monday: date, hours: int, settings: object, sampled: list[GPU], alice: User, admin_user: User
) -> None:
    settings.TIME_ZONE = zone  # type: ignore[attr-defined]
    tz = ZoneInfo(zone)
    start = datetime.combine(monday, clock.min, tzinfo=tz)
    end = datetime.combine(monday + timedelta(days=7), clock.min, tzinfo=tz)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)
    book(alice, sampled[:1], start, end, admin=admin_user)
    # The sampler's minutes up to the week's last one, and one just after it (next week's).
    mine = workspace_of(alice, sampled[0].host)
    samples(sampled[0], end - timedelta(minutes=30), 31, utilization=90, workspaces=[mine])
    weeks = last_weeks(end - timedelta(minutes=1), 2)
    assert weeks[-1] == (start, end)
    assert weeks[0][1] == start
    figures = usage([alice.pk], [*weeks, (end, end + timedelta(days=7))])[alice.pk]
    assert [f.booked for f in figures] == [0, hours, 0]
    assert figures[1].used == pytest.approx(0.5)
    assert figures[2].unbooked == pytest.approx(1 / 60)


def test_last_weeks_are_the_eight_mondays_up_to_now_oldest_first() -> None:
    now = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)
    weeks = last_weeks(now)
    assert len(weeks) == 8
    assert weeks[-1] == (MONDAY, MONDAY + timedelta(days=7))
    assert weeks[0][0] == MONDAY - timedelta(weeks=7)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(weeks))


def test_a_week_of_fifty_members_on_eight_gpus_is_summed_quickly(host: Host, admin_user: User) -> None:
    make_sampled(host)
    gpus = [GPU.objects.create(host=host, index=i, name="H100") for i in range(8)]
    members = [UserFactory(username=f"m{i:02d}") for i in range(50)]
    spaces = [workspace_of(member, host, port=2300 + i) for i, member in enumerate(members)]
    for i, member in enumerate(members):  # each member books one GPU for a 3-hour slot a day
        for day in range(7):
            slot = h(3 * (i // 8) % 24, day)
            book(member, [gpus[i % 8]], slot, slot + timedelta(hours=3), admin=admin_user)
    rows = [
        GpuSample(
            gpu=gpus[g],
            at=MONDAY + timedelta(minutes=m),
            utilization=(m * 7 + g) % 100,
            memory_used=0,
            workspaces=[spaces[(m // 180 * 8 + g) % 50].pk],
        )
        for g in range(8)
        for m in range(10_000)
    ]
    GpuSample.objects.bulk_create(rows, batch_size=5_000)
    assert GpuSample.objects.count() == 80_000
    ids = [member.pk for member in members]
    with CaptureQueriesContext(connection) as queries:
        began = time.perf_counter()
        table = usage(ids, [WEEK])
        took = time.perf_counter() - began
    assert len(queries) <= 4
    assert took < 1.0, f"{took:.2f} s"
    assert sum(row[0].used or 0 for row in table.values()) == pytest.approx(
        sum(1 for r in rows if r.utilization >= 5) / 60
    )
    assert timezone.is_aware(WEEK[0])
