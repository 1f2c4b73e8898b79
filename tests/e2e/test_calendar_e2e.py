"""The GPU calendar in a real Chromium, in the team's time zone Europe/Berlin: drag over free
time to book, see a conflict explained and the booking in the way outlined, move a booking
by dragging it, release it from its details. Screenshots of a realistic week go to
tests/e2e/screenshots/ (gpu-calendar-week.png, gpu-calendar-conflict.png)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from gpus.models import GPU, Booking, BookingGPU, GpuHost
from gpus.services import booking_create
from portal.models import Host, User
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SHOTS = Path(__file__).parent / "screenshots"
ZONE = "Europe/Berlin"


@pytest.fixture
def berlin(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TIME_ZONE = ZONE


def _book(user: User, host: Host, start: datetime, hours: float, gpus: list[int], note: str = "") -> Booking:
    return booking_create(
        user=user, host=host, start=start, end=start + timedelta(hours=hours), gpu_indexes=gpus, note=note, actor=user
    )


def _past(user: User, host: Host, gpu: GPU, start: datetime, hours: int) -> None:
    """A booking that already ended (the service books nothing in the past)."""
    end = start + timedelta(hours=hours)
    booking = Booking.objects.create(user=user, host=host, start=start, end=end, state=Booking.State.COMPLETED)
    BookingGPU.objects.create(booking=booking, gpu=gpu, start=start, end=end, holds=False)


def _slot(days: int, hour: int) -> datetime:
    """``hour`` o'clock ``days`` from today, in the team's zone."""
    today = timezone.localdate()
    return timezone.make_aware(datetime.combine(today + timedelta(days=days), datetime.min.time()).replace(hour=hour))


@pytest.fixture
def week(berlin: None, db: None) -> dict[str, User]:
    """Two RTX 5080s, four members, bookings on both GPUs this week (a few already over)."""
    host = Host.local()
    GpuHost.objects.update_or_create(host=host, defaults={"source": GpuHost.Source.CONFIG})
    gpus = [GPU.objects.create(host=host, index=i, uuid=f"GPU-0000000{i}-aaaa", name="RTX 5080") for i in range(2)]
    people = {name: UserFactory(username=name) for name in ("alice", "bob", "carol", "dan")}
    for user in people.values():
        user.quota.max_gpus = 2
        user.quota.save()
    _past(people["carol"], host, gpus[0], _slot(-1, 9), 6)
    _past(people["dan"], host, gpus[1], _slot(-1, 13), 4)
    _book(people["bob"], host, _slot(1, 9), 5, [0], "ViT fine-tune")
    _book(people["carol"], host, _slot(1, 11), 6, [1])
    _book(people["alice"], host, _slot(2, 10), 4, [0, 1], "ablation sweep")
    _book(people["dan"], host, _slot(3, 14), 3, [1])
    return people


def _shoot(page: Page, name: str) -> Path:
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
    return path


def _column(page: Page, day: datetime):  # type: ignore[no-untyped-def]
    return page.locator(f'[data-date="{timezone.localdate(day).isoformat()}"]').last


def _drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0], start[1] + 5, steps=3)
    page.mouse.move(*end, steps=12)
    page.mouse.up()


def test_the_week_shows_each_gpu_with_its_holder_and_the_members_own_bookings_stand_out(
    page: Page, sign_in_as: Callable[[User], None], week: dict[str, User]
) -> None:
    sign_in_as(week["alice"])
    page.goto("/gpus/")
    page.evaluate("day => window.gpuCalendar.gotoDate(day)", timezone.localdate(_slot(1, 0)).isoformat())
    expect(page.locator(".gpu-ev-own").first).to_be_visible()
    expect(page.locator(".gpu-ev").filter(has_text="GPU 0 · bob")).to_be_visible()
    expect(page.locator(".gpu-ev-own")).to_have_count(2)  # alice's two-GPU booking
    _shoot(page, "gpu-calendar-week.png")
    # Keyboard: an event is a button; Enter opens its details, Escape closes them.
    page.locator(".gpu-ev").filter(has_text="bob").focus()
    page.keyboard.press("Enter")
    details = page.locator("#booking-dialog")
    expect(details).to_contain_text("bob")
    expect(details.get_by_role("button", name="Release now")).to_be_hidden()  # not hers
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()


def _point(page: Page, day: datetime, clock: str, *, lane: float = 0.5) -> tuple[float, float]:
    """The screen point of ``clock`` (HH:MM:SS) in ``day``'s column, a little below the line."""
    row = page.locator(f'[data-time="{clock}"]').last
    column = page.locator(f'[data-date="{timezone.localdate(day).isoformat()}"]').last.bounding_box()
    line = row.bounding_box()
    assert column is not None
    assert line is not None
    return column["x"] + column["width"] * lane, line["y"] + 4


