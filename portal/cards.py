"""The core's own dashboard cards (listed in settings.PORTAL_DASHBOARD_CARDS)."""

from __future__ import annotations

from django.conf import settings

from portal.access import AuthedRequest
from portal.models import Operation, Quota
from portal.panels import Panel

RECENT_JOBS = 5


def request_quota(request: AuthedRequest) -> Quota | None:
    """The member's quota, read once per request however many cards show it."""
    if not hasattr(request, "_portal_quota"):
        request._portal_quota = Quota.objects.filter(user=request.user).first()  # type: ignore[attr-defined]
    return request._portal_quota  # type: ignore[attr-defined,no-any-return]


def recent_jobs_card(request: AuthedRequest) -> Panel:
    """The member's last finished jobs; a job still under way is shown (and polled) by the
    card of what it works on, and lands here when it ends (operation-finished event)."""
    recent = Operation.objects.filter(owner=request.user, state__in=Operation.FINAL_STATES)
    return Panel("portal/_recent_jobs.html", {"recent_ops": list(recent.order_by("-created")[:RECENT_JOBS])})


def limits_card(request: AuthedRequest) -> Panel:
    return Panel("portal/_quota_card.html", {"quota": request_quota(request)}, column="side")


def team_services_card(request: AuthedRequest) -> Panel:
    """The team's services. Without web routes (``make run``) their default addresses lead
    nowhere: only links set with LINK_<NAME> are shown, and the others are named as not set up."""
    links = list(settings.TEAM_LINKS)
    not_here: list[str] = []
    if not settings.PORTAL_WEB_ROUTES:
        not_here = [name for name, _url, _purpose in links if name not in settings.TEAM_LINKS_SET]
        links = [link for link in links if link[0] in settings.TEAM_LINKS_SET]
    context = {"team_links": links, "team_links_not_here": not_here}
    return Panel("portal/_team_services.html", context, column="side")
