"""The ingestion pages (admins): the jobs and their history, a job's form, one run's progress
and log. Thin views: authorize, validate with the form, call one service, render or redirect."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from hostops import rclone
from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from storage import ingestion
from storage.ingestion_forms import IngestionJobForm
from storage.models import IngestionJob, IngestionRun
from storage.remotes import RemotesError, remote_names

HISTORY_ROWS = 50


@dataclass
class JobRow:
    job: IngestionJob
    schedule: str
    bwlimit: str
    last_run: RunRow | None


@dataclass
class RunRow:
    """A run with its figures in words (the template has no filter for decimal sizes)."""

    run: IngestionRun
    duration: str
    size: str
    result: str  # a run left "running" by a dead worker shows its Operation's end
    result_label: str


def run_row(run: IngestionRun) -> RunRow:
    end = run.finished_at or (run.operation.finished if run.operation else None)
    if end:
        duration = ingestion.duration_words((end - run.started_at).total_seconds())
    elif run.result == IngestionRun.Result.RUNNING:
        duration = ingestion.duration_words((timezone.now() - run.started_at).total_seconds()) + " so far"
    else:
        duration = ""
    result, label = run.result, run.get_result_display()
    if run.result == IngestionRun.Result.RUNNING and run.operation is not None:
        if run.operation.is_final:
            result, label = IngestionRun.Result.FAILED, "Failed"
        elif run.operation.state != run.operation.State.RUNNING:
            result, label = "queued", run.operation.get_state_display()
    return RunRow(run, duration, ingestion.size_words(run.bytes), result, label)


@staff_required
@require_GET
def ingestion_list(request: AuthedRequest) -> HttpResponse:
    latest = IngestionRun.objects.filter(job=OuterRef("pk")).order_by("-started_at", "-pk").values("pk")[:1]
    jobs = list(IngestionJob.objects.annotate(last_run_id=Subquery(latest)))
    last_runs = IngestionRun.objects.select_related("operation").in_bulk(
        [job.last_run_id for job in jobs if job.last_run_id]  # type: ignore[attr-defined]
    )
    rows = [
        JobRow(
            job,
            ingestion.schedule_words(job),
            rclone.bwlimit_from_mbps(job.bwlimit_mbps),
            run_row(last_runs[job.last_run_id]) if job.last_run_id in last_runs else None,  # type: ignore[attr-defined]
        )
        for job in jobs
    ]
    runs = [run_row(run) for run in IngestionRun.objects.select_related("job", "operation")[:HISTORY_ROWS]]
    context = {"rows": rows, "runs": runs, "time_zone": settings.TIME_ZONE, "backup_hour": settings.BACKUP_START_HOUR}
    return render(request, "storage/ingestion_list.html", context)


def _form_page(request: AuthedRequest, form: IngestionJobForm, job: IngestionJob | None) -> HttpResponse:
    try:
        remotes, remotes_problem = remote_names(), ""
    except RemotesError as exc:
        remotes, remotes_problem = [], str(exc)
    context = {
        "form": form,
        "job": job,
        "remotes": remotes,
        "remotes_problem": remotes_problem,
        "datasets_path": settings.WORKSPACE_DATASETS_PATH,
        "time_zone": settings.TIME_ZONE,
    }
    return render(request, "storage/ingestion_form.html", context, status=400 if form.errors else 200)


@staff_required
@require_http_methods(["GET", "POST"])
def ingestion_new(request: AuthedRequest) -> HttpResponse:
    if request.method != "POST":
        return _form_page(request, IngestionJobForm(), None)
    form = IngestionJobForm(request.POST)
    if form.is_valid():
        try:
            job = ingestion.ingestion_job_create(
                values=form.cleaned_data, actor=request.user, context=AuditContext.of(request)
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Job {job.name} saved: {ingestion.schedule_words(job)}.")
            return redirect("storage:ingestion")
    return _form_page(request, form, None)


@staff_required
@require_http_methods(["GET", "POST"])
def ingestion_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(IngestionJob, pk=pk)
    if request.method != "POST":
        return _form_page(request, IngestionJobForm(instance=job), job)
    form = IngestionJobForm(request.POST, instance=IngestionJob.objects.get(pk=pk))
    if form.is_valid():
        try:
            job = ingestion.ingestion_job_update(
                job=job, values=form.cleaned_data, actor=request.user, context=AuditContext.of(request)
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Job {job.name} saved: {ingestion.schedule_words(job)}.")
            return redirect("storage:ingestion")
    return _form_page(request, form, job)


@staff_required
@require_POST
def ingestion_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(IngestionJob, pk=pk)
    try:
        ingestion.ingestion_job_delete(job=job, actor=request.user, context=AuditContext.of(request))
    except ingestion.IngestionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Job {job.name} deleted, with its history and schedule.")
    return redirect("storage:ingestion")


@staff_required
@require_POST
def ingestion_run(request: AuthedRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(IngestionJob, pk=pk)
    try:
        op = ingestion.ingestion_run_start(job=job, actor=request.user, context=AuditContext.of(request))
    except ingestion.IngestionError as exc:
        messages.error(request, str(exc))
        return redirect("storage:ingestion")
    run = IngestionRun.objects.get(operation=op)
    if op.state == op.State.FAILED:  # the queue did not take it
        messages.error(request, op.message)
    return redirect("storage:ingestion-run-detail", pk=run.pk)


@staff_required
@require_GET
def ingestion_run_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(IngestionRun.objects.select_related("job", "operation"), pk=pk)
    context = {"row": run_row(run), "run": run, "job": run.job, "op": run.operation}
    return render(request, "storage/ingestion_run.html", context)