def _show(page: Page, day: datetime) -> None:
    """``day``'s week with 11:00 to midnight on the screen, so the drags need no scrolling."""
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.evaluate("day => window.gpuCalendar.gotoDate(day)", timezone.localdate(day).isoformat())
    expect(page.locator(f'[data-date="{timezone.localdate(day).isoformat()}"]').last).to_be_visible()
    _frame(page)


def _frame(page: Page) -> None:
    """11:00 at the top of the calendar's scroller, the calendar at the top of the window."""
    page.evaluate("() => window.gpuCalendar.scrollToTime('11:00:00')")
    page.evaluate("() => window.scrollTo(0, document.querySelector('#calendar').offsetTop - 10)")


def test_a_member_books_by_dragging_sees_a_conflict_explained_and_moves_her_booking(
    page: Page, sign_in_as: Callable[[User], None], week: dict[str, User]
) -> None:
    alice = week["alice"]
    sign_in_as(alice)
    page.goto("/gpus/")
    tomorrow = _slot(1, 0)
    _show(page, tomorrow)

    # Drag over 18:00-20:00 tomorrow, pick GPU 0, book.
    _drag(page, _point(page, tomorrow, "18:00:00"), _point(page, tomorrow, "19:30:00"))
    dialog = page.locator("#book-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("GPUs").select_option("i:0")
    dialog.get_by_label("Note").fill("eval run")
    dialog.get_by_role("button", name="Book").click()
    expect(page.locator("#cal-status")).to_contain_text("Booked GPU 0")
    expect(dialog).to_be_hidden()
    mine = Booking.objects.get(user=alice, note="eval run")
    assert (timezone.localtime(mine.start).hour, timezone.localtime(mine.end).hour) == (18, 20)
    expect(page.locator(".gpu-ev-own").filter(has_text="eval run")).to_be_visible()

    # From free time at 17:00 up into carol's booking of GPU 1 (11:00-17:00).
    _drag(page, _point(page, tomorrow, "17:00:00"), _point(page, tomorrow, "16:00:00"))
    expect(dialog).to_be_visible()
    dialog.get_by_label("GPUs").select_option("i:1")
    dialog.get_by_role("button", name="Book").click()
    error = dialog.locator(".dlg-error")
    expect(error).to_contain_text("GPU 1 is booked by carol")
    expect(page.locator("#cal-status")).to_contain_text("GPU 1 is booked by carol")
    expect(page.locator(".gpu-ev-conflict").filter(has_text="carol")).to_have_count(1)
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#cal-status")).to_contain_text("outlined in red")  # stays after the dialog
    expect(page.locator("#my-bookings")).to_contain_text("eval run")
    _shoot(page, "gpu-calendar-conflict.png")
    assert Booking.objects.filter(user=alice).count() == 2

    # Drag her new booking an hour later.
    _frame(page)
    event = page.locator(".gpu-ev-own").filter(has_text="eval run")
    box = event.bounding_box()
    assert box is not None
    start = (box["x"] + box["width"] / 2, box["y"] + 12)
    target_y = _point(page, tomorrow, "19:00:00")[1] + 8
    _drag(page, start, (start[0], target_y))
    expect(page.locator("#cal-status")).to_contain_text(f"Moved booking {mine.pk}")
    mine.refresh_from_db()
    assert (timezone.localtime(mine.start).hour, timezone.localtime(mine.end).hour) == (19, 21)


def test_a_member_releases_her_booking_under_way_from_its_details(
    page: Page, sign_in_as: Callable[[User], None], week: dict[str, User]
) -> None:
    alice = week["alice"]
    now = timezone.localtime()
    start = now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)
    running = _book(alice, Host.local(), start, 2, [1], "debugging")
    sign_in_as(alice)
    page.goto("/gpus/")
    event = page.locator(".gpu-ev-own").filter(has_text="debugging")
    event.scroll_into_view_if_needed()
    event.click()
    details = page.locator("#booking-dialog")
    expect(details).to_contain_text("Under way")
    expect(details.get_by_role("button", name="Cancel booking")).to_be_hidden()
    details.get_by_role("button", name="Release now").click()
    expect(page.locator("#cal-status")).to_contain_text(f"Released booking {running.pk}")
    running.refresh_from_db()
    assert running.state == Booking.State.RELEASED
    assert running.end <= timezone.now()


