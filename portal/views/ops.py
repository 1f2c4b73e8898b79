"""Health of the portal and the progress of long jobs."""

from __future__ import annotations

from celery import current_app as celery_app
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from portal import cards
from portal.access import AuthedRequest, get_operation_for_user
from portal.models import WorkerHeartbeat


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "down"
        return f"database: {exc.__class__.__name__}: {exc}"[:300]
    return None


def _check_broker() -> str | None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # kombu raises many transport-specific types
        return f"broker: {exc.__class__.__name__}: {exc}"[:300]
    return None


def _check_worker() -> tuple[str | None, float | None]:
    beat = WorkerHeartbeat.objects.filter(queue=settings.CELERY_TASK_DEFAULT_QUEUE).first()
    if beat is None:
        return "worker: no heartbeat yet", None
    age = (timezone.now() - beat.seen_at).total_seconds()
    if age > settings.WORKER_HEARTBEAT_STALE_SECONDS:
        return f"worker: last heartbeat {int(age)} s ago", age
    return None, age


@login_not_required
@never_cache
@require_GET
def healthz(request: AuthedRequest) -> HttpResponse:
    """200 when database, broker and a worker are fine; 503 naming what is down."""
    database = _check_database()
    broker = _check_broker()
    worker, age = (None, None) if database else _check_worker()
    problems = [p for p in (database, broker, worker) if p]
    body = {
        "status": "ok" if not problems else "down",
        "database": "down" if database else "ok",
        "broker": "down" if broker else "ok",
        "worker": "down" if (worker or database) else "ok",
        "worker_heartbeat_age_s": None if age is None else round(age, 1),
        "problems": problems,
    }
    return JsonResponse(body, status=200 if not problems else 503)


@require_GET
def operation_status(request: AuthedRequest, pk: int) -> HttpResponse:
    """The progress partial; htmx polls it and stops (286) once the job is final."""
    op = get_operation_for_user(request, pk)
    response = render(request, "portal/_operation.html", {"op": op})
    if op.is_final and request.htmx:
        stopped = HttpResponseStopPolling(response.content)
        stopped["HX-Trigger"] = "operation-finished"  # the Recent jobs card reloads itself
        return stopped
    return response


@require_GET
def recent_jobs(request: AuthedRequest) -> HttpResponse:
    """The dashboard's Recent jobs card alone, for its reload when a job ends."""
    panel = cards.recent_jobs_card(request)
    return render(request, panel.template, panel.context)
