"""Server health, for admins: the host's CPU, memory, pressure and disks over a span of time,
and the GPUs' use from the gpus app's samples. It reads rows only (the worker samples): a few
queries whatever the span. And /metrics, the same figures and the portal's state for Prometheus,
behind a bearer token."""

from __future__ import annotations

import copy
import hashlib
import hmac

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from gpus import accounting
from monitoring import charts, costs, doctor, usage
from monitoring.forms import CloudInstanceFormSet, CostSettingsForm, RangeForm
from monitoring.metrics import metrics_text
from monitoring.models import CloudInstance, CostSettings
from monitoring.series import SPANS, series_read, window_for
from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
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


@login_not_required  # the bearer token is the login; a session counts for nothing here
@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' scrape (monitoring/metrics.py), for the holder of METRICS_TOKEN only."""
    token = str(settings.METRICS_TOKEN)
    if not token:
        return _plain("Metrics are off: no METRICS_TOKEN is configured on the portal.\n", 403)
    if not _bearer_matches(request, token):
        response = _plain("A valid bearer token is required (Authorization: Bearer <METRICS_TOKEN>).\n", 401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_text(now=timezone.now()), content_type=CONTENT_TYPE_LATEST)


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Digests of equal length, compared in constant time: neither the token nor its length leaks.
    given_digest, token_digest = (hashlib.sha256(value.encode()).digest() for value in (given.strip(), token))
    return scheme.lower() == "bearer" and hmac.compare_digest(given_digest, token_digest)


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


@require_GET
def workspace_figures(request: AuthedRequest, pk: int) -> HttpResponse:
    """The workspace card's CPU, memory and network over the last six hours (htmx fragment):
    the owner's own, or any for admins (get_workspace_for_user refuses everyone else)."""
    workspace = get_workspace_for_user(request, pk)
    window = window_for(SPANS[CARD_SPAN], now=timezone.now())
    context = {"ws": workspace, "window": window, "lines": usage.workspace_sparklines(workspace, window)}
    return render(request, "monitoring/_workspace_figures.html", context)


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
