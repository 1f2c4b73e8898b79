"""The accounting page: booked against used GPU-hours. A member sees their own weeks; an
admin also sees the team's current week and can pick anyone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from gpus import accounting
from gpus.accounting import Figures, Week
from gpus.models import BookingPolicy
from portal.access import AuthedRequest, refuse
from portal.models import User

NOT_MEASURED = "Use is not measured on this server (no NVIDIA driver; GPUs come from GPU_INVENTORY)."


def get_usage_member(request: AuthedRequest) -> User:
    """Whose figures ``?member=<username>`` asks for: one's own, or anyone's for an admin
    (404 if unknown); a member asking for someone else is refused (403, audited)."""
    username = request.GET.get("member", "").strip()
    if not username or username == request.user.username:
        return request.user
    if not request.user.is_staff:
        raise refuse(request, "gpu_usage.denied", member=username[:150])
    return get_object_or_404(User, username=username)


def _label(week: Week, now: datetime | None = None) -> str:
    """ "24 Nov", or "30 Nov (this week)" for the week holding ``now``."""
    label = f"{timezone.localtime(week[0]):%-d %b}"
    return f"{label} (this week)" if now is not None and week[0] <= now < week[1] else label


def _rows(labels: list[str], figures: list[Figures]) -> list[dict[str, Any]]:
    return [{"label": label, "figures": row} for label, row in zip(labels, figures, strict=True)]


def _series(labels: list[str], figures: list[Figures], measured: bool) -> dict[str, Any]:
    """What usage.js draws: one list per stacked part, rounded to tenths of an hour."""

    def part(name: str) -> list[float]:
        return [round(getattr(row, name) or 0.0, 1) for row in figures]

    parts = ["used_in_bookings", "idle", "released", "unbooked"] if measured else ["booked", "released"]
    return {"labels": labels, "measured": measured, **{name: part(name) for name in parts}}


@login_required
def usage(request: AuthedRequest) -> HttpResponse:
    member = get_usage_member(request)
    now = timezone.now()
    measured = accounting.measured()
    weeks = accounting.last_weeks(now)
    mine = accounting.usage([member.pk], weeks)[member.pk]
    labels = [_label(week, now) for week in weeks]
    chart: dict[str, Any] = {"weeks": _series(labels, mine, measured), "team": None}
    context: dict[str, Any] = {"member": member, "measured": measured, "rows": _rows(labels, mine)}
    context.update(not_measured=NOT_MEASURED, idle_percent=BookingPolicy.current().idle_percent)
    if request.user.is_staff:
        members = list(User.objects.filter(is_active=True).order_by("username"))
        week, team = accounting.team_week([m.pk for m in members], now)
        ordered = [team[m.pk] for m in members]
        chart["team"] = _series([m.username for m in members], ordered, measured)
        context.update(members=members, team_rows=list(zip(members, ordered, strict=True)), team_week=_label(week))
        context["team_height"] = 70 + 26 * len(members)
    context["chart"] = chart
    return render(request, "gpus/usage.html", context)
