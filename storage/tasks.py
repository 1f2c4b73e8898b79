"""Celery tasks of storage. Thin: the work is in storage.layout and storage.usage. Host work
runs on the worker of the host that holds the storage root (Host.local()'s queue); beat's
entries are fan-outs on the default queue that send it there."""

from __future__ import annotations

import logging

from celery import shared_task

from portal.models import Host, User
from storage import layout, services, usage
from storage.models import MemberStorage

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def storage_usage_fanout_task() -> None:
    """Every 10 minutes (CELERY_BEAT_SCHEDULE): the usage pass, on the storage host's queue."""
    storage_usage_task.apply_async(queue=Host.local().queue, expires=590)  # a late pass is worthless


@shared_task(ignore_result=True, acks_late=True)
def storage_usage_task() -> None:
    report = usage.usage_pass()
    if report.skipped:
        logger.info("storage usage: %s", report.skipped)
    for line in [*report.warnings, *report.limits_set, *report.problems]:
        logger.info("storage usage: %s", line)


@shared_task(ignore_result=True, acks_late=True)
def member_storage_prepare_task(user_id: int) -> None:
    """A new member's home and scratch, made when they are added (storage.signals)."""
    user = User.objects.filter(pk=user_id).first()
    if user is not None:
        layout.prepare_member(user)


@shared_task(ignore_result=True, acks_late=True)
def member_storage_limit_task(user_id: int) -> None:
    """A changed quota's hard limit, set on the member's qgroup at once (storage.signals)."""
    row = MemberStorage.objects.filter(user_id=user_id, state=MemberStorage.State.PRESENT).first()
    if row is not None:
        usage.apply_hard_limit(row)


@shared_task(ignore_result=True, acks_late=True)
def member_storage_delete_task(operation_id: int, **_params: object) -> None:
    services.member_storage_delete_run(operation_id)
