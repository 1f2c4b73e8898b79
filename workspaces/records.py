"""What the system itself records about a workspace: a removal it finished, a state it
observed on the engine, activity it saw, an idle warning it gave. The worker, the reconciler
and the idle policy call these, never ``save``/``delete`` on their own, so every change a
member might ask about has an audit row (actor: the system) like the ones views write."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from portal.audit import SYSTEM, audit_record
from workspaces.models import Workspace


@transaction.atomic
def workspace_removed(workspace: Workspace, *, reason: str) -> None:
    """The container is gone and the row goes with it (the member's data stays unless the
    removal deleted it)."""
    audit_record(action="workspace.removed", target=workspace, context=SYSTEM, reason=reason)
    workspace.delete()


@transaction.atomic
def workspace_observed(workspace: Workspace, *, state: str, reason: str, container_id: str) -> None:
    """The engine shows the workspace in another state than the portal had (a container
    stopped, started or removed behind its back)."""
    before = workspace.state
    fields = workspace.move_to(state, reason=reason)
    workspace.container_id = container_id
    if state != Workspace.State.RUNNING:
        workspace.started_at, workspace.cpu_percent, workspace.mem_usage = None, None, None
    elif workspace.started_at is None:
        workspace.started_at = timezone.now()
    workspace.save(update_fields=[*fields, "container_id", "started_at", "cpu_percent", "mem_usage"])
    audit_record(
        action="workspace.observed", target=workspace, context=SYSTEM, before=before, after=state, reason=reason
    )


def workspace_mark_active(workspace: Workspace, *, now: datetime) -> None:
    """Someone used the workspace: its idle clock starts again and any warning is void."""
    Workspace.objects.filter(pk=workspace.pk).update(last_activity_at=now, idle_warned_at=None)
    workspace.last_activity_at, workspace.idle_warned_at = now, None


def workspace_idle_warned(workspace: Workspace, *, now: datetime, stop_at: str) -> None:
    Workspace.objects.filter(pk=workspace.pk).update(idle_warned_at=now)
    workspace.idle_warned_at = now
    audit_record(action="workspace.idle_warn", target=workspace, context=SYSTEM, stop_at=stop_at)


@transaction.atomic
def workspace_gpus_granted(workspace: Workspace, *, gpu_ids: list[str], reason: str) -> None:
    """The GPU booking changed which GPUs the workspace may hold (applied at its next
    (re)creation; workspaces.services.workspace_grant_gpus restarts a running one)."""
    before = list(workspace.granted_gpus)
    workspace.granted_gpus = list(gpu_ids)
    workspace.save(update_fields=["granted_gpus"])
    audit_record(
        action="workspace.gpus_granted", target=workspace, context=SYSTEM, before=before, after=gpu_ids, reason=reason
    )
