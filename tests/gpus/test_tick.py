"""The minute tick on the real database: bookings start and end by the clock, warnings go
out once, a missed tick catches up once, and workspaces are granted exactly their owner's
GPUs on an enforced host (all of them on an advisory one)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gpus.enforcement import desired_grants
from gpus.models import GPU, Booking, BookingGPU, GpuHost
from gpus.services import booking_create, slot_floor
from gpus.tick import booking_tick
from portal.models import AuditEvent, Host, Notification, Operation, User
from tests.gpus.conftest import next_slot
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def running_workspace(owner: User, host: Host, port: int) -> Workspace:
    return Workspace.objects.create(
        owner=owner,
        slug=owner.username,
        host=host,
        image="img",
        ssh_port=port,
        state=Workspace.State.RUNNING,
        desired_state=Workspace.Desired.RUNNING,
    )


def book(user: User, host: Host, start_h: int = 1, hours: int = 2, **kw: object) -> Booking:
    start = next_slot(start_h)
    return booking_create(user=user, host=host, start=start, end=start + timedelta(hours=hours), actor=user, **kw)


def test_a_booking_starts_and_ends_by_the_clock_once(alice: User, host: Host, gpus: list[GPU]) -> None:
    booking = book(alice, host)
    assert booking_tick(now=booking.start - timedelta(minutes=1)) == []
    booking_tick(now=booking.start)
    booking_tick(now=booking.start + timedelta(minutes=1))
    booking.refresh_from_db()
    assert booking.state == Booking.State.ACTIVE
    assert AuditEvent.objects.filter(action="booking.started", target_id=str(booking.pk)).count() == 1
    booking_tick(now=booking.end)
    booking_tick(now=booking.end)
    booking.refresh_from_db()
    assert booking.state == Booking.State.COMPLETED
    assert not BookingGPU.objects.filter(booking=booking, holds=True).exists()
    assert AuditEvent.objects.filter(action="booking.completed").count() == 1


def test_a_booking_missed_entirely_by_a_stopped_worker_is_completed(alice: User, host: Host, gpus: list[GPU]) -> None:
    booking = book(alice, host, hours=1)
    booking_tick(now=booking.end + timedelta(minutes=10))
    booking.refresh_from_db()
    assert booking.state == Booking.State.COMPLETED


def test_end_warnings_at_15_and_5_minutes_once_each(alice: User, host: Host, gpus: list[GPU]) -> None:
    booking = book(alice, host)
    booking_tick(now=booking.start)
    for minute in (16, 15, 14, 10, 5, 4, 1):
        booking_tick(now=booking.end - timedelta(minutes=minute))
    titles = list(Notification.objects.filter(user=alice).values_list("title", flat=True))
    assert len(titles) == 2
    assert "ends in 15 minutes" in titles[1]
    assert "ends in 5 minutes" in titles[0]


def test_a_missed_15_minute_warning_is_not_sent_late(alice: User, host: Host, gpus: list[GPU]) -> None:
    booking = book(alice, host)
    booking_tick(now=booking.end - timedelta(minutes=4))
    booking_tick(now=booking.end - timedelta(minutes=3))
    titles = list(Notification.objects.filter(user=alice).values_list("title", flat=True))
    assert len(titles) == 1
    assert "ends in 4 minutes" in titles[0]


def test_the_end_warning_says_whether_the_next_slot_is_free(
    alice: User, bob: User, host: Host, gpus: list[GPU]
) -> None:
    booking = book(alice, host, gpu_indexes=[0])
    book(bob, host, start_h=3, gpu_indexes=[0])
    booking_tick(now=booking.end - timedelta(minutes=15))
    note = Notification.objects.get(user=alice)
    assert "can't be extended" in note.body


def test_no_end_warning_when_the_holder_continues(alice: User, host: Host, gpus: list[GPU]) -> None:
    first = book(alice, host, hours=1, gpu_indexes=[0])
    book(alice, host, start_h=2, hours=1, gpu_indexes=[0])
    booking_tick(now=first.end - timedelta(minutes=15))
    assert not Notification.objects.filter(user=alice).exists()


def test_enforced_host_grants_the_holder_only_and_takes_it_back(
    alice: User, bob: User, host: Host, gpus: list[GPU]
) -> None:
    mine = running_workspace(alice, host, 2301)
    theirs = running_workspace(bob, host, 2302)
    booking = book(alice, host, gpu_indexes=[1])
    booking_tick(now=booking.start - timedelta(minutes=10))
    warning = Notification.objects.get(user=alice)
    assert "restarts then to get the GPU" in warning.body

    booking_tick(now=booking.start + timedelta(minutes=10))  # the tick at the start was missed
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.granted_gpus == [gpus[1].uuid]
    assert theirs.granted_gpus == []
    restart = Operation.objects.for_target(mine).get()
    assert restart.kind == "restart"
    assert restart.actor is None
    assert not Operation.objects.for_target(theirs).exists()
    # A pass while the restart is under way changes nothing and asks again later.
    assert all("busy" in line for line in booking_tick(now=booking.start + timedelta(minutes=11)))

    Operation.objects.update(state=Operation.State.SUCCEEDED)
    Workspace.objects.filter(pk=mine.pk).update(applied_gpus=[gpus[1].uuid])
    assert booking_tick(now=booking.start + timedelta(minutes=12)) == []  # as granted: nothing to do

    booking_tick(now=booking.end)
    mine.refresh_from_db()
    assert mine.granted_gpus == []
    assert Operation.objects.for_target(mine).in_progress().get().kind == "restart"
    assert AuditEvent.objects.filter(action="workspace.gpus_granted", target_id=str(mine.pk)).count() == 2


def test_a_gpu_held_without_a_booking_is_taken(alice: User, host: Host, gpus: list[GPU]) -> None:
    squatter = running_workspace(alice, host, 2303)
    Workspace.objects.filter(pk=squatter.pk).update(granted_gpus=[gpus[0].uuid], applied_gpus=[gpus[0].uuid])
    booking_tick(now=slot_floor(next_slot(0), timedelta(minutes=30)))
    squatter.refresh_from_db()
    assert squatter.granted_gpus == []
    assert Operation.objects.for_target(squatter).get().kind == "restart"


def test_advisory_host_lets_every_member_with_gpus_see_all(alice: User, bob: User, host: Host, gpus: list[GPU]) -> None:
    GpuHost.objects.filter(host=host).update(enforcement=GpuHost.Enforcement.ADVISORY)
    bob.quota.max_gpus = 0
    bob.quota.save()
    mine = running_workspace(alice, host, 2304)
    theirs = running_workspace(bob, host, 2305)
    grants = desired_grants(host, next_slot(0))
    assert grants[mine] == [gpu.uuid for gpu in gpus]
    assert grants[theirs] == []


def test_a_suspended_members_bookings_end_and_their_workspace_loses_the_gpu(
    alice: User, admin_user: User, host: Host, gpus: list[GPU]
) -> None:
    from portal.services import member_suspend

    mine = running_workspace(alice, host, 2306)
    now_booking = book(alice, host, start_h=0, gpu_indexes=[0])
    later = book(alice, host, start_h=5, gpu_indexes=[0])
    booking_tick(now=now_booking.start + timedelta(minutes=1))
    mine.refresh_from_db()
    assert mine.granted_gpus == [gpus[0].uuid]
    member_suspend(user=alice, actor=admin_user)
    booking_tick(now=now_booking.start + timedelta(minutes=2))
    now_booking.refresh_from_db()
    later.refresh_from_db()
    assert now_booking.state == Booking.State.RELEASED
    assert later.state == Booking.State.CANCELLED
    mine.refresh_from_db()
    assert mine.granted_gpus == []
