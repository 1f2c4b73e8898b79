"""The backups' history for admins: every run of every tier, newest first, a chart of how long
each took and how much it made, and a banner while a tier is failing or overdue. It renders rows
only (the worker records them): a fixed number of queries however many runs there are."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from backups.alerts import Verdict, judge, judge_drill
from backups.history_forms import HistoryFilterForm
from backups.models import BackupPolicy, BackupRun
from portal.access import AuthedRequest, staff_required
from portal.env import format_size
from storage.models import FilesystemState

RUNS_PER_PAGE = 48  # two days of hourly snapshot runs
GIB = 1024**3


def _duration(run: BackupRun) -> str:
    seconds = int(run.duration.total_seconds()) if run.duration else None
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _made(run: BackupRun) -> str:
    """What the run made, in the words of its kind ("" for a run that made nothing at all)."""
    if run.kind == BackupRun.Kind.DRILL and run.details.get("files"):
        files = run.details["files"]
        matched = sum(1 for item in files if item.get("match"))
        return f"{matched} of {len(files)} files matched, {format_size(run.details.get('bytes_read', 0))} restored"
    if run.result == BackupRun.Result.FAILED and not (run.snapshots_made or run.snapshots_removed or run.files_new):
        return ""
    if run.kind == BackupRun.Kind.SNAPSHOT:
        return f"{run.snapshots_made} made, {run.snapshots_removed} removed"
    if run.kind == BackupRun.Kind.RESTIC:
        total = f", {format_size(run.bytes_total)} in all" if run.bytes_total else ""
        return f"{run.files_new:,} files, {format_size(run.bytes_new)} new{total}"
    return ""


def _chart(runs: list[BackupRun]) -> dict[str, Any]:
    """The page's runs, oldest first, for the chart (the table lists the same runs)."""
    ordered = sorted(runs, key=lambda run: run.started_at)
    return {
        "labels": [f"{timezone.localtime(run.started_at):%m-%d %H:%M}" for run in ordered],
        "ids": [run.pk for run in ordered],
        "kinds": [run.kind for run in ordered],
        "results": [run.result for run in ordered],
        "seconds": [round(run.duration.total_seconds()) if run.duration else None for run in ordered],
        "snapshots": [run.snapshots_made if run.kind == BackupRun.Kind.SNAPSHOT else None for run in ordered],
        # A failed offsite run has no size of its own: a gap in the line, not a drop to zero.
        "gib": [
            round(run.bytes_total / GIB, 2) if run.kind == BackupRun.Kind.RESTIC and run.bytes_total else None
            for run in ordered
        ],
    }


def _incidents() -> tuple[list[tuple[BackupPolicy, Verdict, bool]], tuple[Verdict, bool] | None]:
    """Each enabled tier that is failing or overdue by its rows now, and whether the admins were
    told (judged here too, so the page says it even when the worker that sends alerts is down);
    then the restore drill's overdue incident the same way. A few queries per tier, and there
    are two tiers."""
    now = timezone.now()
    found = []
    drill: tuple[Verdict, bool] | None = None
    for policy in BackupPolicy.in_order(BackupPolicy.objects.filter(enabled=True)):
        verdict = judge(policy, now=now)
        if verdict.incident:
            found.append((policy, verdict, policy.incident == verdict.incident))
        if policy.tier == BackupPolicy.Tier.RESTIC:
            overdue = judge_drill(policy, now=now)
            drill = (overdue, policy.drill_overdue_since is not None) if overdue.incident else None
    return found, drill


def _snapshots_available() -> bool | None:
    """What the worker last found: is the storage root on BTRFS (None: not read yet)."""
    state = FilesystemState.objects.filter(root=str(settings.STORAGE_ROOT)).only("on_btrfs").first()
    return None if state is None else state.on_btrfs


@require_GET
@staff_required
def history(request: AuthedRequest) -> HttpResponse:
    form = HistoryFilterForm(request.GET or None)
    runs = BackupRun.objects.all()
    kind = ""
    if form.is_bound and form.is_valid():
        kind = form.cleaned_data["kind"]
        if kind:
            runs = runs.filter(kind=kind)
    page: Page[BackupRun] = Paginator(runs.order_by("-started_at", "-pk"), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    listed = list(page.object_list)
    incidents, drill_incident = _incidents()
    context = {
        "form": form,
        "kind": kind,
        "page": page,
        "rows": [(run, _duration(run), _made(run)) for run in listed],
        "chart": _chart(listed),
        "incidents": incidents,
        "drill_incident": drill_incident,
        "on_btrfs": _snapshots_available(),
        "storage_root": settings.STORAGE_ROOT,
    }
    return render(request, "backups/history_list.html", context, status=400 if form.errors else 200)


@require_GET
@staff_required
def history_run(request: AuthedRequest, pk: int) -> HttpResponse:
    """One run: its figures, its Operation's progress and log, the snapshots it made (a drill:
    the files it sampled, with their checksums, and what the check read and found)."""
    run = get_object_or_404(BackupRun.objects.select_related("operation"), pk=pk)
    snapshots = list(run.snapshots.order_by("source")[:200])
    details = run.details if isinstance(run.details, dict) else {}
    context = {
        "run": run,
        "op": run.operation,
        "duration": _duration(run),
        "made": _made(run),
        "snapshots": snapshots,
        "offsite_sources": details.get("sources", []) if run.kind == BackupRun.Kind.RESTIC else [],
        "offsite_forget": details.get("forget") if run.kind == BackupRun.Kind.RESTIC else None,
        "drill": run.details if run.kind == BackupRun.Kind.DRILL and run.details else None,
    }
    return render(request, "backups/history_run.html", context)
