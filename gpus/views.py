"""The GPU calendar: the page (FullCalendar over the JSON endpoints below, and a plain form
that works without JavaScript), the endpoints it calls, and the booking policy form of the
Policies page. Every write goes through gpus.services; a refusal says which rule refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from gpus import schedule, services
from gpus.access import get_booking_for_change
from gpus.forms import BookingForm, BookingPolicyForm
from gpus.models import GPU, Booking, BookingPolicy
from gpus.policy import booking_policy_update
from gpus.schedule import BadInput
from gpus.services import BookingConflict, BookingError, span_text
from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from portal.cards import request_quota
from portal.models import Host, User

JsonView = Callable[..., HttpResponse]


# --- answers ---------------------------------------------------------------------------


def _refusal(error: BookingError) -> JsonResponse:
    """400 for a rule, 409 with the booking in the way for a conflict."""
    body: dict[str, Any] = {"error": str(error), "rule": error.rule}
    if isinstance(error, BookingConflict):
        conflicting = error.conflicting
        body["conflicting"] = schedule.conflict_payload(conflicting) if conflicting is not None else None
        return JsonResponse(body, status=409)
    return JsonResponse(body, status=403 if isinstance(error, services.BookingDenied) else 400)


def json_api(view: JsonView) -> JsonView:
    """Refusals as JSON the page can explain: bad input 400, a rule 400, a conflict 409,
    another member's booking 403 (the access helper has audited it), none such 404."""

    @wraps(view)
    def wrapper(request: AuthedRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except BadInput as error:
            return JsonResponse({"error": str(error), "rule": "input"}, status=400)
        except BookingError as error:
            return _refusal(error)
        except PermissionDenied:
            message = "Only its holder or an admin can change this booking."
            return JsonResponse({"error": message, "rule": "owner"}, status=403)
        except Http404:
            return JsonResponse({"error": "There is no such booking.", "rule": "missing"}, status=404)

    return wrapper


def _body(request: AuthedRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadInput('The request is not JSON; send an object like {"start": …, "end": …}.') from None
    if not isinstance(data, dict):
        raise BadInput('Send a JSON object, like {"start": …, "end": …}.')
    return data


def _wants_json(request: AuthedRequest) -> bool:
    return request.content_type == "application/json" or "application/json" in request.headers.get("Accept", "")


def _back(request: AuthedRequest) -> HttpResponse:
    """Where a plain form goes after its POST: ``next`` if it is on this site, else the calendar."""
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=False):
        return redirect(back)
    return redirect("gpus:calendar")


def _done(request: AuthedRequest, booking: Booking, message: str, status: int = 200) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"message": message, "booking": _summary(booking)}, status=status)
    messages.success(request, message)
    return _back(request)


def _summary(booking: Booking) -> dict[str, Any]:
    return {
        "id": booking.pk,
        "state": booking.state,
        "start": schedule.local_iso(booking.start),
        "end": schedule.local_iso(booking.end),
        "span": span_text(booking.start, booking.end),
    }


def _gpus_text(booking: Booking) -> str:
    return ", ".join(row.gpu.label for row in booking.gpu_rows.select_related("gpu").order_by("gpu__index"))


# --- the page --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What the page and the plain form are about: the hosts with GPUs, the one shown, its
    GPUs, the rules and how many GPUs the member may book at once."""

    hosts: list[Host]
    host: Host | None
    gpus: list[GPU]
    policy: BookingPolicy
    allowed: int
    staff: bool = False  # admins may book for a member, and past the policy

    @classmethod
    def of(cls, request: AuthedRequest) -> Scope:
        hosts = schedule.gpu_hosts()
        host = schedule.pick_host(
            hosts, request.GET.get("host") or request.POST.get("host"), preferred=request.user.host_id
        )
        quota = request_quota(request)
        gpus = schedule.host_gpus(host) if host else []
        allowed = len(gpus) if request.user.is_staff else (quota.max_gpus if quota else 0)
        return cls(hosts, host, gpus, BookingPolicy.current(), allowed, staff=request.user.is_staff)

    def form(self, data: Any = None) -> BookingForm:
        initial = {"host": self.host and self.host.pk, "date": timezone.localdate()}
        return BookingForm(
            data,
            hosts=self.hosts,
            gpus=self.gpus,
            allowed=self.allowed,
            policy=self.policy,
            staff=self.staff,
            initial=initial,
        )


def _config(scope: Scope) -> dict[str, Any]:
    """What calendar.js needs, as JSON in the page."""
    ids = ("change", "release", "cancel", "extend")
    return {
        "host": scope.host.pk if scope.host else None,
        "timeZone": timezone.get_current_timezone_name(),
        "slotMinutes": scope.policy.slot_minutes,
        "gpus": [{"index": g.index, "label": g.label, "colour": schedule.colour(g.index)} for g in scope.gpus],
        "urls": {
            "events": reverse("gpus:calendar-events"),
            "create": reverse("gpus:calendar-create"),
            # "/0/" stands for the booking's id.
            **{name: reverse(f"gpus:calendar-{name}", args=[0]) for name in ids},
        },
    }


def _mine(user: User) -> list[Booking]:
    """The member's bookings still holding GPUs, each marked whether it has started."""
    mine = list(Booking.objects.with_gpus().filter(user=user).holding().order_by("start"))
    now = timezone.now()
    for booking in mine:
        booking.started = booking.start <= now  # type: ignore[attr-defined]  # read by the template
    return mine


