"""Server health, for admins: the host's CPU, memory, pressure and disks over a span of time,
and the GPUs' use from the gpus app's samples. It reads rows only (the worker samples): a few
queries whatever the span."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from gpus import accounting
from monitoring import charts, doctor
from monitoring.forms import RangeForm
from monitoring.series import SPANS, series_read, window_for
from portal.access import AuthedRequest, staff_required


@require_GET
@staff_required
def overview(request: AuthedRequest) -> HttpResponse:
    form = RangeForm(request.GET or None)
    now = timezone.now()
    window = window_for(SPANS[form.span_key()], now=now)
    host = charts.host_charts(window, series_read(window, ("host.", "disk.")))
    gpu = charts.gpu_charts(window)
    context = {
        "form": form,
        "window": window,
        "spans": SPANS.values(),
        "host": host,
        "gpu": gpu,
        "measured": any(not chart.empty for chart in host.values()),
        "gpus_sampled": gpu is not None or accounting.measured(),
        "latest": charts.latest(now=now),
        "fresh_minutes": int(charts.FRESH.total_seconds() // 60),
        "disk_paths": settings.MONITORING_DISK_PATHS,
        "data": charts.chart_data(window, {**host, **(gpu or {})}),
    }
    return render(request, "monitoring/overview.html", context, status=400 if form.errors else 200)


@staff_required
@require_POST
def doctor_run_now(request: AuthedRequest) -> HttpResponse:
    """The card's "Run checks now": the worker runs them (never this request) and the card
    shows its report when it comes."""
    problem = doctor.doctor_request()
    if problem:
        messages.error(request, problem)
    else:
        messages.success(request, "Checks sent to the worker: the Health checks card shows them in a few seconds.")
    return redirect(f"{reverse('dashboard')}#doctor-card")
