"""The booking service's rules, each refusal naming its rule, on the real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gpus.models import GPU, Booking, BookingGPU, BookingPolicy
from gpus.services import (
    BookingConflict,
    BookingDenied,
    BookingError,
    booking_cancel,
    booking_change,
    booking_create,
    booking_extend,
    booking_release,
)
from portal.models import AuditEvent, Host, User
from tests.gpus.conftest import next_slot

pytestmark = pytest.mark.django_db


def book(user: User, host: Host, start_h: int = 1, hours: int = 2, **kw: object) -> Booking:
    start = next_slot(start_h)
    return booking_create(user=user, host=host, start=start, end=start + timedelta(hours=hours), actor=user, **kw)


def test_a_booking_holds_one_row_per_gpu_and_is_audited(alice: User, host: Host, gpus: list[GPU]) -> None:
    alice.quota.max_gpus = 2
    alice.quota.save()
    booking = book(alice, host, count=2)
    assert sorted(BookingGPU.objects.filter(booking=booking).values_list("gpu__index", flat=True)) == [0, 1]
    event = AuditEvent.objects.get(action="booking.create")
    assert event.actor == alice
    assert event.detail["gpus"] == [0, 1]


def test_overlap_on_the_same_gpu_is_refused_naming_the_booking(
    alice: User, bob: User, host: Host, gpus: list[GPU]
) -> None:
    first = book(alice, host, gpu_indexes=[0])
    with pytest.raises(BookingConflict) as refused:
        book(bob, host, start_h=2, gpu_indexes=[0])
    assert refused.value.conflicting == first
    assert "alice" in str(refused.value)
    assert f"booking {first.pk}" in str(refused.value)
    assert Booking.objects.count() == 1


def test_any_free_gpu_picks_the_other_one(alice: User, bob: User, host: Host, gpus: list[GPU]) -> None:
    book(alice, host, gpu_indexes=[0])
    theirs = book(bob, host)
    assert [g.index for g in theirs.gpu_list] == [1]


def test_back_to_back_bookings_do_not_clash(alice: User, bob: User, host: Host, gpus: list[GPU]) -> None:
    book(alice, host, start_h=1, hours=2, gpu_indexes=[0])
    later = book(bob, host, start_h=3, hours=2, gpu_indexes=[0])
    assert later.pk


def test_the_constraint_refuses_an_overlap_written_around_the_service(alice: User, host: Host, gpus: list[GPU]) -> None:
    from django.db import IntegrityError, transaction

    booking = book(alice, host, gpu_indexes=[0])
    with pytest.raises(IntegrityError), transaction.atomic():
        BookingGPU.objects.create(
            booking=book(alice, host, start_h=10, gpu_indexes=[1]), gpu=gpus[0], start=booking.start, end=booking.end
        )


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"minute": 10}, "slot"),
        ({"hours": 200}, "length"),
        ({"start_h": 24 * 40}, "horizon"),
        ({"start_h": -3}, "past"),
        ({"count": 2}, "quota"),
    ],
)
def test_each_policy_rule_refuses_by_name(alice: User, host: Host, gpus: list[GPU], change: dict, rule: str) -> None:
    start = next_slot(change.get("start_h", 1)) + timedelta(minutes=change.get("minute", 0))
    with pytest.raises(BookingError) as refused:
        booking_create(
            user=alice,
            host=host,
            start=start,
            end=start + timedelta(hours=change.get("hours", 2)),
            count=change.get("count", 1),
            actor=alice,
        )
    assert refused.value.rule == rule
    assert Booking.objects.count() == 0


def test_weekly_gpu_hours_cap(alice: User, host: Host, gpus: list[GPU], policy: BookingPolicy) -> None:
    policy.max_hours_per_week = 3
    policy.save()
    start = next_slot(1)
    monday = start - timedelta(days=start.weekday())
    with pytest.raises(BookingError) as refused:
        booking_create(
            user=alice,
            host=host,
            start=monday.replace(hour=0) + timedelta(days=7),
            end=monday.replace(hour=0) + timedelta(days=7, hours=4),
            actor=alice,
        )
    assert refused.value.rule == "week"


def test_admin_override_skips_the_policy_not_other_bookings(
    alice: User, bob: User, admin_user: User, host: Host, gpus: list[GPU]
) -> None:
    start = next_slot(1)
    booking = booking_create(
        user=bob,
        host=host,
        start=start,
        end=start + timedelta(hours=300),
        actor=admin_user,
        override=True,
        gpu_indexes=[0],
    )
    assert booking.override
    with pytest.raises(BookingConflict):
        booking_create(
            user=alice,
            host=host,
            start=start,
            end=start + timedelta(hours=1),
            actor=admin_user,
            override=True,
            gpu_indexes=[0],
        )


def test_change_extend_release_cancel(alice: User, bob: User, host: Host, gpus: list[GPU]) -> None:
    mine = book(alice, host, gpu_indexes=[0])
    book(bob, host, start_h=3, gpu_indexes=[0])
    with pytest.raises(BookingConflict):
        booking_extend(booking=mine, minutes=60, actor=alice)
    with pytest.raises(BookingDenied):
        booking_change(booking=mine, start=mine.start, end=mine.end - timedelta(hours=1), actor=bob)
    shorter = booking_change(booking=mine, start=mine.start, end=mine.end - timedelta(hours=1), actor=alice)
    assert shorter.duration == timedelta(hours=1)
    assert AuditEvent.objects.filter(action="booking.change").get().detail["old"][1] != shorter.end.isoformat()
    cancelled = booking_cancel(booking=mine, actor=alice)
    assert cancelled.state == Booking.State.CANCELLED
    assert not BookingGPU.objects.filter(booking=mine, holds=True).exists()
    again = book(bob, host, start_h=1, gpu_indexes=[0])  # the freed slot is bookable
    released = booking_release(booking=again, actor=bob, now=again.start + timedelta(minutes=30))
    assert released.state == Booking.State.RELEASED
    assert released.released_end == again.end
    assert released.end == again.start + timedelta(minutes=30)


def test_shared_bookings_share_up_to_the_policys_number(
    alice: User, bob: User, admin_user: User, host: Host, gpus: list[GPU], policy: BookingPolicy
) -> None:
    with pytest.raises(BookingError) as refused:
        book(alice, host, gpu_indexes=[0], shared=True)
    assert refused.value.rule == "shared"
    policy.shared_slots = 2
    policy.save()
    book(alice, host, gpu_indexes=[0], shared=True)
    book(bob, host, gpu_indexes=[0], shared=True)
    carol = User.objects.create(username="carol", email="carol@corp.example", status=User.Status.ACTIVE)
    from portal.models import Quota

    Quota.objects.create(user=carol, **Quota.team_defaults())
    with pytest.raises(BookingConflict) as full:
        book(carol, host, gpu_indexes=[0], shared=True)
    assert "shared by 2 members" in str(full.value)
    with pytest.raises(BookingConflict):  # an exclusive booking can't join shared ones
        book(carol, host, gpu_indexes=[0])
    assert book(carol, host, shared=True).gpu_list == [gpus[1]]  # "any" picks the GPU with room


def test_an_exclusive_hold_keeps_shared_bookings_out(
    alice: User, bob: User, host: Host, gpus: list[GPU], policy: BookingPolicy
) -> None:
    policy.shared_slots = 4
    policy.save()
    first = book(alice, host, gpu_indexes=[0])
    with pytest.raises(BookingConflict) as refused:
        book(bob, host, gpu_indexes=[0], shared=True)
    assert refused.value.conflicting == first


def test_a_multi_gpu_booking_is_all_or_nothing(alice: User, bob: User, host: Host, gpus: list[GPU]) -> None:
    bob.quota.max_gpus = 2
    bob.quota.save()
    book(alice, host, gpu_indexes=[1])
    with pytest.raises(BookingConflict) as refused:
        book(bob, host, count=2)
    assert "Only 1 of 2 GPUs is free" in str(refused.value)
    assert not Booking.objects.filter(user=bob).exists()
    assert BookingGPU.objects.count() == 1


def test_naive_times_and_suspended_members_are_refused(alice: User, host: Host, gpus: list[GPU]) -> None:
    start = next_slot(1)
    with pytest.raises(BookingError) as naive:
        booking_create(
            user=alice,
            host=host,
            start=start.replace(tzinfo=None),
            end=start.replace(tzinfo=None) + timedelta(hours=1),
            actor=alice,
        )
    assert naive.value.rule == "timezone"
    alice.is_active = False
    alice.save()
    with pytest.raises(BookingError) as suspended:
        book(alice, host)
    assert suspended.value.rule == "member"


def test_a_started_booking_moves_only_its_end(alice: User, host: Host, gpus: list[GPU]) -> None:
    booking = book(alice, host, start_h=0, hours=2)
    now = booking.start + timedelta(minutes=40)
    with pytest.raises(BookingError) as moved:
        booking_change(booking=booking, start=booking.start + timedelta(hours=1), end=booking.end, actor=alice, now=now)
    assert moved.value.rule == "started"
    with pytest.raises(BookingError) as ended:
        booking_change(
            booking=booking, start=booking.start, end=booking.start + timedelta(minutes=30), actor=alice, now=now
        )
    assert ended.value.rule == "past"
    longer = booking_change(
        booking=booking, start=booking.start, end=booking.end + timedelta(hours=1), actor=alice, now=now
    )
    assert longer.duration == timedelta(hours=3)
    released = booking_release(booking=longer, actor=alice, now=now)
    with pytest.raises(BookingError) as final:
        booking_extend(booking=released, minutes=30, actor=alice)
    assert final.value.rule == "final"


def test_a_hold_that_slips_past_the_check_is_refused_by_the_constraint_and_named(
    alice: User, bob: User, host: Host, gpus: list[GPU], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if another writer took GPU 0 between the service's check and its insert: the
    exclusion constraint refuses the insert, nothing of the request is left, and the member
    is told whose booking won."""
    from gpus import services

    theirs = book(bob, host, gpu_indexes=[0])
    monkeypatch.setattr(services, "_rows_by_gpu", lambda gpus, span, excluding: {g.pk: [] for g in gpus})
    with pytest.raises(services.BookingRaced) as refused:
        book(alice, host, gpu_indexes=[0])
    assert refused.value.conflicting == theirs
    assert "bob" in str(refused.value)
    assert list(Booking.objects.values_list("user__username", flat=True)) == ["bob"]
    assert not AuditEvent.objects.filter(action="booking.create", actor=alice).exists()
