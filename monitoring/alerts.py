"""The alert evaluation (beat, every minute): each enabled rule's readings against the open
incidents, one transaction per rule with the rule's row locked, so two evaluations at once
(a slow one and the next minute's) take turns and neither tells anything twice; the unique
constraint on open incidents backs that up.

Per (rule, subject):

- breached, nothing open: a pending incident (firing at once with a "for" of 0);
- breached and pending for the rule's "for": firing, told once (unless silenced);
- breached and firing but not told (its silence ended): told now, once;
- clear or absent, pending: resolved quietly (a blip; nobody was told);
- clear or absent, firing: resolved, told once with how long it lasted, if its firing was.

Notifications go to the admins in the portal and on Slack (``notify_admins``), sent after the
commit by task name: Slack being down costs the evaluation nothing, the Slack task retries
with backoff. A disabled rule's open incidents resolve quietly. Kinds another app already tells
(``Kind.told_elsewhere``: backups/alerts.py with the run's words, storage/usage.py for each
growth of the BTRFS counters) are only recorded here, so nobody is told twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.urls import reverse

from monitoring.models import Alert, AlertRule, Silence
from monitoring.rules import format_value, kind_of, rules_ensure
from portal.models import Notification
from portal.services import notify_admins

logger = logging.getLogger(__name__)
EVALUATED_KEY = "monitoring:alerts:evaluated_at"
# Three missed minutes (like a late heartbeat): a restart of beat or the worker stays quiet.
EVALUATION_LATE = timedelta(minutes=3)
# The history keeps a year of incidents; blips that never fired (a GPU hovering at its
# threshold can make dozens a day) a month.
HISTORY_KEEP = timedelta(days=365)
BLIP_KEEP = timedelta(days=30)


@dataclass
class Evaluation:
    """What one evaluation changed (for logs and tests)."""

    opened: list[str] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    told: list[str] = field(default_factory=list)


def alerts_evaluate(*, now: datetime) -> Evaluation:
    """Judge every rule once; see the module docstring."""
    result = Evaluation()
    rules_ensure()
    # The pages say when nothing judged lately: a dead beat or default worker can't page itself.
    cache.set(EVALUATED_KEY, now, timeout=None)
    # Enabled rules, and disabled ones with incidents left open to close.
    wanted = AlertRule.objects.filter(Q(enabled=True) | Q(alerts__state__in=Alert.OPEN_STATES))
    for rule_id in wanted.order_by("kind").values_list("pk", flat=True).distinct():
        _evaluate_rule(rule_id, now=now, result=result)
    return result


def _evaluate_rule(rule_id: int, *, now: datetime, result: Evaluation) -> None:
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().get(pk=rule_id)
        open_alerts = {alert.subject: alert for alert in rule.alerts.filter(state__in=Alert.OPEN_STATES)}
        if not rule.enabled:
            for alert in open_alerts.values():
                _close(alert, now=now, why="the rule was turned off", tell=False, result=result)
            return
        try:
            with transaction.atomic():  # a savepoint: a failed query leaves the rule's transaction usable
                readings = kind_of(rule).measure(rule, now)
        except Exception:  # one kind's bad day must not stop the others' evaluation
            logger.exception("alert rule %s could not be measured", rule.kind)
            return
        silences = list(Silence.objects.active(now).filter(rule=rule))
        breached = {s: v for s, v in readings.items() if kind_of(rule).breached(v, rule.threshold)}
        for subject, value in breached.items():
            alert = open_alerts.get(subject) or _open(rule, subject, value, now=now, result=result)
            _hold(alert, value, now=now, silences=silences, result=result)
        for subject, alert in open_alerts.items():
            if subject not in breached:
                why = "back to normal" if subject in readings else "no reading any more"
                _close(alert, now=now, why=why, tell=True, result=result)


def _open(rule: AlertRule, subject: str, value: float, *, now: datetime, result: Evaluation) -> Alert:
    result.opened.append(f"{rule.kind}: {subject}")
    return Alert.objects.create(
        rule=rule, subject=subject, started_at=now, value=value, peak=value, threshold=rule.threshold
    )


def _hold(alert: Alert, value: float, *, now: datetime, silences: list[Silence], result: Evaluation) -> None:
    """The condition holds: keep the reading, fire after "for", tell once when nothing silences it."""
    alert.value, alert.peak = value, max(value, alert.peak if alert.peak is not None else value)
    alert.threshold = alert.rule.threshold  # an admin's edit shows in the next words
    silenced = any(silence.covers(alert, now) for silence in silences)
    if alert.state == Alert.State.PENDING and now - alert.started_at >= alert.rule.for_duration:
        alert.state, alert.fired_at, alert.silenced = Alert.State.FIRING, now, silenced
        result.fired.append(f"{alert.rule.kind}: {alert.subject}")
    alert.message = _describe(alert)
    if alert.state == Alert.State.FIRING and alert.notified_at is None and not silenced:
        if _tell(alert, _firing_text(alert, now=now), level=Notification.Level.ERROR):
            result.told.append(f"firing {alert.rule.kind}: {alert.subject}")
        alert.notified_at = now  # also for a kind told elsewhere: its resolution is told there too
    alert.save()


def _close(alert: Alert, *, now: datetime, why: str, tell: bool, result: Evaluation) -> None:
    was_firing = alert.state == Alert.State.FIRING
    alert.state, alert.resolved_at, alert.resolution = Alert.State.RESOLVED, now, why
    alert.save()
    result.resolved.append(f"{alert.rule.kind}: {alert.subject}")
    if tell and was_firing and alert.notified_at is not None:
        lasted = _span(now - (alert.fired_at or alert.started_at))
        title = f"Resolved: {alert.rule} on {alert.subject}"
        body = f"{why.capitalize()} after {lasted} (since {alert.fired_at or alert.started_at:%Y-%m-%d %H:%M} UTC)."
        if _tell(alert, f"{title}\n{body}", level=Notification.Level.INFO):
            result.told.append(f"resolved {alert.rule.kind}: {alert.subject}")


def _tell(alert: Alert, text: str, *, level: str) -> bool:
    """Tell the admins (portal and Slack, after the commit), unless the kind's own app does."""
    if kind_of(alert.rule).told_elsewhere:
        return False
    title, _, body = text.partition("\n")
    notify_admins(title=title, body=body, url=reverse("monitoring:alerts"), level=level)
    return True


