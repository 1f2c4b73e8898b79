"""The JSON API (``/gpus/api/v1/``) for booking GPUs from scripts. A request is authenticated
by an API token in ``Authorization: Bearer <token>`` and nothing else: no session cookie is
read, so no CSRF token is needed and a browser page can't book in a member's name. Every
refusal is a JSON ``{"error", "rule"}`` with a 4xx status; the bodies are checked strictly
(unknown fields, wrong types and times without an offset are refused, never guessed)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from gpus.models import GPU, Booking, BookingGPU, BookingPolicy, Token
from gpus.services import (
    BookingConflict,
    BookingDenied,
    BookingError,
    booking_cancel,
    booking_change,
    booking_create,
    booking_extend,
    booking_release,
    can_change,
    slot_floor,
)
from gpus.tokens import token_authenticate
from portal.access import AuthedRequest
from portal.audit import AuditContext, audit_record
from portal.models import Host, User

Handler = Callable[..., JsonResponse]

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
LIST_DEFAULT = timedelta(days=7)
LIST_LONGEST = timedelta(days=92)
MAX_GPUS = 64
MAX_MINUTES = 60 * 24 * 366
BOOKING_FIELDS = {"host", "gpus", "gpu_indexes", "start", "end", "hours", "shared", "note"}
# An admin's token may also book for a member, and past the policy (audited).
ADMIN_BOOKING_FIELDS = BOOKING_FIELDS | {"member", "override"}
ISO_EXAMPLE = "2026-12-03T14:00:00+01:00"


class ApiError(Exception):
    """A refusal with its HTTP status; ``rule`` names what was wrong, for scripts to test."""

    def __init__(self, status: int, message: str, *, rule: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.rule, self.extra = status, rule, extra


# --- the wrapper every endpoint goes through ------------------------------------------------


def _authenticate(request: HttpRequest) -> Token:
    scheme, _, secret = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    tokens_url = settings.PORTAL_URL + reverse("gpus:tokens")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            f"Send your API token as “Authorization: Bearer gpa_…”; make one on the Feeds & API page ({tokens_url}).",
            rule="token",
        )
    token = token_authenticate(secret.strip(), Token.Kind.API)
    if token is None:
        raise ApiError(
            401,
            f"This API token is not valid: it is unknown, revoked, or its member is suspended. "
            f"Make a new one on the Feeds & API page ({tokens_url}).",
            rule="token",
        )
    return token


def _refusal(exc: BookingError) -> ApiError:
    if isinstance(exc, BookingConflict):
        return ApiError(409, str(exc), rule="conflict", conflicting=_conflict_json(exc.conflicting))
    if isinstance(exc, BookingDenied):
        return ApiError(403, str(exc), rule=exc.rule)
    return ApiError(400, str(exc), rule=exc.rule)


def _error_response(exc: ApiError) -> JsonResponse:
    response = JsonResponse({"error": str(exc), "rule": exc.rule, **exc.extra}, status=exc.status)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="GPU bookings"'
    return response


def endpoint(**handlers: Handler) -> Callable[..., JsonResponse]:
    """One URL of the API: authenticate the token, pick the handler for the method, and turn
    every refusal into its JSON answer."""
    if "get" in handlers:
        handlers.setdefault("head", handlers["get"])
    allowed = ", ".join(sorted(method.upper() for method in handlers))

    @csrf_exempt  # no cookie authenticates here, so there is nothing to forge
    @login_not_required  # the token is the login; a missing one is a 401, not a redirect
    def view(request: HttpRequest, **kwargs: Any) -> JsonResponse:
        try:
            request.user = _authenticate(request).user
            handler = handlers.get((request.method or "").lower())
            if handler is None:
                response = JsonResponse(
                    {"error": f"{request.method} is not allowed here; use {allowed}.", "rule": "method"}, status=405
                )
                response["Allow"] = allowed
                return response
            return handler(request, **kwargs)
        except BookingError as exc:
            return _error_response(_refusal(exc))
        except ApiError as exc:
            return _error_response(exc)

    return view


# --- reading bodies and query strings -------------------------------------------------------


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _body(request: HttpRequest, allowed: set[str], *, empty_ok: bool = False) -> dict[str, Any]:
    """The request's JSON object, with no fields but ``allowed``."""
    raw = request.body
    if not raw.strip():
        if empty_ok:
            return {}
        raise ApiError(400, f"Send a JSON object in the body with {_names(allowed)}.", rule="body")
    if request.content_type != "application/json":
        raise ApiError(415, "Send the body as JSON, with “Content-Type: application/json”.", rule="content_type")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, "The body is nested too deeply to be a booking.", rule="body") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, f"The body is not valid JSON: {exc}.", rule="body") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"The body must be a JSON object with {_names(allowed)}.", rule="body")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, f"Unknown field “{_clip(unknown[0])}”; this takes {_names(allowed)}.", rule="unknown_field")
    return {key: value for key, value in data.items() if value is not None}


