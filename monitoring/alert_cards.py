"""What monitoring adds to the shared pages for alerts: the admins' Alerts card on the dashboard."""

from __future__ import annotations

from django.db.models import Count, Q

from monitoring.models import Alert
from portal.access import AuthedRequest
from portal.panels import Panel


def alerts_card(request: AuthedRequest) -> Panel | None:
    """Admins: how many incidents fire and wait now (one query)."""
    if not request.user.is_staff:
        return None
    counts = Alert.objects.filter(state__in=Alert.OPEN_STATES).aggregate(
        firing=Count("pk", filter=Q(state=Alert.State.FIRING)), pending=Count("pk", filter=Q(state=Alert.State.PENDING))
    )
    return Panel("monitoring/_alerts_card.html", {"alerts_open": counts}, column="side")