def _describe(alert: Alert) -> str:
    rule = alert.rule
    if kind_of(rule).yes_no:
        return f"{rule} on {alert.subject}"
    value, limit = format_value(rule, alert.value), format_value(rule, alert.threshold)
    return f"{rule} on {alert.subject}: {value} (threshold {limit})"


def _firing_text(alert: Alert, *, now: datetime) -> str:
    held = f" for {_span(now - alert.started_at)}" if now > alert.started_at else ""
    base = settings.PORTAL_URL.rstrip("/")
    late = " (held back by a silence until now)" if alert.silenced else ""
    return (
        f"Firing: {alert.rule} on {alert.subject}\n{_describe(alert)}, "
        f"since {alert.started_at:%Y-%m-%d %H:%M} UTC{held}{late}. "
        f"Alerts: {base}{reverse('monitoring:alerts')} · see {base}{kind_of(alert.rule).url()}"
    )


def alerts_prune(*, now: datetime) -> int:
    """Drop resolved incidents past their keeping: blips (never fired) after BLIP_KEEP, the
    rest after HISTORY_KEEP. Returns how many went."""
    resolved = Alert.objects.filter(state=Alert.State.RESOLVED)
    blips = resolved.filter(fired_at=None, resolved_at__lt=now - BLIP_KEEP)
    fired = resolved.filter(fired_at__isnull=False, resolved_at__lt=now - HISTORY_KEEP)
    return blips.delete()[0] + fired.delete()[0]


def last_evaluation() -> datetime | None:
    """When the evaluation last ran (None: not since the cache was emptied)."""
    value = cache.get(EVALUATED_KEY)
    return value if isinstance(value, datetime) else None


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
