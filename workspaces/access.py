"""The one access helper for workspaces: the workspace, or 404/403 with an audit row."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404

from portal.access import AuthedRequest, refuse
from workspaces.models import Workspace


def get_workspace_for_user(request: AuthedRequest, pk: int, write: bool = False) -> Workspace:
    """The member's own workspace; admins may open and act on any (their actions are audited
    by the services, naming the owner). Anyone else gets 403 and an audit row; ``write``
    only changes what the refusal is recorded as."""
    workspace = get_object_or_404(Workspace.objects.with_related(), pk=pk)
    user = request.user
    if workspace.owner_id == user.pk or user.is_staff:
        return workspace
    raise refuse(request, "workspace.act_denied" if write else "workspace.view_denied", target=workspace)


def get_workspace_for_desktop(request: AuthedRequest, pk: int) -> Workspace:
    """The member's own workspace, to sign into its desktop. The desktop is the member's own
    session, so admins get in only where GATE_ALLOW_ADMINS lets them into members' services
    (the same policy as code-server and Jupyter); anyone else gets 403 and an audit row."""
    workspace = get_object_or_404(Workspace.objects.with_related(), pk=pk)
    user = request.user
    if workspace.owner_id == user.pk or (user.is_staff and settings.GATE_ALLOW_ADMINS):
        return workspace
    raise refuse(request, "workspace.desktop_denied", target=workspace)
