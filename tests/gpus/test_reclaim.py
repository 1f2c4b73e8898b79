"""No-show and idle reclaim of booked GPUs, on constructed bookings and samples. The clock is
passed in (the minute tick passes timezone.now()); the team's time zone is UTC here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import current_app

from gpus.models import GPU, Booking, BookingGPU, BookingPolicy
from gpus.reclaim import reclaim_pass
from portal.models import AuditEvent, Host, Notification, User
from tests.gpus.sampling import GIB, book, make_sampled, samples, workspace_of
from workspaces.models import Workspace

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # a Monday, 14:00


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def slack_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What would be posted to Slack: the task the worker would get once the transaction
    commits (Slack's servers are not here; tests run the commit hooks with
    django_capture_on_commit_callbacks)."""
    lines: list[str] = []

    def send_task(name: str, args: list[Any] | None = None, **kwargs: Any) -> None:
        assert name == "portal.tasks.slack_post_task"
        lines.append(args[0] if args else "")

    monkeypatch.setattr(current_app, "send_task", send_task)
    return lines


@pytest.fixture
def sampled(host: Host, gpus: list[GPU]) -> list[GPU]:
    make_sampled(host)
    return gpus


@pytest.fixture
def alice_ws(alice: User, host: Host) -> Workspace:
    return workspace_of(alice, host)


@pytest.fixture
def alices(alice: User, sampled: list[GPU], admin_user: User) -> Booking:
    """alice holds GPU 0 from 14:00 to 18:00; bob has it next, from 18:00."""
    return book(alice, sampled[:1], T0, at(240), admin=admin_user)


@pytest.fixture
def bobs(bob: User, sampled: list[GPU], admin_user: User) -> Booking:
    return book(bob, sampled[:1], at(240), at(360), admin=admin_user, state=Booking.State.BOOKED)


def notes(user: User) -> list[Notification]:
    return list(Notification.objects.filter(user=user).order_by("pk"))


def refreshed(booking: Booking) -> Booking:
    booking.refresh_from_db()
    return booking


# --- no-shows ---------------------------------------------------------------------------------


