"""The disk planning page (admins): the server's disks as its worker last read them, the BTRFS
layout proposed on them with its exact commands, the button that has the worker read them again,
and the apply, which needs the disks' names typed and old signatures ticked. No view here reads
the host: the web process has no /dev."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST

from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from storage import planning
from storage.disk_forms import DiskApplyForm, DiskChoiceForm
from storage.planning import DiskChoice, DiskPlanError, DiskScanBusy, Survey

if TYPE_CHECKING:
    from hostops.disks import Plan
    from portal.models import Operation


def _page(
    request: AuthedRequest,
    survey: Survey,
    *,
    choice: DiskChoice | None,
    choice_form: DiskChoiceForm | None = None,
    apply_form: DiskApplyForm | None = None,
    refused: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The page for ``choice`` (None: a choice that did not validate, so no plan). A bound form
    keeps what was sent and its messages; ``refused`` are an apply's messages shown above a
    fresh form, when what it sent could not even name a plan."""
    plan, plan_error = None, ""
    if choice is not None and not survey.error:
        try:
            plan = planning.disk_plan(survey, choice)
        except DiskPlanError as exc:
            plan_error = str(exc)
            status = 400 if choice_form is not None and choice_form.is_bound else status
    initial = _initial(choice, plan)
    if choice_form is None:
        choice_form = DiskChoiceForm(initial=initial, survey=survey)
    if plan is None or plan.profile == "none":
        apply_form = None
    else:
        if apply_form is None:
            apply_form = DiskApplyForm(initial={**initial, "plan_digest": planning.plan_digest(plan)}, survey=survey)
        apply_form.show_confirmations(plan.needs_confirmation)
    scan_op, apply_op = planning.disk_scan_operation_latest(), planning.disk_apply_latest()
    context = {
        "survey": survey,
        "read_ago": _ago(survey),
        "scan_fresh_minutes": int(planning.SCAN_FRESH.total_seconds() // 60),
        "scan_op": scan_op,
        "scan_op_shown": scan_op is not None and _shown(scan_op, survey),
        "choice_form": choice_form,
        "plan": plan,
        "plan_error": plan_error,
        "script": planning.plan_script(plan) if plan is not None else "",
        "apply_form": apply_form,
        "refused": refused or [],
        "op": apply_op,
        # While a job runs, the page reloads itself when it ends (the new disks, the new plan).
        "polling": any(job is not None and not job.is_final for job in (scan_op, apply_op)),
        "reload_url": request.get_full_path() if request.method == "GET" else reverse("storage:disks"),
    }
    return render(request, "storage/disks_plan.html", context, status=status)


def _shown(scan_op: Operation, survey: Survey) -> bool:
    """A reading under way, or one that failed without a scan to show for it (the queue down)."""
    if not scan_op.is_final:
        return True
    return scan_op.state == scan_op.State.FAILED and (survey.read_at is None or scan_op.created > survey.read_at)


def _ago(survey: Survey) -> str:
    if survey.read_at is None:
        return ""
    if timezone.now() - survey.read_at < timedelta(minutes=1):
        return "just now"
    return f"{timesince(survey.read_at)} ago"


def _initial(choice: DiskChoice | None, plan: Plan | None) -> dict[str, Any]:
    if choice is None:
        return {}
    devices = list(plan.devices) if plan is not None else list(choice.devices)
    return {"devices": devices, "profile": choice.profile, "label": choice.label, "mount_target": choice.target}


@staff_required
@require_GET
def disks_plan(request: AuthedRequest) -> HttpResponse:
    survey = planning.disk_survey(planning.disk_scan_latest())
    if not request.GET:
        return _page(request, survey, choice=DiskChoice())
    form = DiskChoiceForm(request.GET, survey=survey)
    if not form.is_valid():
        return _page(request, survey, choice=None, choice_form=form, status=400)
    return _page(request, survey, choice=form.choice(), choice_form=form)


@staff_required
@require_POST
def disks_apply(request: AuthedRequest) -> HttpResponse:
    survey = planning.disk_survey(planning.disk_scan_latest())
    form = DiskApplyForm(request.POST, survey=survey)
    if not form.is_valid():
        choice = form.choice()
        if choice is None or "plan_digest" in form.errors:  # hidden fields: say so above a fresh form
            refused = [str(error) for errors in form.errors.values() for error in errors]
            return _page(request, survey, choice=choice or DiskChoice(), refused=refused, status=400)
        return _page(request, survey, choice=choice, apply_form=form, status=400)
    data = form.cleaned_data
    try:
        operation = planning.disk_plan_apply(
            devices=data["devices"],
            profile=data["profile"],
            label=data["label"],
            mount_target=data["mount_target"],
            confirmed_disks=data["confirmed_disks"],
            typed_confirmation=data["typed_confirmation"],
            shown_digest=data["plan_digest"],
            actor=request.user,
            context=AuditContext.of(request),
        )
    except DiskPlanError as exc:  # the plan may have changed: show it again, to be confirmed afresh
        return _page(request, survey, choice=form.choice(), refused=[str(exc)], status=400)
    if operation.state == operation.State.FAILED:  # the job queue did not take it
        messages.error(request, operation.message)
    else:
        messages.success(request, "The plan is queued on the server's worker; its progress is below.")
    return redirect("storage:disks")


@staff_required
@require_POST
def disks_scan(request: AuthedRequest) -> HttpResponse:
    """Have the server's worker read the disks again; the page polls the reading and shows the
    disks once it is done. The POST carries nothing to validate: what is read is the host's."""
    try:
        operation = planning.disk_scan_request(actor=request.user, context=AuditContext.of(request))
    except DiskScanBusy as exc:
        messages.info(request, str(exc))
        return redirect("storage:disks")
    if operation.state == operation.State.FAILED:  # the job queue did not take it
        messages.error(request, operation.message)
    else:
        messages.success(request, "The server's worker is reading the disks; the page shows them when it is done.")
    return redirect("storage:disks")
