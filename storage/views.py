"""The storage page (admins): the filesystem, its devices, each member's usage; and the
deletion of a departed member's storage. Views read what the worker recorded, never the host."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from portal.models import User
from storage import services
from storage.cards import usage_figures
from storage.forms import MemberStorageDeleteForm
from storage.models import FilesystemState, MemberStorage
from storage.scrub import scrub_section_context


def overview_page(request: AuthedRequest, *, scrub_form: Any = None, status: int = 200) -> HttpResponse:
    """The page, also with a scrub schedule form that failed (shown again with its messages,
    status 400)."""
    rows = MemberStorage.objects.exclude(state=MemberStorage.State.DELETED).select_related("user", "user__quota")
    members = [usage_figures(row, getattr(row.user, "quota", None)) for row in rows]
    members.sort(key=lambda figures: -(figures["used"] or 0))
    context = {
        "fs": FilesystemState.objects.filter(root=settings.STORAGE_ROOT).first(),
        "storage_root": settings.STORAGE_ROOT,
        "members": members,
        "chart": _chart(members),
        "chart_height": 70 + 30 * sum(1 for figures in members if figures["measured"]),
        "usage_every_minutes": settings.STORAGE_USAGE_SECONDS // 60,
        **scrub_section_context(form=scrub_form),
    }
    return render(request, "storage/overview.html", context, status=status)


@staff_required
@require_GET
def overview(request: AuthedRequest) -> HttpResponse:
    return overview_page(request)


_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2))


def _chart(members: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-member bars (home and scratch stacked) and each member's soft limit, in the unit
    that suits the largest figure: GiB from 1 GiB, TiB from 10 TiB."""
    measured = [figures for figures in members if figures["measured"]]
    largest = max((max(figures["used"] or 0, figures["soft"] or 0) for figures in measured), default=0)
    unit, scale = next(
        ((name, size) for name, size in _UNITS if largest >= (10 if name == "TiB" else 1) * size), _UNITS[-1]
    )
    rows = [figures["row"] for figures in measured]
    return {
        "unit": unit,
        "labels": [row.user.username for row in rows],
        "home": [round((row.home_referenced or 0) / scale, 2) for row in rows],
        "scratch": [round((row.scratch_referenced or 0) / scale, 2) for row in rows],
        "soft": [round((figures["soft"] or 0) / scale, 2) for figures in measured],
        "over": [bool(figures["over_soft"]) for figures in measured],
    }


@staff_required
@require_POST
def member_storage_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    member = get_object_or_404(User, pk=pk)
    form = MemberStorageDeleteForm(request.POST, member=member)
    back = reverse("member-detail", args=[member.pk]) + "#member-storage"
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for error in form.errors["confirm"]))
        return redirect(back)
    try:
        operation = services.member_storage_delete(
            member=member,
            confirmation=form.cleaned_data["confirm"],
            actor=request.user,
            context=AuditContext.of(request),
        )
    except services.StorageRefused as exc:
        messages.error(request, str(exc))
        return redirect(back)
    if operation.state == operation.State.FAILED:
        messages.error(request, operation.message)
    else:
        messages.success(request, f"Deleting {member}'s home and scratch: follow it under Recent jobs.")
    return redirect(back)
