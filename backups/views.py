"""The Backups pages (admins): the overview of the tiers, a tier's policy form, its retention
preview, and the prune simulator. They render rows (policies, runs, snapshots, beat rows) and
never ask the host: the worker records what exists."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Min, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from backups import drill, drill_schedule, offsite, offsite_repo, policies, snapshots
from backups.drill_forms import DrillScheduleForm
from backups.forms import RULE_LABELS, BackupPolicyForm, SimulatorForm
from backups.models import KEEP_FIELDS, BackupPolicy, BackupRun, Snapshot
from backups.retention import PolicyError
from hostops import restic
from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from portal.models import Operation
from storage.models import FilesystemState

_RESULT_PILLS: dict[str, str] = {
    BackupRun.Result.RUNNING: "pill-info",
    BackupRun.Result.SUCCEEDED: "pill-ok",
    BackupRun.Result.PARTIAL: "pill-warn",
    BackupRun.Result.FAILED: "pill-bad",
}


def _snapshots_unavailable() -> bool:
    """What the worker last found: the storage root is not BTRFS (None: not read yet)."""
    fs = FilesystemState.objects.filter(root=settings.STORAGE_ROOT).first()
    return fs is not None and not fs.on_btrfs


def _tier_rows(now: Any) -> list[dict[str, Any]]:
    rows = []
    for policy in BackupPolicy.in_order(BackupPolicy.objects.select_related("periodic_task__crontab")):
        runs = BackupRun.objects.filter(kind=policy.tier)
        last = runs.first()
        good = runs.filter(result__in=[BackupRun.Result.SUCCEEDED, BackupRun.Result.PARTIAL]).first()
        good_at = (good.finished_at or good.started_at) if good else None
        rows.append(
            {
                "policy": policy,
                "retention": policies.retention_words(policy),
                "schedule": policies.schedule_of(policy.periodic_task),
                "next": policies.next_run(policy.periodic_task, now),
                "last": last,
                "last_pill": _RESULT_PILLS.get(last.result, "") if last else "",
                "last_good_at": good_at,
                "problem": offsite_repo.problem() if policy.tier == BackupPolicy.Tier.RESTIC else None,
                "location": offsite_repo.describe() if policy.tier == BackupPolicy.Tier.RESTIC else "",
                "limit_kib": restic.limit_from_mbps(policy.upload_limit_mbps),
                "overdue": bool(
                    policy.enabled and good_at is not None and now - good_at > timedelta(hours=policy.max_age_hours)
                ),
            }
        )
    return rows


def _drill_context(now: Any, form: DrillScheduleForm | None) -> dict[str, Any]:
    """The overview's drill section: the last drill, the next one, its schedule and form."""
    task = drill_schedule.drill_beat_row()
    schedule = drill_schedule.schedule_of(task)
    last = BackupRun.objects.filter(kind=BackupRun.Kind.DRILL).first()
    files = (last.details or {}).get("files", []) if last else []
    return {
        "drill_last": last,
        "drill_last_pill": _RESULT_PILLS.get(last.result, "") if last else "",
        "drill_files": len(files),
        "drill_matched": sum(1 for item in files if item.get("match")),
        "drill_subset": (last.details or {}).get("subset", "") if last else "",
        "drill_next": policies.next_run(task, now),
        "drill_schedule": schedule if task is not None else None,
        "drill_form": form or DrillScheduleForm(initial=schedule.__dict__),
        "drill_problem": offsite_repo.problem(),
    }


@staff_required
@require_GET
def overview(request: AuthedRequest) -> HttpResponse:
    return _overview_page(request)


def _overview_page(request: AuthedRequest, *, drill_form: DrillScheduleForm | None = None) -> HttpResponse:
    """The overview; with a drill schedule form that failed, shown again with its words (400)."""
    now = timezone.now()
    sources = (
        Snapshot.objects.filter(deleted_at=None)
        .values("source", "owner__username")
        .annotate(
            count=Count("pk"), oldest=Min("taken_at"), newest=Max("taken_at"), pinned=Count("pk", filter=~Q(pinned=""))
        )
        .order_by("source")
    )
    context = {
        "tiers": _tier_rows(now),
        "has_restic": BackupPolicy.objects.filter(tier=BackupPolicy.Tier.RESTIC).exists(),
        "sources": list(sources),
        "snapshots_unavailable": _snapshots_unavailable(),
        "storage_root": settings.STORAGE_ROOT,
        "time_zone": settings.TIME_ZONE,
        **_drill_context(now, drill_form),
    }
    return render(request, "backups/overview.html", context, status=400 if drill_form is not None else 200)


