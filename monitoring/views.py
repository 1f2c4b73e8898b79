"""Server health, for admins: the host's CPU, memory, pressure and disks over a span of time,
and the GPUs' use from the gpus app's samples. It reads rows only (the worker samples): a few
queries whatever the span."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from gpus import accounting
from monitoring import charts, usage
from monitoring.forms import RangeForm
from monitoring.series import SPANS, series_read, window_for
from portal.access import AuthedRequest, staff_required
from workspaces.access import get_workspace_for_user

CARD_SPAN = "6h"  # the workspace card's sparklines: the last six hours


@require_GET
@staff_required
def overview(request: AuthedRequest) -> HttpResponse:
    form = RangeForm(request.GET or None)
    now = timezone.now()
    window = window_for(SPANS[form.span_key()], now=now)
    read = series_read(window, ("host.", "disk.", "ws."))
    host = charts.host_charts(window, read)
    gpu = charts.gpu_charts(window)
    gpus_measured = accounting.measured()
    members = usage.members_use(window, read, gpus_measured=gpus_measured)
    context = {
        "members": members,
        "form": form,
        "window": window,
        "spans": SPANS.values(),
        "host": host,
        "gpu": gpu,
        "measured": any(not chart.empty for chart in host.values()),
        "gpus_sampled": gpu is not None or gpus_measured,
        "latest": charts.latest(now=now),
        "fresh_minutes": int(charts.FRESH.total_seconds() // 60),
        "disk_paths": settings.MONITORING_DISK_PATHS,
        "data": charts.chart_data(window, {**host, **(gpu or {}), **members.charts}),
    }
    return render(request, "monitoring/overview.html", context, status=400 if form.errors else 200)


@require_GET
def workspace_figures(request: AuthedRequest, pk: int) -> HttpResponse:
    """The workspace card's CPU, memory and network over the last six hours (htmx fragment):
    the owner's own, or any for admins (get_workspace_for_user refuses everyone else)."""
    workspace = get_workspace_for_user(request, pk)
    window = window_for(SPANS[CARD_SPAN], now=timezone.now())
    context = {"ws": workspace, "window": window, "lines": usage.workspace_sparklines(workspace, window)}
    return render(request, "monitoring/_workspace_figures.html", context)
