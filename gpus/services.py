"""Booking GPUs: create, change, release and cancel, whoever asks (the calendar, the JSON API,
the Slack command, the minute tick). Each runs in one transaction.

What makes a double booking impossible is the database: on PostgreSQL the exclusion
constraints of BookingGPU refuse an overlapping hold even when two requests race, and the
violation comes back here as a BookingConflict naming the booking in the way. Rules a
constraint can't express (a member's GPU-hours per week, the number of members sharing a
GPU) are checked with the member's row and the GPUs' rows locked in the same transaction.
Locking the GPUs (in pk order) also makes racing writers of the same GPU take turns: without
it, two inserts that clash can each wait for the other inside the constraint's check, and
PostgreSQL aborts one as a deadlock instead of a conflict that names the booking in the way.
On SQLite (``make run``) every write transaction is serialized (BEGIN IMMEDIATE), so checking
then inserting is just as safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from django.contrib.postgres.fields import RangeBoundary
from django.db import IntegrityError, connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import Q, QuerySet
from django.template.defaultfilters import pluralize
from django.utils import timezone

from gpus.models import GPU, Booking, BookingGPU, BookingPolicy, TsTzRange
from gpus.placement import booking_host_refusal
from portal.audit import AuditContext, audit_record
from portal.models import Host, Quota, User

RACE_RETRIES = 3  # an "any free GPU" request that loses a race picks again this often


class BookingError(Exception):
    """A refused request. ``rule`` names the policy rule (or "conflict"); the message says
    what to change, in words for the member."""

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class BookingConflict(BookingError):
    """The GPUs are held by another booking over (part of) the span."""

    def __init__(self, message: str, *, conflicting: Booking | None) -> None:
        super().__init__(message, rule="conflict")
        self.conflicting = conflicting


class BookingRaced(BookingConflict):
    """Another request took the GPUs between this one's check and its insert (the
    exclusion constraint refused the insert)."""


class BookingDenied(BookingError):
    """The actor may not change this booking."""


# --- time --------------------------------------------------------------------------------


def when(moment: datetime, tz: tzinfo | None = None) -> str:
    """A moment in the team's time zone (or ``tz``), as the pages write it: "Tue 3 Dec 14:30"."""
    local = moment.astimezone(tz or timezone.get_current_timezone())
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def span_text(start: datetime, end: datetime, tz: tzinfo | None = None) -> str:
    """``[start, end)`` as the pages write it. A caller formatting many passes ``tz``, read
    once: looking up the current time zone is what costs, not the formatting."""
    tz = tz or timezone.get_current_timezone()
    a, b = start.astimezone(tz), end.astimezone(tz)
    return f"{when(a, tz)}\u2013{b:%H:%M}" if a.date() == b.date() else f"{when(a, tz)} \u2013 {when(b, tz)}"


