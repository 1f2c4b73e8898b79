"""The scrub section's buttons and schedule form on the storage page (admins)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from portal.models import Operation
from storage import scrub
from storage.scrub_forms import ScrubScheduleForm
from storage.views import overview_page

SECTION = "#scrub"


def _back() -> HttpResponse:
    response = redirect("storage:overview")
    response["Location"] += SECTION
    return response


@staff_required
@require_POST
def scrub_start(request: AuthedRequest) -> HttpResponse:
    try:
        op = scrub.scrub_start(actor=request.user, context=AuditContext.of(request))
    except scrub.ScrubError as exc:
        messages.error(request, str(exc))
        return _back()
    if op.state == Operation.State.FAILED:  # the queue did not take it: nothing runs
        messages.error(request, op.message)
    else:
        messages.success(request, "Scrub asked for: the worker starts it and this page shows how far it is.")
    return _back()


@staff_required
@require_POST
def scrub_cancel(request: AuthedRequest) -> HttpResponse:
    try:
        scrub.scrub_cancel(actor=request.user, context=AuditContext.of(request))
    except scrub.ScrubError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Cancelling: the worker stops the scrub within a few seconds.")
    return _back()


@staff_required
@require_POST
def scrub_schedule(request: AuthedRequest) -> HttpResponse:
    form = ScrubScheduleForm(request.POST)
    if not form.is_valid():
        return overview_page(request, scrub_form=form, status=400)
    data = form.cleaned_data
    try:
        scrub.scrub_schedule_update(
            enabled=data["enabled"],
            day_of_week=data["day_of_week"],
            hour=data["hour"],
            minute=data["minute"],
            actor=request.user,
            context=AuditContext.of(request),
        )
    except scrub.ScrubError as exc:
        form.add_error(None, str(exc))
        return overview_page(request, scrub_form=form, status=400)
    schedule = scrub.Schedule(data["enabled"], data["day_of_week"], data["hour"], data["minute"])
    if data["enabled"]:
        messages.success(request, f"The scrub runs on {schedule.words}.")
    else:
        messages.success(request, "The monthly scrub is off; Scrub now still starts one.")
    return _back()