def test_a_refused_move_snaps_back_and_says_why(
    page: Page, sign_in_as: Callable[[User], None], week: dict[str, User]
) -> None:
    alice = week["alice"]
    mine = Booking.objects.get(user=alice)  # Fri-like day +2, 10:00-14:00 on both GPUs
    sign_in_as(alice)
    page.goto("/gpus/")
    _show(page, mine.start)
    event = page.locator(".gpu-ev-own").first
    box = event.bounding_box()
    assert box is not None
    start = (box["x"] + box["width"] / 2, box["y"] + 12)
    # One day back: bob holds GPU 0 and carol GPU 1 then.
    _drag(page, start, (start[0] - _day_width(page), start[1]))
    expect(page.locator("#cal-status")).to_contain_text("is booked by")
    expect(page.locator(".gpu-ev-conflict")).not_to_have_count(0)
    mine.refresh_from_db()
    assert timezone.localdate(mine.start) == timezone.localdate(_slot(2, 0))
    expect(
        page.locator(f'[data-date="{timezone.localdate(mine.start).isoformat()}"]').last.locator(".gpu-ev-own")
    ).to_have_count(2)


def _day_width(page: Page) -> float:
    box = page.locator(f'[data-date="{timezone.localdate(_slot(1, 0)).isoformat()}"]').last.bounding_box()
    assert box is not None
    return float(box["width"])


def test_on_a_phone_the_calendar_shows_one_day(
    page: Page, sign_in_as: Callable[[User], None], week: dict[str, User]
) -> None:
    sign_in_as(week["alice"])
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/gpus/")
    page.evaluate("day => window.gpuCalendar.gotoDate(day)", timezone.localdate(_slot(1, 0)).isoformat())
    expect(page.locator(".gpu-ev").filter(has_text="bob")).to_be_visible()
    assert page.evaluate("() => window.gpuCalendar.view.type") == "timeGridDay"
    _shoot(page, "gpu-calendar-day-narrow.png")


def test_the_dashboard_card_says_who_holds_each_gpu_now(
    page: Page, sign_in_as: Callable[[User], None], week: dict[str, User]
) -> None:
    now = timezone.localtime()
    start = now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)
    _book(week["bob"], Host.local(), start, 3, [0], "training")
    _book(week["alice"], Host.local(), start, 1, [1])
    sign_in_as(week["alice"])
    page.goto("/")
    card = page.locator("#gpu-card")
    expect(card).to_contain_text("bob until")
    expect(card).to_contain_text("Your booking now")
    expect(card.get_by_role("button", name="Extend by 30 min")).to_be_visible()
    _shoot(page, "gpu-dashboard-card.png")


def test_a_change_after_the_session_ended_says_to_reload(
    page: Page, sign_in_as: Callable[[User], None], week: dict[str, User]
) -> None:
    alice = week["alice"]
    sign_in_as(alice)
    page.goto("/gpus/")
    _show(page, Booking.objects.get(user=alice).start)
    page.context.clear_cookies()
    page.locator(".gpu-ev-own").first.click()
    page.locator("#booking-dialog").get_by_role("button", name="Extend by 30 min").click()
    expect(page.locator("#booking-dialog .dlg-error")).to_contain_text("Your session has ended")
    assert Booking.objects.get(user=alice).duration == timedelta(hours=4)