def hours_text(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h" if hours == int(hours) else f"{hours:.1f} h"


def utc(moment: datetime) -> datetime:
    """The same instant in UTC. Python subtracts two datetimes of one zone by their wall
    clocks (an autumn night of 8 wall hours gives 8, not 9), so durations are always taken
    between UTC values."""
    return moment.astimezone(UTC)


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 of the moment's week in the team's time zone, in UTC (DST-safe)."""
    local = timezone.localtime(moment)
    monday = local.date() - timedelta(days=local.weekday())
    return utc(timezone.make_aware(datetime.combine(monday, time.min)))


def weeks_touched(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The team-time-zone weeks ``[start, end)`` falls in, each as ``(monday, next monday)``."""
    weeks = []
    monday = week_start(start)
    while monday < end:
        local = timezone.localtime(monday)
        following = utc(timezone.make_aware(datetime.combine(local.date() + timedelta(days=7), time.min)))
        weeks.append((monday, following))
        monday = following
    return weeks


def slot_floor(moment: datetime, slot: timedelta) -> datetime:
    """The start of the grid slot holding ``moment`` (the grid runs in local time)."""
    local = timezone.localtime(moment).replace(second=0, microsecond=0)
    minutes = slot.seconds // 60
    return local.replace(minute=local.minute - local.minute % minutes) if minutes < 60 else local.replace(minute=0)


def on_grid(moment: datetime, slot: timedelta) -> bool:
    local = timezone.localtime(moment)
    return local.second == 0 and local.microsecond == 0 and (local.hour * 60 + local.minute) % (slot.seconds // 60) == 0


def overlap(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> timedelta:
    return max(timedelta(0), utc(min(a_end, b_end)) - utc(max(a_start, b_start)))


# --- checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A half-open ``[start, end)``, in UTC whatever zone it was given in."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if timezone.is_naive(moment):
                raise BookingError("Give times with their time zone (or an offset like +01:00).", rule="timezone")
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))


def _check_span(policy: BookingPolicy, span: Span, *, now: datetime, new_start: bool) -> None:
    """The span's own rules: order, grid, length, notice, horizon. ``new_start`` is False
    when an active booking only moves its end."""
    slot = policy.slot
    if span.end <= span.start:
        raise BookingError("The end must be after the start.", rule="order")
    if not (on_grid(span.start, slot) and on_grid(span.end, slot)):
        raise BookingError(
            f"Bookings start and end on the {policy.slot_minutes}-minute grid (like 14:00 or "
            f"14:{policy.slot_minutes % 60:02d}); {span_text(span.start, span.end)} is off it.",
            rule="slot",
        )
    if span.end <= now:
        raise BookingError("That time is over; pick a time from now on.", rule="past")
    if new_start:
        if span.start < slot_floor(now, slot):
            raise BookingError(
                f"A booking can't start in the past; the earliest start is {when(slot_floor(now, slot))}.",
                rule="past",
            )
        notice = timedelta(minutes=policy.min_notice_minutes)
        if notice and span.start < now + notice:
            raise BookingError(
                f"Book at least {policy.min_notice_minutes} minutes ahead (minimum notice).", rule="notice"
            )
        if span.start > now + timedelta(days=policy.horizon_days):
            raise BookingError(f"Bookings can be made at most {policy.horizon_days} days ahead.", rule="horizon")
    longest = timedelta(hours=policy.max_booking_hours)
    if span.end - span.start > longest:
        raise BookingError(
            f"A booking lasts at most {policy.max_booking_hours} hours; this one would last "
            f"{hours_text(span.end - span.start)}.",
            rule="length",
        )


def _check_count(user: User, count: int, host_gpus: int) -> None:
    if not user.is_active:
        raise BookingError(f"{user.username}'s account is suspended.", rule="member")
    if count < 1:
        raise BookingError("Book at least one GPU.", rule="gpus")
    try:
        allowed = user.quota.max_gpus
    except Quota.DoesNotExist:
        allowed = 0
    if allowed == 0:
        raise BookingError(f"{user.username}'s quota allows no GPUs; an admin can raise “max GPUs”.", rule="quota")
    if count > allowed:
        raise BookingError(
            f"{user.username}'s quota allows {allowed} GPU{pluralize(allowed)} per booking; this asks for {count}.",
            rule="quota",
        )
    if count > host_gpus:
        raise BookingError(f"This server has {host_gpus} GPU{pluralize(host_gpus)}.", rule="gpus")


def week_booked(user: User, monday: datetime, next_monday: datetime, *, excluding: Booking | None = None) -> timedelta:
    """GPU-hours the member's bookings take in the week ``[monday, next_monday)``, as the
    week rule counts them: cancelled ones are free, released ones count until their release
    (one query, on the bookings' own columns)."""
    theirs = (
        Booking.objects.filter(user=user)
        .exclude(state=Booking.State.CANCELLED)
        .overlapping(monday, next_monday)
        .only("start", "end", "gpu_count")
    )
    if excluding is not None:
        theirs = theirs.exclude(pk=excluding.pk)
    return sum((overlap(b.start, b.end, monday, next_monday) * b.gpu_count for b in theirs), timedelta(0))


def _check_week(policy: BookingPolicy, user: User, span: Span, gpus: int, *, excluding: Booking | None) -> None:
    """GPU-hours per member per team week, this booking included (its old span excluded)."""
    cap = timedelta(hours=policy.max_hours_per_week)
    for monday, next_monday in weeks_touched(span.start, span.end):
        used = week_booked(user, monday, next_monday, excluding=excluding)
        asked = overlap(span.start, span.end, monday, next_monday) * gpus
        if used + asked > cap:
            left = max(timedelta(0), cap - used)
            raise BookingError(
                f"{user.username} may book {policy.max_hours_per_week} GPU-hours in the week of "
                f"{timezone.localtime(monday):%-d %b}; {hours_text(used)} are booked already, so "
                f"{hours_text(left)} are left and this needs {hours_text(asked)}.",
                rule="week",
            )


def _overlapping(rows: QuerySet[BookingGPU], span: Span) -> QuerySet[BookingGPU]:
    """Rows overlapping the span. On PostgreSQL as a range overlap, which the exclusion
    constraints' GiST index answers however many reservations there are."""
    if connection.vendor == "postgresql":
        wanted = DateTimeTZRange(span.start, span.end, "[)")
        return rows.annotate(span=TsTzRange("start", "end", RangeBoundary())).filter(span__overlap=wanted)
    return rows.filter(start__lt=span.end, end__gt=span.start)


def _holders(gpu_ids: Iterable[int], span: Span, *, excluding: Booking | None = None) -> list[BookingGPU]:
    """The holding rows on these GPUs over the span, earliest first (one query)."""
    rows = _overlapping(BookingGPU.objects.filter(gpu_id__in=list(gpu_ids), holds=True), span)
    if excluding is not None:
        rows = rows.exclude(booking=excluding)
    # No joins: the planner keeps to the GiST index; a conflict loads its booking (_conflict).
    return list(rows.order_by("start", "gpu_id"))


def _conflict(row: BookingGPU) -> BookingConflict:
    other = Booking.objects.select_related("user").get(pk=row.booking_id)
    mode = " (shared)" if other.shared else ""
    message = (
        f"{row.gpu.label} is booked{mode} by {other.user.username} for "
        f"{span_text(other.start, other.end)} (booking {other.pk})."
    )
    return BookingConflict(message, conflicting=other)


def _shared_peak(rows: Sequence[BookingGPU], span: Span) -> int:
    """The most shared holds on one GPU at any instant of the span."""
    events = sorted(
        [(max(r.start, span.start), 1) for r in rows] + [(min(r.end, span.end), -1) for r in rows],
        key=lambda e: (e[0], e[1]),
    )
    peak = current = 0
    for _moment, step in events:
        current += step
        peak = max(peak, current)
    return peak


def _blocker(policy: BookingPolicy, rows: Sequence[BookingGPU], span: Span, *, shared: bool) -> BookingGPU | None:
    """The holding row that keeps a GPU from being held over the span (given its rows there),
    or None when it is free: any other hold blocks an exclusive booking; a shared one is
    blocked by an exclusive hold, or by as many shared holds at once as the policy allows."""
    for row in rows:
        if not (shared and row.shared):
            return row
    if shared and rows and _shared_peak(rows, span) >= policy.shared_slots:
        return rows[0]
    return None


def _refusal(policy: BookingPolicy, row: BookingGPU, span: Span, *, shared: bool) -> BookingConflict:
    if shared and row.shared:
        return BookingConflict(
            f"{row.gpu.label} is already shared by {policy.shared_slots} members for part of "
            f"{span_text(span.start, span.end)}, as many as the policy allows.",
            conflicting=row.booking,
        )
    return _conflict(row)


def _rows_by_gpu(gpus: Sequence[GPU], span: Span, *, excluding: Booking | None) -> dict[int, list[BookingGPU]]:
    by_gpu: dict[int, list[BookingGPU]] = {gpu.pk: [] for gpu in gpus}
    for row in _holders(by_gpu, span, excluding=excluding):
        by_gpu[row.gpu_id].append(row)
    return by_gpu


def _check_free(
    policy: BookingPolicy, gpus: Sequence[GPU], span: Span, *, shared: bool, excluding: Booking | None
) -> None:
    """Refuse with the first booking in the way (the constraints would refuse it anyway, but
    this names it, on SQLite too)."""
    by_gpu = _rows_by_gpu(gpus, span, excluding=excluding)
    for gpu in gpus:
        row = _blocker(policy, by_gpu[gpu.pk], span, shared=shared)
        if row is not None:
            raise _refusal(policy, row, span, shared=shared)


def _pick(policy: BookingPolicy, host_gpus: Sequence[GPU], span: Span, count: int, *, shared: bool) -> list[GPU]:
    """The ``count`` lowest-numbered GPUs free over the whole span (one query)."""
    by_gpu = _rows_by_gpu(host_gpus, span, excluding=None)
    free: list[GPU] = []
    first: BookingGPU | None = None
    for gpu in host_gpus:
        row = _blocker(policy, by_gpu[gpu.pk], span, shared=shared)
        if row is None:
            free.append(gpu)
            if len(free) == count:
                return free
        elif first is None:
            first = row
    total = len(host_gpus)
    count_text = f"Only {len(free)} of {total} GPU{pluralize(total)} {pluralize(len(free), 'is,are')} free then; "
    if first is not None:
        refusal = _refusal(policy, first, span, shared=shared)
        raise BookingConflict(count_text + str(refusal), conflicting=refusal.conflicting)
    raise BookingConflict(count_text.rstrip("; ") + ".", conflicting=None)


def _lock_member(user: User) -> User:
    return User.objects.select_for_update().get(pk=user.pk)


def _refuse_other_host(user: User, host: Host) -> None:
    """Bookings follow the member's server (gpus/placement.py)."""
    refusal = booking_host_refusal(user, host)
    if refusal:
        raise BookingError(refusal, rule="host")


def _lock_gpus(gpus: Iterable[GPU]) -> None:
    """Serialize the writers of each GPU (in pk order: no deadlock), so the second sees the
    first's rows once it commits: shared bookings count their peers, and a clash is reported
    as the conflict it is."""
    list(GPU.objects.select_for_update().filter(pk__in=[g.pk for g in gpus]).order_by("pk"))


def _insert_rows(booking: Booking, gpus: Sequence[GPU]) -> None:
    """The booking's GPU rows. An IntegrityError here (the exclusion constraint refused a
    hold another writer took) ends the whole transaction; booking_create explains it after
    the rollback, so no savepoint is needed on the way."""
    BookingGPU.objects.bulk_create(
        [
            BookingGPU(booking=booking, gpu=gpu, start=booking.start, end=booking.end, shared=booking.shared)
            for gpu in gpus
        ]
    )


def _raced(gpus: Sequence[GPU], span: Span) -> BookingRaced:
    """What took the GPUs between the check and the insert (read after the rollback)."""
    blocking = _holders([gpu.pk for gpu in gpus], span)
    if not blocking:
        return BookingRaced("That slot was just taken; try again.", conflicting=None)
    other = _conflict(blocking[0])
    return BookingRaced(str(other), conflicting=other.conflicting)


def _staff_override(actor: User | None, override: bool) -> bool:
    return bool(override and actor is not None and actor.is_staff)


# --- the services --------------------------------------------------------------------------


def booking_create(
    *,
    user: User,
    host: Host,
    start: datetime,
    end: datetime,
    count: int | None = None,
    gpu_indexes: Sequence[int] | None = None,
    shared: bool = False,
    note: str = "",
    actor: User | None,
    context: AuditContext | None = None,
    override: bool = False,
    now: datetime | None = None,
) -> Booking:
    """Book ``gpu_indexes`` of ``host`` (or any ``count`` free ones) for ``user``. An admin's
    ``override`` skips the policy's limits, never another booking."""
    now = now or timezone.now()
    policy = BookingPolicy.current()
    override = _staff_override(actor, override)
    span = Span(start, end)
    _refuse_other_host(user, host)
    host_gpus = list(GPU.objects.bookable().filter(host=host).order_by("index"))
    if gpu_indexes:
        if len(set(gpu_indexes)) != len(gpu_indexes):
            raise BookingError("The same GPU is named twice.", rule="gpus")
        by_index = {gpu.index: gpu for gpu in host_gpus}
        missing = [i for i in gpu_indexes if i not in by_index]
        if missing:
            raise BookingError(f"{host} has no GPU {missing[0]}.", rule="gpus")
        wanted = [by_index[i] for i in sorted(gpu_indexes)]
        count = len(wanted)
    else:
        wanted = []
        count = count or 1
    if not host_gpus:
        raise BookingError(f"{host} has no GPUs to book.", rule="gpus")
    if shared and not policy.sharing:
        raise BookingError("Only exclusive bookings are allowed here (the policy shares no GPU).", rule="shared")
    if not override:
        _check_span(policy, span, now=now, new_start=True)
        _check_count(user, count, len(host_gpus))
    elif end <= start:
        raise BookingError("The end must be after the start.", rule="order")
    for attempt in range(RACE_RETRIES):
        try:
            return _create(policy, user, host, host_gpus, span, count, wanted, shared, note, actor, context, override)
        except IntegrityError:
            # Another writer's hold won (the service's own requests take turns on the GPUs'
            # row locks, so this is a write from outside it): a request for any free GPUs
            # picks again; one for named GPUs is told who holds them.
            if wanted or attempt == RACE_RETRIES - 1:
                raise _raced(wanted or host_gpus, span) from None
    raise AssertionError("unreachable")  # pragma: no cover


@transaction.atomic
def _create(
    policy: BookingPolicy,
    user: User,
    host: Host,
    host_gpus: list[GPU],
    span: Span,
    count: int,
    wanted: list[GPU],
    shared: bool,
    note: str,
    actor: User | None,
    context: AuditContext | None,
    override: bool,
) -> Booking:
    # Checked again under the member's lock: a move to another server may have just committed.
    _refuse_other_host(_lock_member(user), host)
    if not override:
        _check_week(policy, user, span, count, excluding=None)
    _lock_gpus(wanted or host_gpus)
    if wanted:
        _check_free(policy, wanted, span, shared=shared, excluding=None)
        gpus = wanted
    else:
        gpus = _pick(
            policy, list(GPU.objects.bookable().filter(host=host).order_by("index")), span, count, shared=shared
        )
    booking = Booking.objects.create(
        user=user,
        host=host,
        start=span.start,
        end=span.end,
        shared=shared,
        gpu_count=len(gpus),
        note=note[:200],
        override=override,
        created_by=actor,
    )
    _insert_rows(booking, gpus)
    audit_record(
        action="booking.create",
        actor=actor,
        target=booking,
        context=context,
        member=user.username,
        gpus=[gpu.index for gpu in gpus],
        span=[span.start.isoformat(), span.end.isoformat()],
        shared=shared,
        override=override,
    )
    return booking


def can_change(actor: User | None, booking: Booking) -> bool:
    """The holder and admins change a booking; the system (no actor) always may."""
    return actor is None or actor.is_staff or booking.user_id == actor.pk


def _refuse_unless_allowed(actor: User | None, booking: Booking) -> None:
    if not can_change(actor, booking):
        raise BookingDenied("Only its holder or an admin can change this booking.", rule="owner")
    if not booking.holds:
        raise BookingError(
            f"This booking is {booking.get_state_display().lower()}; it can't change any more.", rule="final"
        )


@transaction.atomic
def booking_change(
    *,
    booking: Booking,
    start: datetime,
    end: datetime,
    actor: User | None,
    context: AuditContext | None = None,
    reason: str = "",
    override: bool = False,
    now: datetime | None = None,
) -> Booking:
    """Move, extend or shorten a booking into free time. Once it has started only its end
    can move (shortening to now or earlier is a release)."""
    now = now or timezone.now()
    booking = Booking.objects.select_for_update().select_related("user", "host").get(pk=booking.pk)
    _refuse_unless_allowed(actor, booking)
    policy = BookingPolicy.current()
    override = _staff_override(actor, override)
    started = booking.start <= now
    if started and start != booking.start:
        raise BookingError("This booking has started: only its end can move.", rule="started")
    span = Span(start, end)
    if started and end <= now:
        raise BookingError("To end a booking now, release it.", rule="past")
    if not override:
        _check_span(policy, span, now=now, new_start=not started)
    elif end <= start:
        raise BookingError("The end must be after the start.", rule="order")
    rows = list(booking.gpu_rows.select_related("gpu"))
    gpus = [row.gpu for row in rows]
    _lock_member(booking.user)
    if not override:
        _check_week(policy, booking.user, span, len(gpus), excluding=booking)
    _lock_gpus(gpus)
    _check_free(policy, gpus, span, shared=booking.shared, excluding=booking)
    old = [booking.start.isoformat(), booking.end.isoformat()]
    try:
        with transaction.atomic():
            BookingGPU.objects.filter(booking=booking).update(start=span.start, end=span.end)
    except IntegrityError:
        blocking = _holders([g.pk for g in gpus], span, excluding=booking)
        raise (
            _conflict(blocking[0]) if blocking else BookingConflict("That time was just taken.", conflicting=None)
        ) from None
    booking.start, booking.end = span.start, span.end
    # A new end gets its own warnings.
    booking.end_warned_minutes = None
    booking.save(update_fields=["start", "end", "end_warned_minutes"])
    audit_record(
        action="booking.change",
        actor=actor,
        target=booking,
        context=context,
        old=old,
        new=[span.start.isoformat(), span.end.isoformat()],
        reason=reason,
        override=override,
    )
    return booking


def booking_extend(
    *,
    booking: Booking,
    minutes: int,
    actor: User | None,
    context: AuditContext | None = None,
    now: datetime | None = None,
) -> Booking:
    if minutes <= 0:
        raise BookingError("Extend by a positive number of minutes.", rule="order")
    return booking_change(
        booking=booking,
        start=booking.start,
        end=booking.end + timedelta(minutes=minutes),
        actor=actor,
        context=context,
        reason=f"extended by {minutes} min",
        now=now,
    )


def _end(booking: Booking, *, state: str, end: datetime | None) -> None:
    fields = ["state"]
    booking.state = state
    if end is not None and end < booking.end:
        booking.released_end = booking.end
        booking.end = end
        fields += ["released_end", "end"]
    booking.save(update_fields=fields)
    updates: dict[str, Any] = {"holds": False}
    if end is not None:
        updates["end"] = booking.end
    BookingGPU.objects.filter(booking=booking).update(**updates)


@transaction.atomic
def booking_release(
    *,
    booking: Booking,
    actor: User | None,
    context: AuditContext | None = None,
    reason: str = "",
    state: str = Booking.State.RELEASED,
    now: datetime | None = None,
) -> Booking:
    """Give the GPUs back now. A booking that has not started is cancelled instead. ``state``
    is NO_SHOW when the minute tick releases a booking nobody used."""
    now = (now or timezone.now()).replace(microsecond=0)
    booking = Booking.objects.select_for_update().select_related("user", "host").get(pk=booking.pk)
    _refuse_unless_allowed(actor, booking)
    if booking.start >= now:
        return _cancel(booking, actor=actor, context=context, reason=reason)
    old = [booking.start.isoformat(), booking.end.isoformat()]
    _end(booking, state=state, end=max(now, booking.start + timedelta(seconds=1)))
    audit_record(
        action="booking.release" if state == Booking.State.RELEASED else f"booking.{state}",
        actor=actor,
        target=booking,
        context=context,
        old=old,
        new=[booking.start.isoformat(), booking.end.isoformat()],
        reason=reason,
    )
    return booking


@transaction.atomic
def booking_cancel(
    *, booking: Booking, actor: User | None, context: AuditContext | None = None, reason: str = ""
) -> Booking:
    """Call off a booking that has not started (one under way is released instead)."""
    booking = Booking.objects.select_for_update().select_related("user", "host").get(pk=booking.pk)
    _refuse_unless_allowed(actor, booking)
    if booking.start < timezone.now():
        return booking_release(booking=booking, actor=actor, context=context, reason=reason)
    return _cancel(booking, actor=actor, context=context, reason=reason)


def _cancel(booking: Booking, *, actor: User | None, context: AuditContext | None, reason: str) -> Booking:
    _end(booking, state=Booking.State.CANCELLED, end=None)
    audit_record(
        action="booking.cancel",
        actor=actor,
        target=booking,
        context=context,
        old=[booking.start.isoformat(), booking.end.isoformat()],
        reason=reason,
    )
    return booking


def free_gpus(host: Host, start: datetime, end: datetime) -> list[GPU]:
    """The host's GPUs with no exclusive hold over ``[start, end)`` (one query)."""
    held = BookingGPU.objects.filter(holds=True, start__lt=end, end__gt=start).filter(Q(shared=False))
    return list(GPU.objects.bookable().filter(host=host).exclude(pk__in=held.values("gpu_id")).order_by("index"))
