"""What admins change about a host's GPUs: how bookings are enforced there, and a refresh of
its inventory now rather than at the next ten-minute pass."""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

from gpus.models import GpuHost
from portal.audit import AuditContext, audit_record
from portal.models import Host, User
from portal.operations import SEND_RETRY

logger = logging.getLogger(__name__)

INVENTORY_TASK = "gpus.tasks.gpu_inventory_task"


class GpuHostError(Exception):
    """A refused or failed request, in words for the admin."""


@transaction.atomic
def gpu_host_set_enforcement(*, host: Host, mode: str, actor: User, context: AuditContext) -> GpuHost:
    """Switch the host between enforced bookings (containers get exactly the booked GPUs) and
    advisory ones (every container sees every GPU; bookings only notify)."""
    if mode not in GpuHost.Enforcement.values:
        choices = " or ".join(GpuHost.Enforcement.values)
        raise GpuHostError(f"{mode!r} is not a way to enforce bookings; choose {choices}.")
    gpu_host, _ = GpuHost.objects.select_for_update().get_or_create(host=host)
    old = gpu_host.enforcement
    if old != mode:
        gpu_host.enforcement = mode
        gpu_host.save(update_fields=["enforcement"])
        audit_record(action="gpu_host.enforcement", actor=actor, target=host, context=context, old=old, new=mode)
    return gpu_host


def gpu_host_refresh(*, host: Host, actor: User, context: AuditContext) -> None:
    """Send the inventory task to the host's worker now (by name: the web process never loads
    the tasks). Raises GpuHostError when the job queue does not take it."""
    try:
        current_app.send_task(INVENTORY_TASK, args=[host.pk], queue=host.queue, retry=True, retry_policy=SEND_RETRY)
    except Exception as exc:  # kombu's OperationalError, or whatever the transport raises
        logger.warning("could not send %s for %s: %s", INVENTORY_TASK, host, exc)
        raise GpuHostError(
            "The job queue is not answering, so the GPUs were not read again. Try again in a minute."
        ) from exc
    audit_record(action="gpu_host.refresh", actor=actor, target=host, context=context)
