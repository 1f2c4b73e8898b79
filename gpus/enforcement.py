"""Bookings made real on the members' containers. On an enforced host a workspace may hold
exactly the GPUs of its owner's bookings under way, and no other; on an advisory host every
workspace of a member whose quota allows GPUs sees all of them, and bookings only notify.

GPUs tells workspaces what each workspace may hold (``workspace_grant_gpus``); the
workspace lifecycle builds the container from that, so ``workspaces`` never imports ``gpus``.
Everything here is computed from the current bookings, not from events, so a pass that was
missed (worker down across a boundary) is caught up by the next one, once.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from gpus.models import GPU, Booking, BookingGPU, GpuHost
from portal.models import Host
from workspaces.models import Workspace
from workspaces.services import workspace_grant_gpus


def gpu_host(host: Host) -> GpuHost:
    """The host's GPU settings (enforced until an admin says otherwise)."""
    settings_row, _ = GpuHost.objects.get_or_create(host=host)
    return settings_row


def held_gpus(host: Host, now: datetime) -> dict[int, list[GPU]]:
    """Member id -> the GPUs their bookings under way hold at ``now`` (index order)."""
    rows = (
        BookingGPU.objects.filter(
            booking__host=host,
            booking__state=Booking.State.ACTIVE,
            holds=True,
            start__lte=now,
            end__gt=now,
        )
        .select_related("gpu", "booking")
        .order_by("gpu__index")
    )
    held: dict[int, list[GPU]] = defaultdict(list)
    for row in rows:
        if row.gpu not in held[row.booking.user_id]:
            held[row.booking.user_id].append(row.gpu)
    return held


def desired_grants(host: Host, now: datetime) -> dict[Workspace, list[str]]:
    """Each workspace of the host (not being removed) and the GPU device ids it may hold."""
    workspaces = list(
        Workspace.objects.filter(host=host)
        .exclude(Q(state=Workspace.State.REMOVING) | Q(desired_state=Workspace.Desired.ABSENT))
        .select_related("owner__quota", "host")
    )
    if not gpu_host(host).enforced:
        every = [gpu.device_id for gpu in GPU.objects.bookable().filter(host=host).order_by("index")]
        return {ws: every if _may_use_gpus(ws) else [] for ws in workspaces}
    held = held_gpus(host, now)
    return {ws: [gpu.device_id for gpu in held.get(ws.owner_id, [])] if ws.owner.is_active else [] for ws in workspaces}


def grant_for(workspace: Workspace) -> list[str]:
    """The GPUs ``workspace`` may hold now (settings.WORKSPACE_GPU_GRANTS names this: the
    workspace lifecycle asks it when it builds a container)."""
    return desired_grants(workspace.host, timezone.now()).get(workspace, [])


def _may_use_gpus(workspace: Workspace) -> bool:
    if not workspace.owner.is_active:
        return False
    quota = getattr(workspace.owner, "quota", None)
    return bool(quota and quota.max_gpus)


def enforce_host(host: Host, now: datetime) -> list[str]:
    """Bring every workspace of the host to its grant; returns what changed."""
    done = []
    for workspace, gpu_ids in desired_grants(host, now).items():
        reason = _reason(gpu_ids)
        outcome = workspace_grant_gpus(workspace=workspace, gpu_ids=gpu_ids, reason=reason)
        if outcome != "unchanged":
            done.append(f"{workspace}: {outcome} ({reason})")
    return done


def _reason(gpu_ids: list[str]) -> str:
    return f"GPU booking: now holds {', '.join(gpu_ids)}" if gpu_ids else "GPU booking: no GPU booked now"
