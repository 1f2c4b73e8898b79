"""Celery tasks of workspaces. Thin: one task per operation kind (taking the Operation's id,
run on the workspace host's queue) and the periodic housekeeping, which beat starts on the
default queue and which fans out one task per host onto that host's queue, so every Docker
call runs on the worker next to its engine."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.core.cache import cache

from hostops.errors import HostOpsTransient
from portal.models import Host, SitePolicy
from portal.operations import operation_retrying
from workspaces import activity, lifecycle, networks, reconcile

logger = logging.getLogger(__name__)

MAX_RETRIES = 5


def _run(task: Task, operation_id: int) -> None:
    """Run the operation; retry only transient host errors, with exponential backoff."""
    try:
        lifecycle.workspace_execute(operation_id)
    except HostOpsTransient as exc:
        if task.request.retries >= MAX_RETRIES:
            lifecycle.workspace_give_up(operation_id, exc)
            return
        countdown = min(300, 5 * 2**task.request.retries)
        # WorkspaceLocked: another worker holds the workspace, most often running this very
        # operation (a duplicate delivery); that worker owns the row, so leave it alone.
        if not isinstance(exc, lifecycle.WorkspaceLocked):
            operation_retrying(operation_id, error=str(exc), countdown=countdown)
        raise task.retry(exc=exc, countdown=countdown) from exc


# One task per kind (named in workspaces/kinds.py), so queues and logs say what runs. The
# kind's parameters travel on the Operation row (Operation.params); keyword arguments of a
# message are accepted but not needed.


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def workspace_create_task(self: Task, operation_id: int, **_params: Any) -> None:
    _run(self, operation_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def workspace_start_task(self: Task, operation_id: int, **_params: Any) -> None:
    _run(self, operation_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def workspace_stop_task(self: Task, operation_id: int, **_params: Any) -> None:
    _run(self, operation_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def workspace_restart_task(self: Task, operation_id: int, **_params: Any) -> None:
    _run(self, operation_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def workspace_rebuild_task(self: Task, operation_id: int, **_params: Any) -> None:
    _run(self, operation_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def workspace_remove_task(self: Task, operation_id: int, **_params: Any) -> None:
    _run(self, operation_id)


@shared_task(ignore_result=True)
def workspace_housekeeping_task() -> None:
    """Every minute (CELERY_BEAT_SCHEDULE): one housekeeping task per host, on its queue."""
    for host_id, queue in Host.objects.values_list("pk", "queue"):
        workspace_host_task.apply_async(args=[host_id], queue=queue)


@shared_task(ignore_result=True, acks_late=True)
def workspace_host_task(host_id: int) -> None:
    """Reconcile the host, refresh CPU/memory figures, and apply the idle policy every
    WORKSPACE_IDLE_CHECK_SECONDS. Nothing else runs while the engine doesn't answer."""
    host = Host.objects.filter(pk=host_id).first()
    if host is None:
        return
    if not reconcile.reconcile_host(host).reachable:
        return
    for proxy, network in networks.attach_proxies(host):
        logger.info("joined %s to %s", proxy, network)
    activity.collect_stats(host)
    if cache.add(f"workspaces:idle-check:{host_id}", 1, settings.WORKSPACE_IDLE_CHECK_SECONDS):
        policy = SitePolicy.current()  # once per check, so admins' changes apply at the next one
        if policy.idle_after is not None:
            activity.idle_check_host(host, policy=policy)
