"""Which GPU server a member works on. An admin picks it on the member's page; from then on
the member's new workspaces are made there (their tasks on that host's queue), their folders
are prepared by that host's worker (storage.signals follows the row) and their GPU bookings
may only take that host's GPUs (gpus.services).

A member is moved only when nothing of theirs is left on the old server: a container lives on
one engine, so a workspace there (running or stopped) must be removed first, keeping its home
and scratch, and is then created again on the new server. Apps above this one add their own
refusals through ``WORKSPACE_PLACEMENT_CHECKS`` (the GPU bookings still to come elsewhere)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from portal.audit import AuditContext, audit_record
from portal.models import Host, User
from workspaces.admission import WorkspaceError
from workspaces.models import Workspace

PlacementCheck = Callable[[User, Host], str | None]


class PlacementRefused(WorkspaceError):
    """The member can't move to that server yet; the message says what is in the way."""


def workspaces_elsewhere(member: User, host: Host) -> str | None:
    """A refusal while the member has workspaces on another server, naming them."""
    rows = Workspace.objects.filter(owner=member).exclude(host=host).select_related("host").order_by("name")
    names = [f"{ws.container_name} on {ws.host.name} ({ws.get_state_display().lower()})" for ws in rows]
    if not names:
        return None
    return (
        f"{member.username} still has {'a workspace' if len(names) == 1 else 'workspaces'} elsewhere: "
        f"{', '.join(names)}. Remove {'it' if len(names) == 1 else 'them'} first, keeping the data; "
        f"{member.username} then creates {'it' if len(names) == 1 else 'them'} again on {host.name}."
    )


def _checks() -> list[PlacementCheck]:
    return [workspaces_elsewhere, *(import_string(path) for path in settings.WORKSPACE_PLACEMENT_CHECKS)]


@transaction.atomic
def member_place(*, member: User, host: Host, actor: User, context: AuditContext | None = None) -> bool:
    """Put ``member`` on ``host``. Returns False when they are there already (nothing is
    written); raises PlacementRefused with every reason in the way, and changes nothing."""
    locked = User.objects.select_for_update().get(pk=member.pk)  # one move of a member at a time
    before = locked.placed_host()
    if before == host:
        return False
    reasons = [reason for check in _checks() if (reason := check(locked, host))]
    if reasons:
        raise PlacementRefused(" ".join(reasons))
    locked.host = host
    locked.save(update_fields=["host"])  # storage.signals prepares the folders on the new host
    member.host = host
    audit_record(
        action="member.place", actor=actor, target=locked, context=context, before=before.name, after=host.name
    )
    return True
