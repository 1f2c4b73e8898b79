"""The disk planning page (admins): the server's disks, the BTRFS layout proposed on them with
its exact commands, and the apply, which needs the disks' names typed and old signatures ticked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from storage import planning
from storage.disk_forms import DiskApplyForm, DiskChoiceForm
from storage.planning import DiskChoice, DiskPlanError, Survey

if TYPE_CHECKING:
    from hostops.disks import Plan


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
    context = {
        "survey": survey,
        "choice_form": choice_form,
        "plan": plan,
        "plan_error": plan_error,
        "script": planning.plan_script(plan) if plan is not None else "",
        "apply_form": apply_form,
        "refused": refused or [],
        "op": planning.disk_apply_latest(),
    }
    return render(request, "storage/disks_plan.html", context, status=status)


def _initial(choice: DiskChoice | None, plan: Plan | None) -> dict[str, Any]:
    if choice is None:
        return {}
    devices = list(plan.devices) if plan is not None else list(choice.devices)
    return {"devices": devices, "profile": choice.profile, "label": choice.label, "mount_target": choice.target}


@staff_required
@require_GET
def disks_plan(request: AuthedRequest) -> HttpResponse:
    survey = planning.disk_survey()
    if not request.GET:
        return _page(request, survey, choice=DiskChoice())
    form = DiskChoiceForm(request.GET, survey=survey)
    if not form.is_valid():
        return _page(request, survey, choice=None, choice_form=form, status=400)
    return _page(request, survey, choice=form.choice(), choice_form=form)


@staff_required
@require_POST
def disks_apply(request: AuthedRequest) -> HttpResponse:
    survey = planning.disk_survey()
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
