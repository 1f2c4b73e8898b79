"""Storage follows the core's rows: a new member gets their home and scratch at once, made by
the worker of their server (and again by the new server's worker when an admin moves them,
workspaces/placement.py), and a changed quota's hard limit reaches their qgroup without waiting
for the next pass (on the storage host, which runs the usage pass). Tasks are
sent by name after the commit; with the broker down, the next workspace start (folders) and
the next usage pass (limits) catch up."""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from portal.models import Host, Quota, User
from storage.models import MemberStorage

logger = logging.getLogger(__name__)


def _send_later(task: str, user_id: int, *, host: Host | None = None) -> None:
    def send() -> None:
        try:
            current_app.send_task(task, args=[user_id], queue=(host or Host.local()).queue)
        except Exception:  # kombu's OperationalError: the catch-up paths above cover it
            logger.warning("%s for member %s not sent: the job queue is down", task, user_id)

    transaction.on_commit(send)


@receiver(post_save, sender=User, dispatch_uid="storage-member-added")
def member_added(sender: Any, instance: User, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    moved = not created and "host" in (kwargs.get("update_fields") or ())
    if created or moved:
        _send_later("storage.tasks.member_storage_prepare_task", instance.pk, host=instance.placed_host())


@receiver(post_save, sender=Quota, dispatch_uid="storage-quota-changed")
def quota_changed(sender: Any, instance: Quota, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    row = MemberStorage.objects.filter(user_id=instance.user_id, kind=MemberStorage.Kind.SUBVOLUME).first()
    if row is not None and row.state == MemberStorage.State.PRESENT and row.hard_limit_applied != instance.storage_hard:
        _send_later("storage.tasks.member_storage_limit_task", instance.user_id)
