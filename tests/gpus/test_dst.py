"""Times are stored in UTC and read in the team's zone: a booking across the autumn change
lasts its real length, and a week (Monday to Monday) is 169 hours in that week."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gpus.models import GPU, BookingPolicy
from gpus.services import BookingError, booking_create, on_grid, week_start, weeks_touched
from portal.models import Host, User

pytestmark = pytest.mark.django_db

AUTUMN = [  # wall-clock evenings before the change (no zone: each test gives its own)
    ("Europe/Berlin", datetime(2026, 10, 24, 22)),  # noqa: DTZ001
    ("America/New_York", datetime(2026, 10, 31, 22)),  # noqa: DTZ001
]


@pytest.mark.parametrize(("zone", "evening"), AUTUMN)
def test_a_booking_across_the_autumn_change_lasts_its_real_length(
    settings, zone: str, evening: datetime, alice: User, host: Host, gpus: list[GPU]
) -> None:
    settings.TIME_ZONE = zone
    tz = ZoneInfo(zone)
    start = evening.replace(tzinfo=tz)
    end = (evening + timedelta(hours=8)).replace(tzinfo=tz)  # 06:00 the next morning, wall clock
    booking = booking_create(user=alice, host=host, start=start, end=end, actor=alice, now=start - timedelta(days=1))
    booking.refresh_from_db()
    assert booking.end - booking.start == timedelta(hours=9)
    assert booking.start.utcoffset() == timedelta(0)  # stored in UTC


@pytest.mark.parametrize(("zone", "evening"), AUTUMN)
def test_the_week_of_the_change_has_169_hours_and_the_cap_counts_real_hours(
    settings, zone: str, evening: datetime, alice: User, host: Host, gpus: list[GPU], policy: BookingPolicy
) -> None:
    settings.TIME_ZONE = zone
    tz = ZoneInfo(zone)
    start = evening.replace(tzinfo=tz)
    monday, next_monday = weeks_touched(start, start + timedelta(hours=1))[0]
    assert next_monday - monday == timedelta(hours=169)
    assert week_start(start) == monday
    policy.max_hours_per_week = 8
    policy.save()
    with pytest.raises(BookingError) as refused:  # 8 wall-clock hours are 9 real ones
        booking_create(
            user=alice,
            host=host,
            start=start,
            end=(evening + timedelta(hours=8)).replace(tzinfo=tz),
            actor=alice,
            now=start - timedelta(days=1),
        )
    assert refused.value.rule == "week"


def test_the_grid_is_the_local_clock(settings) -> None:
    settings.TIME_ZONE = "Asia/Kolkata"  # UTC+05:30: local :00 is UTC :30
    tz = ZoneInfo("Asia/Kolkata")
    assert on_grid(datetime(2026, 12, 1, 14, 0, tzinfo=tz), timedelta(minutes=60))
    assert not on_grid(datetime(2026, 12, 1, 14, 30, tzinfo=tz), timedelta(minutes=60))
