"""The race the booking issue is done on: fifty members, each on their own PostgreSQL
connection, ask for the same GPUs at the same moment. Exactly one booking wins, the 49 others
are refused naming the winner, and no booking is left with only some of its GPUs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction

from gpus.models import GPU, Booking, BookingGPU
from gpus.services import BookingConflict, booking_create
from portal.models import Host, User
from tests.factories import UserFactory
from tests.gpus.apiclient import ApiClient, api_client
from tests.gpus.conftest import next_slot

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 50


def race(work: Callable[[int], Any], count: int = RACERS) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; each thread has its own
    database connection and closes it at the end. Returns each one's result or exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = work(i)
        except Exception as exc:  # the result under test, not a failure of the harness
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    return results


@pytest.fixture
def racers(db: None) -> list[User]:
    members = [UserFactory(username=f"racer{i}") for i in range(RACERS)]
    for member in members:
        member.quota.max_gpus = 2
        member.quota.save()
    return members


def assert_whole(booking: Booking, indexes: list[int]) -> None:
    assert sorted(BookingGPU.objects.filter(booking=booking).values_list("gpu__index", flat=True)) == indexes


def assert_no_partial_rows(expected_gpus: dict[int, int]) -> None:
    """Every booking has all the GPUs it was made with (and no others are left over)."""
    for booking in Booking.objects.all():
        assert BookingGPU.objects.filter(booking=booking).count() == expected_gpus[booking.pk]
    assert BookingGPU.objects.count() == sum(expected_gpus.values())


def test_fifty_members_booking_the_same_gpu_through_the_service(
    racers: list[User], host: Host, gpus: list[GPU]
) -> None:
    start = next_slot(2)

    def attempt(i: int) -> Booking:
        return booking_create(
            user=racers[i], host=host, start=start, end=start + timedelta(hours=2), gpu_indexes=[0], actor=racers[i]
        )

    results = race(attempt)
    won = [r for r in results if isinstance(r, Booking)]
    lost = [r for r in results if isinstance(r, BookingConflict)]
    assert len(won) == 1, [r for r in results if not isinstance(r, Booking | BookingConflict)]
    assert len(lost) == RACERS - 1
    winner = won[0]
    assert all(conflict.conflicting == winner for conflict in lost)
    assert all(winner.user.username in str(conflict) for conflict in lost)
    assert Booking.objects.count() == 1
    assert_whole(winner, [0])


def test_fifty_members_booking_the_same_gpu_through_the_api(racers: list[User], host: Host, gpus: list[GPU]) -> None:
    start = next_slot(2)
    body = {"gpu_indexes": [1], "start": start.isoformat(), "hours": 3}
    clients: list[ApiClient] = [api_client(member) for member in racers]

    results = race(lambda i: clients[i].send("post", "/bookings", body))
    statuses = sorted(response.status_code for response in results)
    assert statuses == [201] + [409] * (RACERS - 1), statuses
    winner = next(response.json() for response in results if response.status_code == 201)
    for response in results:
        if response.status_code == 409:
            conflicting = response.json()["conflicting"]
            assert (conflicting["id"], conflicting["member"], conflicting["gpus"]) == (
                winner["id"],
                winner["member"],
                [1],
            )
    assert Booking.objects.count() == 1
    assert_whole(Booking.objects.get(), [1])


@pytest.mark.parametrize("round_", range(3))  # a deadlock between racers shows in some rounds only
def test_overlapping_multi_gpu_bookings_leave_one_whole_winner(
    racers: list[User], host: Host, gpus: list[GPU], round_: int
) -> None:
    """A third ask for GPUs 0 and 1, a third for GPU 1, a third for any two: all need GPU 1."""
    start = next_slot(3 + round_)
    asks: list[dict[str, Any]] = [{"gpu_indexes": [0, 1]}, {"gpu_indexes": [1]}, {"count": 2}]

    def attempt(i: int) -> Booking:
        return booking_create(
            user=racers[i], host=host, start=start, end=start + timedelta(hours=1), actor=racers[i], **asks[i % 3]
        )

    results = race(attempt)
    won = [r for r in results if isinstance(r, Booking)]
    lost = [r for r in results if isinstance(r, BookingConflict)]
    assert len(won) == 1, [repr(r) for r in results if not isinstance(r, Booking | BookingConflict)]
    assert len(lost) == RACERS - 1, {repr(r) for r in results if not isinstance(r, BookingConflict)}
    winner = won[0]
    assert all(conflict.conflicting == winner for conflict in lost), {str(c) for c in lost}
    expected = 1 if asks[racers.index(winner.user) % 3] == {"gpu_indexes": [1]} else 2
    assert_no_partial_rows({winner.pk: expected})
    assert Booking.objects.count() == 1


def test_the_exclusion_constraint_alone_lets_only_one_of_two_raw_inserts_win(
    racers: list[User], host: Host, gpus: list[GPU]
) -> None:
    """Bypassing the service: two bookings' rows for GPU 0, written by two connections at once."""
    start = next_slot(4)
    end = start + timedelta(hours=2)
    bookings = [Booking.objects.create(user=racers[i], host=host, start=start, end=end) for i in range(2)]
    both_inserted = threading.Barrier(2, timeout=3)

    def insert(i: int) -> str:
        with transaction.atomic():
            later = start + timedelta(minutes=30 * i)
            BookingGPU.objects.create(booking=bookings[i], gpu=gpus[0], start=later, end=end)
            # Both get here only if the constraint did not make one wait for the other.
            with contextlib.suppress(threading.BrokenBarrierError):
                both_inserted.wait()
        return "inserted"

    results = race(insert, count=2)
    # The loser is refused by the constraint: as a violation, or, when both inserts reached
    # the constraint's check at once and each waits for the other, as a deadlock PostgreSQL
    # breaks by aborting one (why the service locks the GPUs' rows before inserting).
    refused = [r for r in results if isinstance(r, IntegrityError | OperationalError)]
    assert results.count("inserted") == 1, results
    assert len(refused) == 1, results
    assert isinstance(refused[0], IntegrityError) or "deadlock detected" in str(refused[0]), refused
    assert BookingGPU.objects.filter(gpu=gpus[0]).count() == 1
