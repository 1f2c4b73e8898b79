"""Celery tasks of the backups' alerts (backups/alerts.py). Thin: the pass judges from rows."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from backups import alerts


@shared_task(acks_late=True, ignore_result=True)
def backup_alerts_task() -> None:
    """Every 10 minutes (CELERY_BEAT_SCHEDULE "backups-alerts"): open or end the tiers' incidents.
    Safe to run twice or late: each pass compares the rows with the incident the policy remembers."""
    alerts.alerts_pass(now=timezone.now())
