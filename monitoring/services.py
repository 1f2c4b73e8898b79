"""Admins' changes to alerting: a rule's settings, silences. Each writes an audit row."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from monitoring.models import AlertRule, Silence
from portal.audit import AuditContext, audit_record
from portal.models import User

RULE_FIELDS = ("enabled", "threshold", "window_minutes", "for_minutes", "notes")


@transaction.atomic
def alert_rule_update(*, rule: AlertRule, actor: User, context: AuditContext, changes: dict[str, object]) -> AlertRule:
    """Save the validated ``changes`` to the (locked) rule; the audit row says before and after."""
    locked = AlertRule.objects.select_for_update().get(pk=rule.pk)
    before = {name: getattr(locked, name) for name in RULE_FIELDS}
    for name in RULE_FIELDS:
        if name in changes:
            setattr(locked, name, changes[name])
    locked.save()
    after = {name: getattr(locked, name) for name in RULE_FIELDS}
    changed = {name: [before[name], after[name]] for name in RULE_FIELDS if before[name] != after[name]}
    audit_record(action="alerts.rule_update", actor=actor, target=locked, context=context, changed=changed)
    return locked


@transaction.atomic
def silence_create(
    *, rule: AlertRule, subject: str, ends_at: datetime, reason: str, actor: User, context: AuditContext
) -> Silence:
    """Hold back the rule's notifications (one subject's, or all with subject "") until ``ends_at``."""
    silence = Silence.objects.create(
        rule=rule, subject=subject, starts_at=timezone.now(), ends_at=ends_at, reason=reason, created_by=actor
    )
    audit_record(
        action="alerts.silence",
        actor=actor,
        target=silence,
        context=context,
        rule=rule.kind,
        subject=subject,
        ends_at=ends_at.isoformat(),
        reason=reason,
    )
    return silence


@transaction.atomic
def silence_end(*, silence: Silence, actor: User, context: AuditContext) -> Silence:
    """End a silence now (a firing incident it held back is told at the next evaluation)."""
    now = timezone.now()
    locked = Silence.objects.select_for_update().get(pk=silence.pk)
    if locked.ends_at > now:
        locked.ends_at = max(now, locked.starts_at)
        locked.save(update_fields=["ends_at"])
        audit_record(action="alerts.silence_end", actor=actor, target=locked, context=context)
    return locked