def _page(request: AuthedRequest, scope: Scope, form: BookingForm, status: int = 200) -> HttpResponse:
    context = {
        "hosts": scope.hosts,
        "host": scope.host,
        "gpus": [(g, schedule.colour(g.index)) for g in scope.gpus],
        "policy": scope.policy,
        "allowed": scope.allowed,
        "form": form,
        "mine": _mine(request.user),
        "week_used": services.hours_text(schedule.week_used(request.user)),
        "calendar_config": _config(scope),
    }
    return render(request, "gpus/calendar.html", context, status=status)


@require_GET
def calendar(request: AuthedRequest) -> HttpResponse:
    """The week of bookings of one host, for every member (login required by the middleware)."""
    scope = Scope.of(request)
    return _page(request, scope, scope.form())


@require_POST
def calendar_book(request: AuthedRequest) -> HttpResponse:
    """The plain form: book, then back to the calendar with a message; errors next to the form."""
    scope = Scope.of(request)
    form = scope.form(request.POST)
    if not form.is_valid():
        return _page(request, scope, form, status=400)
    data = form.cleaned_data
    try:
        booking = services.booking_create(
            user=data.get("member") or request.user,
            host=data["host"],
            start=data["start_at"],
            end=data["end_at"],
            count=data["count"],
            gpu_indexes=data["gpu_indexes"],
            shared=data.get("shared", False),
            note=data["note"],
            actor=request.user,
            context=AuditContext.of(request),
            override=bool(data.get("override")),
        )
    except BookingError as error:
        form.add_error(None, str(error))
        return _page(request, scope, form, status=409 if isinstance(error, BookingConflict) else 400)
    holder = "" if booking.user_id == request.user.pk else f" for {booking.user.username}"
    messages.success(request, f"Booked {_gpus_text(booking)}{holder} for {span_text(booking.start, booking.end)}.")
    return redirect(f"{reverse('gpus:calendar')}?host={booking.host_id}")


# --- the JSON endpoints ----------------------------------------------------------------


@require_GET
@json_api
def calendar_events(request: AuthedRequest) -> HttpResponse:
    """Bookings of a host over ``?start=&end=`` as FullCalendar events (a fixed number of
    queries however many bookings and members)."""
    start, end = schedule.parse_range(request.GET.get("start"), request.GET.get("end"))
    host = schedule.pick_host(schedule.gpu_hosts(), request.GET.get("host"), preferred=request.user.host_id)
    if host is None:
        return JsonResponse([], safe=False)
    if request.GET.get("host") and str(host.pk) != request.GET["host"]:
        raise BadInput("There is no server with GPUs of that id.")
    events = schedule.booking_events(schedule.calendar_bookings(host, start, end), request.user)
    return JsonResponse(events, safe=False)


def _int(data: dict[str, Any], name: str, *, low: int, high: int) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"“{name}” must be a whole number from {low} to {high}.")
    return value


def _create_arguments(data: dict[str, Any]) -> dict[str, Any]:
    hosts = schedule.gpu_hosts()
    host = next((h for h in hosts if h.pk == data.get("host")), None)
    if host is None:
        raise BadInput("Say which server (“host”: its id); that one has no GPUs to book.")
    indexes = data.get("gpus")
    if indexes is not None and (
        not isinstance(indexes, list) or not indexes or not all(type(i) is int and i >= 0 for i in indexes)
    ):
        raise BadInput("“gpus” must be a list of GPU numbers, like [0] or [0, 1].")
    count = None if indexes else _int({"count": data.get("count", 1)}, "count", low=1, high=64)
    shared, note = data.get("shared", False), data.get("note", "")
    if not isinstance(shared, bool):
        raise BadInput("“shared” must be true or false.")
    if not isinstance(note, str) or len(note) > 200:
        raise BadInput("“note” must be text of at most 200 characters.")
    start, end = schedule.parse_moment(data.get("start"), "start"), schedule.parse_moment(data.get("end"), "end")
    return {
        "host": host,
        "start": start,
        "end": end,
        "count": count,
        "gpu_indexes": indexes,
        "shared": shared,
        "note": note.strip(),
    }