def _names(fields: set[str]) -> str:
    return ", ".join(f"“{name}”" for name in sorted(fields)) if fields else "no fields"


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "…"


def _text(data: Mapping[str, Any], key: str, *, longest: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"“{key}” must be a string.", rule="type")
    if len(value) > longest:
        raise ApiError(400, f"“{key}” is longer than {longest} characters.", rule="type")
    if any((ord(ch) < 32 and ch not in "\t\n") or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise ApiError(400, f"“{key}” contains control characters.", rule="type")
    return value


def _whole(data: Mapping[str, Any], key: str, *, low: int, high: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"“{key}” must be a whole number.", rule="type")
    if not low <= value <= high:
        raise ApiError(400, f"“{key}” must be between {low} and {high}.", rule="range")
    return value


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(400, f"“{key}” must be true or false.", rule="type")
    return value


def _indexes(data: Mapping[str, Any]) -> list[int] | None:
    value = data.get("gpu_indexes")
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_GPUS:
        raise ApiError(400, "“gpu_indexes” must be a list of GPU numbers, like [0, 1].", rule="type")
    if any(item is None or isinstance(item, bool) or not isinstance(item, int) for item in value):
        raise ApiError(400, "“gpu_indexes” must be a list of GPU numbers, like [0, 1].", rule="type")
    if any(not 0 <= item < 1024 for item in value):
        raise ApiError(400, "“gpu_indexes” must hold GPU numbers from 0.", rule="range")
    return list(value)


def _moment(value: Any, key: str) -> datetime:
    """An ISO 8601 date and time with its offset, as an aware UTC datetime."""
    form = f"“{key}” must be a date and time in ISO 8601 with its offset, like {ISO_EXAMPLE}."
    if not isinstance(value, str) or len(value) > 40:
        raise ApiError(400, form, rule="type")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ApiError(400, form, rule="type") from None
    if moment.utcoffset() is None:
        raise ApiError(
            400, f"“{key}” has no offset; add one (like +01:00 or Z) so it names one moment.", rule="timezone"
        )
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise ApiError(400, f"“{key}” is out of range.", rule="range") from None
    if not EARLIEST <= moment < LATEST:
        raise ApiError(400, f"“{key}” must fall between the years 2000 and 2199.", rule="range")
    return moment


def _query(request: HttpRequest, allowed: set[str]) -> dict[str, str]:
    unknown = sorted(set(request.GET) - allowed)
    if unknown:
        raise ApiError(
            400, f"Unknown parameter “{_clip(unknown[0])}”; this takes {_names(allowed)}.", rule="unknown_field"
        )
    for key in request.GET:
        if len(request.GET.getlist(key)) > 1:
            raise ApiError(400, f"“{key}” is given twice.", rule="type")
    # In a query string "+" means a space: put back the "+" of an offset like +01:00.
    params: dict[str, str] = {key: str(request.GET[key]) for key in request.GET}
    for key in ("from", "to"):
        if key in params:
            params[key] = params[key].replace(" ", "+")
    return params


# --- what the API answers with ----------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat()


def booking_json(booking: Booking) -> dict[str, Any]:
    """A booking as the API shows it (needs ``with_gpus``); times in the team's time zone."""
    return {
        "id": booking.pk,
        "member": booking.user.username,
        "host": booking.host.name,
        "gpus": [{"index": gpu.index, "uuid": gpu.uuid, "name": gpu.name} for gpu in booking.gpu_list],
        "start": _iso(booking.start),
        "end": _iso(booking.end),
        "state": booking.state,
        "shared": booking.shared,
        "note": booking.note,
    }


def _conflict_json(other: Booking | None) -> dict[str, Any] | None:
    if other is None:
        return None
    indexes = BookingGPU.objects.filter(booking=other).order_by("gpu__index").values_list("gpu__index", flat=True)
    return {
        "id": other.pk,
        "member": other.user.username,
        "gpus": list(indexes),
        "start": _iso(other.start),
        "end": _iso(other.end),
    }


def _booking(pk: int) -> Booking:
    booking = Booking.objects.with_gpus().filter(pk=pk).first()
    if booking is None:
        raise ApiError(404, f"There is no booking {pk}.", rule="not_found")
    return booking


def _booking_to_change(request: AuthedRequest, pk: int) -> Booking:
    """The booking, if the token's member may change it; a refusal is audited."""
    booking = _booking(pk)
    if not can_change(request.user, booking):
        audit_record(action="booking.denied", request=request, target=booking, refused=True, path=request.path)
        raise ApiError(
            403, f"Booking {pk} is {booking.user.username}'s: only they or an admin can change it.", rule="owner"
        )
    return booking


def _answer(booking: Booking, status: int = 200) -> JsonResponse:
    fresh = Booking.objects.with_gpus().get(pk=booking.pk)
    response = JsonResponse(booking_json(fresh), status=status)
    if status == 201:
        response["Location"] = reverse("gpus:api-booking", kwargs={"pk": booking.pk})
    return response


def _host(name: str | None, *, default: Host | None = None) -> Host:
    """The named host, or without a name ``default`` (a booking's holder's server), or the
    first (usually the only) one with GPUs."""
    with_gpus = Host.objects.filter(gpus__present=True).distinct().order_by("name")
    host = (default or with_gpus.first()) if name is None else Host.objects.filter(name=name).first()
    if host is None and name is None:
        raise ApiError(400, "No server has GPUs to book yet.", rule="host")
    if host is None:
        names = ", ".join(h.name for h in with_gpus) or "none yet"
        raise ApiError(400, f"There is no server “{_clip(name or '')}”; servers with GPUs: {names}.", rule="host")
    return host


# --- the endpoints ----------------------------------------------------------------------------


def _gpus_list(request: AuthedRequest) -> JsonResponse:
    params = _query(request, {"host"})
    host = _host(_text(params, "host", longest=63))
    now = timezone.now()
    holds: dict[int, list[dict[str, Any]]] = {}
    rows = BookingGPU.objects.filter(gpu__host=host, holds=True, start__lte=now, end__gt=now)
    for row in rows.select_related("booking__user").order_by("start"):
        holds.setdefault(row.gpu_id, []).append(
            {
                "booking": row.booking_id,
                "member": row.booking.user.username,
                "shared": row.shared,
                "until": _iso(row.end),
            }
        )
    gpus = [
        {
            "index": gpu.index,
            "uuid": gpu.uuid,
            "name": gpu.name,
            "memory_bytes": gpu.memory_bytes,
            "free": gpu.pk not in holds,
            "held_by": holds.get(gpu.pk, []),
        }
        for gpu in GPU.objects.bookable().filter(host=host).order_by("index")
    ]
    return JsonResponse({"host": host.name, "gpus": gpus})


def _yes(params: Mapping[str, str], key: str) -> bool:
    value = params.get(key, "0").strip().lower()
    if value not in ("0", "1", "true", "false", "yes", "no", ""):
        raise ApiError(400, f"“{key}” must be 1 or 0.", rule="type")
    return value in ("1", "true", "yes")


def _bookings_list(request: AuthedRequest) -> JsonResponse:
    params = _query(request, {"mine", "from", "to", "host"})
    start = _moment(params["from"], "from") if "from" in params else timezone.now()
    end = _moment(params["to"], "to") if "to" in params else start + LIST_DEFAULT
    if end <= start:
        raise ApiError(400, "“to” must be after “from”.", rule="order")
    if end - start > LIST_LONGEST:
        raise ApiError(400, f"Ask for at most {LIST_LONGEST.days} days at a time.", rule="range")
    bookings = Booking.objects.visible_to(request.user).exclude(state=Booking.State.CANCELLED).overlapping(start, end)
    if _yes(params, "mine"):
        bookings = bookings.filter(user=request.user)
    if "host" in params:
        bookings = bookings.filter(host=_host(_text(params, "host", longest=63)))
    return JsonResponse(
        {"from": _iso(start), "to": _iso(end), "bookings": [booking_json(b) for b in bookings.with_gpus()]}
    )


def _span(data: Mapping[str, Any], now: datetime) -> tuple[datetime, datetime]:
    start = _moment(data["start"], "start") if "start" in data else slot_floor(now, BookingPolicy.current().slot)
    if ("end" in data) == ("hours" in data):
        raise ApiError(400, "Send either “end” or “hours” (how long), one of the two.", rule="body")
    if "end" in data:
        return start, _moment(data["end"], "end")
    hours = data["hours"]
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours):
        raise ApiError(400, "“hours” must be a number, like 4 or 1.5.", rule="type")
    if not 0 < hours <= MAX_MINUTES / 60:
        raise ApiError(400, f"“hours” must be more than 0 and at most {MAX_MINUTES // 60}.", rule="range")
    return start, start + timedelta(hours=hours)