def test_a_booking_nobody_uses_is_warned_then_released_as_a_no_show(
    alices: Booking,
    bobs: Booking,
    sampled: list[GPU],
    alice: User,
    bob: User,
    slack_lines: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    samples(sampled[0], T0, 25, utilization=0)
    assert reclaim_pass(at(14)) == []
    assert reclaim_pass(at(15)) == [f"booking {alices.pk} (alice): not used yet, warned"]
    (warning,) = notes(alice)
    assert warning.title == "GPU 0 booked from 14:00 has not been used"
    assert warning.body == "It is released at 14:20 unless you use it."
    assert refreshed(alices).noshow_warned_at == at(15)
    assert reclaim_pass(at(19)) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert reclaim_pass(at(20)) == [f"booking {alices.pk} (alice): released as a no-show"]
    alices = refreshed(alices)
    assert (alices.state, alices.end, alices.released_end) == (Booking.State.NO_SHOW, at(20), at(240))
    assert not BookingGPU.objects.get(booking=alices).holds
    assert AuditEvent.objects.filter(action="booking.no_show", target_id=str(alices.pk)).count() == 1
    assert notes(alice)[-1].title == "GPU 0 booked from 14:00 released: not used"
    (told,) = notes(bob)
    assert told.title == "GPU 0 of local is free now"
    assert "Mon 2 Mar 18:00" in told.body
    assert slack_lines[-1] == (
        "GPU 0 of local free now (alice's booking from 14:00 was not used); next booked by bob from Mon 2 Mar 18:00."
    )
    assert reclaim_pass(at(21)) == []


def test_a_booking_used_before_the_deadline_is_not_warned(
    alices: Booking, sampled: list[GPU], alice: User, alice_ws: Workspace
) -> None:
    samples(sampled[0], at(3), 2, utilization=80, workspaces=[alice_ws])
    assert reclaim_pass(at(15)) == [f"booking {alices.pk} (alice): first used at {at(3).isoformat()}"]
    assert refreshed(alices).used_at == at(3)
    assert reclaim_pass(at(30)) == []
    assert notes(alice) == []


def test_a_booking_used_after_the_warning_is_not_released(
    alices: Booking, sampled: list[GPU], alice: User, alice_ws: Workspace
) -> None:
    reclaim_pass(at(15))
    samples(sampled[0], at(17), 1, utilization=60, workspaces=[alice_ws])
    assert reclaim_pass(at(20)) == [f"booking {alices.pk} (alice): first used at {at(17).isoformat()}"]
    assert refreshed(alices).state == Booking.State.ACTIVE
    assert len(notes(alice)) == 1


def test_someone_elses_work_on_the_gpu_is_not_the_holders_use(
    alices: Booking, sampled: list[GPU], bob: User, host: Host, alice: User
) -> None:
    samples(sampled[0], T0, 20, utilization=95, workspaces=[workspace_of(bob, host, port=2300)])
    reclaim_pass(at(15))
    assert refreshed(alices).used_at is None
    assert len(notes(alice)) == 1


def test_a_host_without_samples_is_never_judged(alices: Booking, host: Host, alice: User) -> None:
    host.gpu_host.source = "config"
    host.gpu_host.save()
    assert reclaim_pass(at(15)) == []
    assert reclaim_pass(at(120)) == []
    assert refreshed(alices).state == Booking.State.ACTIVE
    assert notes(alice) == []


def test_with_noshow_release_off_the_holder_is_only_warned_once(
    alices: Booking, policy: BookingPolicy, alice: User
) -> None:
    policy.noshow_release = False
    policy.save()
    reclaim_pass(at(15))
    assert reclaim_pass(at(20)) == []
    assert reclaim_pass(at(40)) == []
    assert refreshed(alices).state == Booking.State.ACTIVE
    (warning,) = notes(alice)
    assert warning.body.startswith("It stays yours")


def test_after_missed_ticks_the_warning_gives_the_full_grace_and_the_release_comes_once(
    alices: Booking, alice: User, bobs: Booking, bob: User
) -> None:
    # The worker was down from 14:10 to 14:40: the warning is late, but its deadline is not past.
    assert reclaim_pass(at(40)) == [f"booking {alices.pk} (alice): not used yet, warned"]
    assert notes(alice)[0].body == "It is released at 14:45 unless you use it."
    assert refreshed(alices).state == Booking.State.ACTIVE
    # Down again until 15:10: the release that was due happens, once.
    assert reclaim_pass(at(70)) == [f"booking {alices.pk} (alice): released as a no-show"]
    assert reclaim_pass(at(70)) == []
    assert reclaim_pass(at(71)) == []
    assert len(notes(alice)) == 2
    assert len(notes(bob)) == 1


def test_a_booking_ending_within_the_grace_is_not_warned(sampled: list[GPU], alice: User, admin_user: User) -> None:
    booking = book(alice, sampled[1:], T0, at(30), admin=admin_user)
    assert reclaim_pass(at(27)) == []
    assert refreshed(booking).noshow_warned_at is None


# --- idle GPUs --------------------------------------------------------------------------------


@pytest.fixture
def used_then_idle(alices: Booking, sampled: list[GPU], alice_ws: Workspace) -> Booking:
    """alice trains for 10 minutes, then the GPU sits at 0 % with nothing on it."""
    samples(sampled[0], T0, 10, utilization=90, workspaces=[alice_ws])
    samples(sampled[0], at(10), 200, utilization=0)
    reclaim_pass(at(10))
    return refreshed(alices)


def test_a_gpu_idle_for_the_whole_window_is_warned_then_released(
    used_then_idle: Booking,
    alice: User,
    bobs: Booking,
    bob: User,
    slack_lines: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    booking = used_then_idle
    assert reclaim_pass(at(54)) == []  # 14:09 was still busy
    assert reclaim_pass(at(55)) == [f"booking {booking.pk} (alice): idle, warned"]
    (warning,) = notes(alice)
    assert warning.title == "GPU 0 idle for 45 minutes"
    assert "since 14:10" in warning.body
    assert "(until Mon 2 Mar 18:00) is released at 15:40 unless you use it" in warning.body
    assert warning.url
    assert reclaim_pass(at(99)) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert reclaim_pass(at(100)) == [f"booking {booking.pk} (alice): idle, released"]
    booking = refreshed(booking)
    assert (booking.state, booking.end, booking.released_end) == (Booking.State.RELEASED, at(100), at(240))
    assert AuditEvent.objects.filter(action="booking.release", detail__reason="idle").count() == 1
    assert notes(bob)[0].title == "GPU 0 of local is free now"
    assert "alice's booking was idle" in slack_lines[-1]
    assert reclaim_pass(at(101)) == []


def test_missing_samples_are_unknown_not_idle(
    alices: Booking, sampled: list[GPU], alice_ws: Workspace, alice: User
) -> None:
    samples(sampled[0], T0, 5, utilization=90, workspaces=[alice_ws])
    # 10 of the 45 minutes have no sample: 35 < 80 % of 45.
    samples(sampled[0], at(5), 50, utilization=0, skip=range(20, 30))
    assert reclaim_pass(at(55)) == [f"booking {alices.pk} (alice): first used at {T0.isoformat()}"]
    assert refreshed(alices).idle_warned_at is None


def test_a_window_with_a_few_missing_minutes_is_still_judged(
    alices: Booking, sampled: list[GPU], alice_ws: Workspace
) -> None:
    samples(sampled[0], T0, 5, utilization=90, workspaces=[alice_ws])
    samples(sampled[0], at(5), 50, utilization=0, skip=range(20, 29))  # 36 of 45 minutes
    reclaim_pass(at(55))
    assert refreshed(alices).idle_warned_at == at(55)


def test_memory_alone_is_not_use(alices: Booking, sampled: list[GPU], alice_ws: Workspace) -> None:
    samples(sampled[0], T0, 5, utilization=90, workspaces=[alice_ws])
    samples(sampled[0], at(5), 50, utilization=0, memory=15 * GIB)  # preallocated, nobody computing
    reclaim_pass(at(55))
    assert refreshed(alices).idle_warned_at == at(55)


def test_a_process_of_the_holder_on_the_gpu_keeps_it_from_being_idle(
    alices: Booking, sampled: list[GPU], alice_ws: Workspace
) -> None:
    samples(sampled[0], T0, 5, utilization=90, workspaces=[alice_ws])
    samples(sampled[0], at(5), 50, utilization=0, workspaces=[alice_ws], memory=15 * GIB)
    reclaim_pass(at(55))
    assert refreshed(alices).idle_warned_at is None


def test_a_booking_is_idle_only_when_all_its_gpus_are(
    sampled: list[GPU], alice: User, alice_ws: Workspace, admin_user: User
) -> None:
    booking = book(alice, sampled, T0, at(240), admin=admin_user)
    samples(sampled[0], T0, 60, utilization=0)
    samples(sampled[1], T0, 60, utilization=70, workspaces=[alice_ws])
    reclaim_pass(at(55))
    booking = refreshed(booking)
    assert booking.used_at == T0
    assert booking.idle_warned_at is None


def test_use_after_the_idle_warning_clears_it(used_then_idle: Booking, sampled: list[GPU], alice_ws: Workspace) -> None:
    booking = used_then_idle
    reclaim_pass(at(55))
    sampled[0].samples.filter(at=at(60)).update(utilization=50, workspaces=[alice_ws.pk])
    assert reclaim_pass(at(61)) == [f"booking {booking.pk} (alice): used again, idle warning cleared"]
    assert refreshed(booking).idle_warned_at is None
    assert reclaim_pass(at(100)) == []  # 14:60 was busy: the new idle window runs from 15:01
    assert refreshed(booking).state == Booking.State.ACTIVE
    assert reclaim_pass(at(106)) == [f"booking {booking.pk} (alice): idle, warned"]


def test_with_idle_release_off_the_holder_is_only_warned(
    used_then_idle: Booking, policy: BookingPolicy, alice: User
) -> None:
    policy.idle_release = False
    policy.save()
    reclaim_pass(at(55))
    assert reclaim_pass(at(100)) == []
    assert reclaim_pass(at(150)) == []
    assert refreshed(used_then_idle).state == Booking.State.ACTIVE
    (warning,) = notes(alice)
    assert "It stays yours" in warning.body


def test_an_idle_pass_after_missed_ticks_warns_once_with_a_deadline_ahead(used_then_idle: Booking, alice: User) -> None:
    assert reclaim_pass(at(90)) == [f"booking {used_then_idle.pk} (alice): idle, warned"]
    assert "is released at 16:15" in notes(alice)[0].body
    assert reclaim_pass(at(134)) == []
    assert reclaim_pass(at(200)) == [f"booking {used_then_idle.pk} (alice): idle, released"]
    assert len(notes(alice)) == 2


def test_the_warnings_slack_copy_carries_the_link(
    alices: Booking, alice: User, slack_lines: list[str], django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        reclaim_pass(at(15))
    (warning,) = notes(alice)
    assert slack_lines == [
        f"alice: GPU 0 booked from 14:00 has not been used. It is released at 14:20 unless you use it. "
        f"{settings.PORTAL_URL}{warning.url}"
    ]


def test_a_warned_booking_that_ended_while_the_worker_was_down_is_recorded_quietly(
    sampled: list[GPU], alice: User, bob: User, admin_user: User
) -> None:
    booking = book(alice, sampled[1:], T0, at(60), admin=admin_user)
    book(bob, sampled[1:], at(60), at(120), admin=admin_user, state=Booking.State.BOOKED)
    reclaim_pass(at(15))
    assert reclaim_pass(at(75)) == [f"booking {booking.pk} (alice): ended unused, recorded as a no-show"]
    booking = refreshed(booking)
    assert (booking.state, booking.end, booking.released_end) == (Booking.State.NO_SHOW, at(60), None)
    assert len(notes(alice)) == 1
    assert notes(bob) == []


def test_an_idle_booking_that_ended_while_the_worker_was_down_is_left_to_end(
    used_then_idle: Booking, bob: User
) -> None:
    reclaim_pass(at(55))
    assert reclaim_pass(at(300)) == []
    assert refreshed(used_then_idle).state == Booking.State.ACTIVE  # the minute tick completes it
