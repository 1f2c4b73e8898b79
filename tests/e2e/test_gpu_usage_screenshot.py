"""Screenshots of the GPU usage page with a realistic team (tests/e2e/screenshots/, ignored
by git): a member's own weeks, and an admin's team view. Each checks the charts were drawn."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from gpus.models import GPU, Booking, GpuHost, GpuSample
from gpus.services import BookingConflict, booking_release, week_start
from portal.models import Host, User
from tests.factories import UserFactory
from tests.gpus.sampling import book, workspace_of

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SHOTS = Path(__file__).parent / "screenshots"
MEMBERS = {"alice": 0.75, "bob": 0.4, "carol": 0.9, "dave": 0.15, "erin": 0.55}  # share of booked time used


def _week_of_bookings(rng: random.Random, member: User, gpus: list[GPU], monday: datetime, now: datetime) -> None:
    """Two to four bookings on weekdays; some released early, the odd no-show; samples for
    the minutes the member's workspace really computed."""
    admin = User.objects.get(username="ada")
    ws = member.workspaces.first()
    busy_share = MEMBERS[member.username]
    for day in rng.sample(range(5), rng.randint(2, 4)):
        start = monday + timedelta(days=day, hours=rng.choice([8, 9, 10, 13, 14]))
        end = start + timedelta(hours=rng.choice([2, 3, 4, 6]))
        if end > now:
            continue
        picked = gpus[rng.randrange(len(gpus)) :][: rng.choice([1, 1, 2])]
        try:
            booking = book(member, picked, start, end, admin=admin)
        except BookingConflict:  # the random slot was taken: skip it, as a member would
            continue
        fate = rng.random()
        if fate < 0.05:
            booking_release(booking=booking, actor=None, state=Booking.State.NO_SHOW, now=start + timedelta(minutes=20))
            continue
        if fate < 0.3:
            booking_release(booking=booking, actor=member, now=start + (end - start) / 2)
        else:
            Booking.objects.filter(pk=booking.pk).update(state=Booking.State.COMPLETED)
        booking.refresh_from_db()
        minutes = int((booking.end - booking.start).total_seconds() // 60 * busy_share)
        GpuSample.objects.bulk_create(
            GpuSample(
                gpu=gpu,
                at=booking.start + timedelta(minutes=m),
                utilization=rng.randint(40, 98),
                memory_used=12 * 1024**3,
                workspaces=[ws.pk],
            )
            for gpu in picked
            for m in range(minutes)
        )


@pytest.fixture
def usage_team(db: None) -> User:
    host = Host.local()
    GpuHost.objects.update_or_create(host=host, defaults={"source": GpuHost.Source.NVML, "driver_version": "570.86"})
    gpus = [GPU.objects.create(host=host, index=i, name="NVIDIA H100 80GB HBM3", source="nvml") for i in range(4)]
    admin = UserFactory(username="ada", first_name="Ada", last_name="Lovelace", is_staff=True)
    rng = random.Random(7)
    now = timezone.now()
    for port, username in enumerate(MEMBERS, start=2300):
        member = UserFactory(username=username, first_name=username.capitalize())
        workspace_of(member, host, port=port)
    monday = week_start(now)
    for back in range(8):
        week = week_start(monday - timedelta(days=7 * back))
        for username in MEMBERS:
            _week_of_bookings(rng, User.objects.get(username=username), gpus, week, now)
    # bob's notebook on GPU 3 ten hours ago for two and a half hours, outside his bookings
    # (the host is advisory: every container sees every GPU).
    GpuHost.objects.filter(host=host).update(enforcement=GpuHost.Enforcement.ADVISORY)
    bob_ws = User.objects.get(username="bob").workspaces.first()
    evening = (now - timedelta(hours=10)).replace(second=0, microsecond=0)
    GpuSample.objects.bulk_create(
        GpuSample(gpu=gpus[3], at=evening + timedelta(minutes=m), utilization=60, memory_used=0, workspaces=[bob_ws.pk])
        for m in range(150)
    )
    return admin


def _shoot(page: Page, name: str) -> Path:
    page.wait_for_function("() => window.Chart && Chart.getChart('weeks-chart')")
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


def test_screenshot_of_a_members_gpu_usage(page: Page, sign_in_as: Callable[[User], None], usage_team: User) -> None:
    sign_in_as(User.objects.get(username="alice"))
    page.goto(reverse("gpus:usage"))
    expect(page.get_by_role("heading", level=2, name="Your last 8 weeks")).to_be_visible()
    expect(page.locator("#weeks-table tbody tr")).to_have_count(8)
    _shoot(page, "gpu-usage.png")


def test_screenshot_of_the_team_gpu_usage(page: Page, sign_in_as: Callable[[User], None], usage_team: User) -> None:
    sign_in_as(usage_team)
    page.goto(reverse("gpus:usage") + "?member=carol")
    expect(page.get_by_role("heading", level=2, name="carol's last 8 weeks")).to_be_visible()
    page.wait_for_function("() => window.Chart && Chart.getChart('team-chart')")
    _shoot(page, "gpu-usage-team.png")
