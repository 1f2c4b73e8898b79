"""Server health, for admins: the host's CPU, memory, pressure and disks over a span of time,
and the GPUs' use from the gpus app's samples. It reads rows only (the worker samples): a few
queries whatever the span."""

from __future__ import annotations

import copy

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from gpus import accounting
from monitoring import charts, costs
from monitoring.forms import CloudInstanceFormSet, CostSettingsForm, RangeForm
from monitoring.models import CloudInstance, CostSettings
from monitoring.series import SPANS, series_read, window_for
from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext


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


@require_http_methods(["GET", "POST"])
@staff_required
def cost(request: AuthedRequest) -> HttpResponse:
    """The Cost page; its two forms post here, told apart by their submit button."""
    config = CostSettings.current()
    data = request.POST if request.method == "POST" else None
    # The forms get copies: a refused form must not change the figures the page shows.
    form = CostSettingsForm(data if data and "save_settings" in data else None, instance=copy.copy(config))
    formset = CloudInstanceFormSet(data if data and "save_prices" in data else None, prefix="prices")
    if form.is_bound and form.is_valid():
        costs.cost_settings_update(form=form, actor=request.user, context=AuditContext.of(request))
        messages.success(request, "Cost settings saved.")
        return redirect("monitoring:cost")
    if formset.is_bound and formset.is_valid():
        changed = costs.cloud_prices_update(formset=formset, actor=request.user, context=AuditContext.of(request))
        messages.success(request, f"Price table saved ({changed} row{'s' if changed != 1 else ''} changed).")
        return redirect("monitoring:cost")
    rows = list(CloudInstance.objects.all()) if formset.is_bound else list(formset.get_queryset())
    report = costs.cost_report(rows=rows, config=config)
    context = {"report": report, "form": form, "formset": formset, "data": costs.chart_data(report)}
    refused = form.is_bound or formset.is_bound or data is not None
    return render(request, "monitoring/cost.html", context, status=400 if refused else 200)