@require_POST
@json_api
def calendar_create(request: AuthedRequest) -> HttpResponse:
    """Book from a selection on the calendar: {host, start, end, count | gpus, shared, note}."""
    arguments = _create_arguments(_body(request))
    booking = services.booking_create(
        user=request.user, actor=request.user, context=AuditContext.of(request), **arguments
    )
    message = f"Booked {_gpus_text(booking)} for {span_text(booking.start, booking.end)}."
    return JsonResponse({"message": message, "booking": _summary(booking)}, status=201)


@require_POST
@json_api
def calendar_change(request: AuthedRequest, pk: int) -> HttpResponse:
    """Move or resize a booking: {start, end}."""
    booking = get_booking_for_change(request, pk)
    data = _body(request)
    start, end = schedule.parse_moment(data.get("start"), "start"), schedule.parse_moment(data.get("end"), "end")
    booking = services.booking_change(
        booking=booking, start=start, end=end, actor=request.user, context=AuditContext.of(request)
    )
    return _done(request, booking, f"Moved booking {booking.pk} to {span_text(booking.start, booking.end)}.")


@require_POST
@json_api
def calendar_release(request: AuthedRequest, pk: int) -> HttpResponse:
    """Give the GPUs back now (a booking that has not started is cancelled)."""
    booking = get_booking_for_change(request, pk)
    try:
        booking = services.booking_release(booking=booking, actor=request.user, context=AuditContext.of(request))
    except BookingError as error:
        return _plain_refusal(request, error)
    return _done(request, booking, _ended(booking))


@require_POST
@json_api
def calendar_cancel(request: AuthedRequest, pk: int) -> HttpResponse:
    """Call off a booking that has not started (one under way is released)."""
    booking = get_booking_for_change(request, pk)
    try:
        booking = services.booking_cancel(booking=booking, actor=request.user, context=AuditContext.of(request))
    except BookingError as error:
        return _plain_refusal(request, error)
    return _done(request, booking, _ended(booking))


@require_POST
@json_api
def calendar_extend(request: AuthedRequest, pk: int) -> HttpResponse:
    """Add one slot of the policy's grid to the end."""
    booking = get_booking_for_change(request, pk)
    slot = BookingPolicy.current().slot_minutes
    try:
        booking = services.booking_extend(
            booking=booking, minutes=slot, actor=request.user, context=AuditContext.of(request)
        )
    except BookingError as error:
        return _plain_refusal(request, error)
    message = f"Extended booking {booking.pk} by {slot} minutes: it ends {services.when(booking.end)}."
    return _done(request, booking, message)


def _plain_refusal(request: AuthedRequest, error: BookingError) -> HttpResponse:
    """A plain form's refusal goes back with the message; JSON gets the refusal body."""
    if _wants_json(request):
        return _refusal(error)
    messages.error(request, str(error))
    return _back(request)


def _ended(booking: Booking) -> str:
    if booking.state == Booking.State.CANCELLED:
        span = span_text(booking.start, booking.end)
        return f"Cancelled booking {booking.pk} ({span}); its GPUs are free for others."
    return f"Released booking {booking.pk}: its GPUs are free for others from {services.when(booking.end)}."


# --- the booking policy (Policies page) -------------------------------------------------


@require_POST
@staff_required
def policy(request: AuthedRequest) -> HttpResponse:
    """Save the booking rules; invalid input comes back on a page of its own with the errors."""
    form = BookingPolicyForm(request.POST, instance=BookingPolicy.current())
    if not form.is_valid():
        return render(request, "gpus/policy_edit.html", {"booking_policy_form": form}, status=400)
    changed = {name: form.cleaned_data[name] for name in form.Meta.fields}
    booking_policy_update(actor=request.user, values=changed, context=AuditContext.of(request))
    messages.success(request, "Saved the booking policy. It applies to bookings made or changed from now on.")
    return redirect(f"{reverse('site-policies')}#booking-policy")
