"""The alert pages, for admins: incidents now (with "silence"), the rules and their edit form,
the silences (end early) and the history. Views read rows; the evaluation is beat's."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from monitoring.alerts import EVALUATION_LATE, last_evaluation
from monitoring.forms import AlertRuleForm, HistoryForm, SilenceForm
from monitoring.models import Alert, AlertRule, Silence
from monitoring.rules import KINDS, ORDER, format_value, kind_of, rules_ensure
from monitoring.services import alert_rule_update, silence_create, silence_end
from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext

HISTORY_PER_PAGE = 50


def _late(evaluated_at: datetime | None) -> bool:
    return evaluated_at is None or timezone.now() - evaluated_at > EVALUATION_LATE


def _rows(alerts: list[Alert]) -> list[tuple[Alert, str, str, str]]:
    """Each incident with its reading and threshold in the rule's unit, and whom it told."""
    return [(alert, _value(alert), format_value(alert.rule, alert.threshold), _told(alert)) for alert in alerts]


def _value(alert: Alert) -> str:
    """The last reading, and the worst one when it was worse ("93 %, peak 97 %")."""
    value = format_value(alert.rule, alert.value)
    if alert.peak is None or alert.peak == alert.value or kind_of(alert.rule).yes_no:
        return value
    return f"{value}, peak {format_value(alert.rule, alert.peak)}"


def _told(alert: Alert) -> str:
    if kind_of(alert.rule).told_elsewhere:
        return f"by {kind_of(alert.rule).told_elsewhere}"
    if alert.notified_at:
        return "yes"
    return "silenced" if alert.silenced else ("no" if alert.fired_at else "—")


@require_GET
@staff_required
def alerts(request: AuthedRequest) -> HttpResponse:
    now = timezone.now()
    current = list(
        Alert.objects.filter(state__in=Alert.OPEN_STATES).select_related("rule").order_by("state", "-started_at")
    )
    silences = list(Silence.objects.active(now))
    evaluated_at = last_evaluation()
    context = {
        "rows": [
            (alert, value, limit, any(s.covers(alert, now) for s in silences), not kind_of(alert.rule).told_elsewhere)
            for alert, value, limit, _ in _rows(current)
        ],
        "firing": sum(alert.state == Alert.State.FIRING for alert in current),
        "silence_count": len(silences),
        "evaluated_at": evaluated_at,
        "evaluation_late": _late(evaluated_at),
    }
    return render(request, "monitoring/alerts_current.html", context)


@require_GET
@staff_required
def rules(request: AuthedRequest) -> HttpResponse:
    rules_ensure()
    in_order = sorted(AlertRule.objects.filter(kind__in=ORDER), key=lambda rule: ORDER.index(rule.kind))
    rows = [(rule, kind_of(rule), format_value(rule, rule.threshold)) for rule in in_order]
    return render(request, "monitoring/alerts_rules.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@staff_required
def rule_edit(request: AuthedRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk, kind__in=KINDS)
    form = AlertRuleForm(request.POST or None, instance=AlertRule.objects.get(pk=rule.pk))
    if request.method == "POST" and form.is_valid():
        alert_rule_update(rule=rule, actor=request.user, context=AuditContext.of(request), changes=form.cleaned_data)
        messages.success(request, f"Saved the rule “{rule}”.")
        return redirect("monitoring:alert-rules")
    context = {"rule": rule, "kind": kind_of(rule), "form": form}
    return render(request, "monitoring/alerts_rule_edit.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@staff_required
def silence_new(request: AuthedRequest, pk: int) -> HttpResponse:
    """Silence an open incident's subject, or its whole rule."""
    alert = get_object_or_404(Alert.objects.select_related("rule"), pk=pk)
    return _silence(request, alert.rule, subject=alert.subject)


@require_http_methods(["GET", "POST"])
@staff_required
def rule_silence(request: AuthedRequest, pk: int) -> HttpResponse:
    """Silence a whole rule ahead of time (planned maintenance), with no incident open."""
    return _silence(request, get_object_or_404(AlertRule, pk=pk, kind__in=KINDS), subject="")


def _silence(request: AuthedRequest, rule: AlertRule, *, subject: str) -> HttpResponse:
    if kind_of(rule).told_elsewhere:
        messages.error(request, f"“{rule}” is told by {kind_of(rule).told_elsewhere}: it is not silenced here.")
        return redirect("monitoring:alerts")
    form = SilenceForm(request.POST or None, now=timezone.now(), subject=subject)
    if request.method == "POST" and form.is_valid():
        chosen = subject if form.cleaned_data.get("scope") == "subject" else ""
        silence_create(
            rule=rule,
            subject=chosen,
            ends_at=form.cleaned_data["until"],
            reason=form.cleaned_data["reason"],
            actor=request.user,
            context=AuditContext.of(request),
        )
        messages.success(request, f"Silenced “{rule}” on {chosen or 'every subject'}.")
        return redirect("monitoring:alert-silences")
    context = {"rule": rule, "subject": subject, "form": form}
    return render(request, "monitoring/alerts_silence.html", context, status=400 if form.errors else 200)


@require_GET
@staff_required
def silences(request: AuthedRequest) -> HttpResponse:
    now = timezone.now()
    rows = Silence.objects.select_related("rule", "created_by")
    context = {"active": list(rows.active(now)), "ended": list(rows.filter(ends_at__lte=now)[:20]), "now": now}
    return render(request, "monitoring/alerts_silences.html", context)


@require_POST
@staff_required
def silence_stop(request: AuthedRequest, pk: int) -> HttpResponse:
    silence = get_object_or_404(Silence, pk=pk)
    silence_end(silence=silence, actor=request.user, context=AuditContext.of(request))
    messages.success(request, f"Ended the silence of “{silence.rule}”.")
    return redirect("monitoring:alert-silences")


@require_GET
@staff_required
def history(request: AuthedRequest) -> HttpResponse:
    form = HistoryForm(request.GET or None)
    incidents = Alert.objects.select_related("rule").order_by("-started_at", "-pk")
    if form.is_valid():
        if form.cleaned_data["rule"]:
            incidents = incidents.filter(rule=form.cleaned_data["rule"])
        if form.cleaned_data["state"]:
            incidents = incidents.filter(state=form.cleaned_data["state"])
    page: Page[Alert] = Paginator(incidents, HISTORY_PER_PAGE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "rows": _rows(list(page.object_list))}
    return render(request, "monitoring/alerts_history.html", context, status=400 if form.errors else 200)