def _bookings_create(request: AuthedRequest) -> JsonResponse:
    data = _body(request, ADMIN_BOOKING_FIELDS if request.user.is_staff else BOOKING_FIELDS)
    holder = _member(_text(data, "member", longest=32)) if "member" in data else request.user
    host = _host(_text(data, "host", longest=63), default=holder.placed_host())
    count = _whole(data, "gpus", low=1, high=MAX_GPUS)
    indexes = _indexes(data)
    if count is not None and indexes is not None:
        raise ApiError(400, "Send “gpus” (how many) or “gpu_indexes” (which ones), not both.", rule="body")
    start, end = _span(data, timezone.now())
    booking = booking_create(
        user=holder,
        host=host,
        start=start,
        end=end,
        count=count,
        gpu_indexes=indexes,
        shared=_flag(data, "shared"),
        note=_text(data, "note", longest=200) or "",
        actor=request.user,
        context=AuditContext.of(request),
        override=_flag(data, "override"),
    )
    return _answer(booking, status=201)


def _member(username: str | None) -> User:
    holder = User.objects.filter(username=username or "", is_active=True).first()
    if holder is None:
        raise ApiError(400, f"There is no active member “{_clip(username or '')}”.", rule="member")
    return holder


def _booking_detail(request: AuthedRequest, pk: int) -> JsonResponse:
    _query(request, set())
    return JsonResponse(booking_json(_booking(pk)))


