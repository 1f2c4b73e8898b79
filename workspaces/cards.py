"""What workspaces add to the shared pages (listed in settings: PORTAL_DASHBOARD_CARDS,
PORTAL_MEMBER_COLUMNS, PORTAL_MEMBER_SECTIONS, PORTAL_HOST_COLUMNS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from portal.access import AuthedRequest
from portal.cards import request_quota
from portal.panels import Column, Panel
from workspaces.forms import MemberHostForm
from workspaces.models import Workspace
from workspaces.spec import CODE_SERVER_PORT, JUPYTER_PORT


@dataclass(frozen=True)
class Reach:
    """What a member can reach on this portal, from settings alone: the cards never ask a
    host. ``web_routes`` off (``make run``): code-server, Jupyter and the desktop have no
    address that answers, so the cards say how to get in over SSH instead of linking them."""

    web_routes: bool
    # The servers whose workspaces Traefik and guacd reach (PORTAL_WEB_HOSTS): the first one's.
    # A workspace elsewhere has SSH and X2Go only, and its card says so.
    web_hosts: frozenset[str]
    web_everywhere: bool  # PORTAL_WEB_HOSTS=* : every server's (each with its own routes)
    desktop_signs_in: bool  # the Desktop link signs the member in (Guacamole's JSON key is set)
    image: str
    image_build_hint: str  # the image is missing here and this command builds it (run-dev.sh)
    code_port: int = CODE_SERVER_PORT
    jupyter_port: int = JUPYTER_PORT


def reach() -> Reach:
    return Reach(
        web_routes=settings.PORTAL_WEB_ROUTES,
        web_hosts=frozenset(settings.PORTAL_WEB_HOSTS),
        web_everywhere="*" in settings.PORTAL_WEB_HOSTS,
        desktop_signs_in=bool(settings.GUACAMOLE_JSON_SECRET_KEY),
        image=settings.WORKSPACE_IMAGE,
        image_build_hint=settings.WORKSPACE_IMAGE_BUILD_HINT,
    )


def dashboard_card(request: AuthedRequest) -> Panel:
    """The member's workspaces (or the invitation to create one): two queries, any number."""
    user = request.user
    context = {
        "quota": request_quota(request),
        "key_count": user.ssh_keys.count(),
        "workspaces": Workspace.objects.filter(owner=user).for_cards(),
    }
    return Panel("workspaces/_dashboard_card.html", context)


def member_column(members: list[Any]) -> Column:
    """Each listed member's default workspace state, in one query."""
    rows = Workspace.objects.filter(owner_id__in=[member.pk for member in members], name="")
    return Column("Workspace", "workspaces/_member_cell.html", {ws.owner_id: {"ws": ws} for ws in rows})


def host_column(hosts: list[Any]) -> Column:
    """How many workspaces each server holds and how many of them run, in one query."""
    counts = (
        Workspace.objects.filter(host__in=hosts)
        .values("host_id")
        .annotate(total=Count("id"), running=Count("id", filter=Q(state=Workspace.State.RUNNING)))
        .order_by()
    )
    cells = {row["host_id"]: {"total": row["total"], "running": row["running"]} for row in counts}
    return Column("Workspaces", "workspaces/_host_cell.html", cells)


def member_section(
    request: AuthedRequest, member: Any, *, host_form: MemberHostForm | None = None, moved: bool = False
) -> Panel:
    """The member's server (with the form that moves them) and their workspaces, with state
    and host, on their admin page."""
    workspaces = list(Workspace.objects.filter(owner=member).select_related("host", "owner").order_by("name"))
    host = member.placed_host()
    context = {
        "member": member,
        "member_host": host,
        "member_workspaces": workspaces,
        "host_form": host_form or MemberHostForm(initial={"host": host}),
        "moved": moved,
    }
    return Panel("workspaces/_member_section.html", context)
