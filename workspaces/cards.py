"""What workspaces add to the shared pages (listed in settings: PORTAL_DASHBOARD_CARDS,
PORTAL_MEMBER_COLUMNS, PORTAL_MEMBER_SECTIONS)."""

from __future__ import annotations

from typing import Any

from portal.access import AuthedRequest
from portal.models import Quota
from portal.panels import Column, Panel
from workspaces.models import Workspace


def dashboard_card(request: AuthedRequest) -> Panel:
    """The member's workspaces (or the invitation to create one): two queries, any number."""
    user = request.user
    context = {
        "quota": Quota.objects.filter(user=user).first(),
        "key_count": user.ssh_keys.count(),
        "workspaces": Workspace.objects.filter(owner=user).for_cards(),
    }
    return Panel("workspaces/_dashboard_card.html", context)


def member_column(members: list[Any]) -> Column:
    """Each listed member's default workspace state, in one query."""
    rows = Workspace.objects.filter(owner_id__in=[member.pk for member in members], name="")
    return Column("Workspace", "workspaces/_member_cell.html", {ws.owner_id: {"ws": ws} for ws in rows})


def member_section(request: AuthedRequest, member: Any) -> Panel:
    """The member's workspaces on their admin page, with state and host."""
    workspaces = list(Workspace.objects.filter(owner=member).select_related("host", "owner").order_by("name"))
    return Panel("workspaces/_member_section.html", {"member_workspaces": workspaces})