def _booking_change(request: AuthedRequest, pk: int) -> JsonResponse:
    booking = _booking_to_change(request, pk)
    data = _body(request, {"start", "end"})
    if not data:
        raise ApiError(400, "Send the new “start”, “end” or both.", rule="body")
    start = _moment(data["start"], "start") if "start" in data else booking.start
    end = _moment(data["end"], "end") if "end" in data else booking.end
    changed = booking_change(
        booking=booking, start=start, end=end, actor=request.user, context=AuditContext.of(request)
    )
    return _answer(changed)


def _booking_extend(request: AuthedRequest, pk: int) -> JsonResponse:
    booking = _booking_to_change(request, pk)
    minutes = _whole(_body(request, {"minutes"}), "minutes", low=1, high=MAX_MINUTES)
    if minutes is None:
        raise ApiError(400, 'Send “minutes”: how much longer, like {"minutes": 60}.', rule="body")
    extended = booking_extend(booking=booking, minutes=minutes, actor=request.user, context=AuditContext.of(request))
    return _answer(extended)


def _booking_release(request: AuthedRequest, pk: int) -> JsonResponse:
    booking = _booking_to_change(request, pk)
    _body(request, set(), empty_ok=True)
    return _answer(booking_release(booking=booking, actor=request.user, context=AuditContext.of(request)))


def _booking_cancel(request: AuthedRequest, pk: int) -> JsonResponse:
    booking = _booking_to_change(request, pk)
    _body(request, set(), empty_ok=True)
    return _answer(booking_cancel(booking=booking, actor=request.user, context=AuditContext.of(request)))


gpus = endpoint(get=_gpus_list)
bookings = endpoint(get=_bookings_list, post=_bookings_create)
booking = endpoint(get=_booking_detail, patch=_booking_change, delete=_booking_cancel)
booking_extend_view = endpoint(post=_booking_extend)
booking_release_view = endpoint(post=_booking_release)