@staff_required
@require_http_methods(["GET", "POST"])
def policy_edit(request: AuthedRequest, tier: str) -> HttpResponse:
    policy = get_object_or_404(BackupPolicy.objects.select_related("periodic_task__crontab"), tier=tier)
    status = 200
    if request.method == "POST":
        form = BackupPolicyForm(request.POST, tier=policy.tier)
        if form.is_valid():
            try:
                policies.backup_policy_update(
                    policy=policy, values=form.cleaned_data, actor=request.user, context=AuditContext.of(request)
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(None if field not in form.fields else field, errors)
            else:
                messages.success(request, f"Saved the policy of {policy}.")
                return redirect("backups:overview")
        status = 400
    else:
        initial = policies.policy_values(policy)
        if "excludes" in initial:
            initial["excludes"] = "\n".join(initial["excludes"])
        form = BackupPolicyForm(initial=initial, tier=policy.tier)
    context = {
        "policy": policy,
        "form": form,
        "keep_fields": [form[name] for name in KEEP_FIELDS],
        "time_zone": settings.TIME_ZONE,
    }
    return render(request, "backups/policy_edit.html", context, status=status)


@staff_required
@require_GET
def preview(request: AuthedRequest, tier: str) -> HttpResponse:
    policy = get_object_or_404(BackupPolicy, tier=tier)
    problem, sources = "", []
    try:
        sources = policies.retention_preview(policy)
    except PolicyError as exc:
        problem = f"This policy can't be applied ({exc.message}); fix it on the policy page."
    context = {
        "policy": policy,
        "retention": policies.retention_words(policy),
        "sources": sources,
        "problem": problem,
        "snapshots_unavailable": _snapshots_unavailable(),
        "time_zone": settings.TIME_ZONE,
    }
    return render(request, "backups/policy_preview.html", context)


@staff_required
@require_http_methods(["GET", "POST"])
def simulator(request: AuthedRequest) -> HttpResponse:
    rows: list[policies.PlanRow] | None = None
    status = 200
    if request.method == "POST":
        form = SimulatorForm(request.POST)
        if form.is_valid() and form.cleaned_data.get("policy") is not None:
            data = form.cleaned_data
            rows = policies.simulate(data["times"], data["policy"], now=data["now"])
        else:
            status = 400
    else:
        snapshot = BackupPolicy.objects.filter(tier=BackupPolicy.Tier.SNAPSHOT).first()
        form = SimulatorForm(initial=snapshot.keep() if snapshot else {"keep_daily": 7})
    context = {
        "form": form,
        "keep_fields": [form[name] for name in KEEP_FIELDS],
        "rows": rows,
        "entries": policies.compact(rows) if rows else [],
        "kept": sum(1 for row in rows if row.keep) if rows else 0,
        "removed": sum(1 for row in rows if not row.keep) if rows else 0,
        "rules": RULE_LABELS.values(),
    }
    return render(request, "backups/retention_simulator.html", context, status=status)


def _start_now(
    request: AuthedRequest, start: Callable[..., Operation], refused: type[Exception], started: str, back: str
) -> HttpResponse:
    """An admin's "… now" button: start the job, say so (or why not), back to the overview."""
    try:
        operation = start(actor=request.user, context=AuditContext.of(request))
    except refused as exc:
        messages.error(request, str(exc))
    else:
        if operation.state == operation.State.FAILED:
            messages.error(request, operation.message)
        else:
            messages.success(request, started)
    return redirect(back)


@staff_required
@require_POST
def snapshot_now(request: AuthedRequest) -> HttpResponse:
    """An admin's pass now, like the hourly one; followed on the dashboard's job list."""
    started = "Taking snapshots now: the History page shows the run when it ends."
    back = reverse("backups:overview")
    return _start_now(request, snapshots.snapshot_run_now, snapshots.SnapshotError, started, back)


@staff_required
@require_POST
def offsite_now(request: AuthedRequest) -> HttpResponse:
    """An admin's offsite backup now, like the nightly one; followed on the dashboard's job list."""
    started = "Backing up offsite now: the History page shows the run when it ends."
    return _start_now(request, offsite.offsite_run_now, offsite.OffsiteError, started, reverse("backups:overview"))


@staff_required
@require_POST
def drill_now(request: AuthedRequest) -> HttpResponse:
    """An admin's restore drill now; its run shows on the History page when it ends."""
    started = "Drill started: it restores a sample of files and checks a twelfth of the data."
    return _start_now(request, drill.drill_run_now, drill.DrillError, started, f"{reverse('backups:overview')}#drill")


@staff_required
@require_POST
def drill_schedule_edit(request: AuthedRequest) -> HttpResponse:
    form = DrillScheduleForm(request.POST)
    if not form.is_valid():
        return _overview_page(request, drill_form=form)
    try:
        drill_schedule.drill_schedule_update(**form.cleaned_data, actor=request.user, context=AuditContext.of(request))
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return _overview_page(request, drill_form=form)
    data = form.cleaned_data
    if data["enabled"]:
        when = drill_schedule.DrillSchedule(**data).words
        messages.success(request, f"The restore drill runs on {when}.")
    else:
        messages.success(request, "The monthly drill is off; Run drill now still starts one.")
    return redirect(f"{reverse('backups:overview')}#drill")
