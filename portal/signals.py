from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import close_old_connections, connection
from django.dispatch import receiver

from portal.models import User

logger = logging.getLogger(__name__)


@receiver(user_logged_in)
def _activate_on_first_login(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    from portal.services import member_activate

    member_activate(user=user)


@worker_ready.connect
def _heartbeat_on_worker_start(sender: Any = None, **kwargs: Any) -> None:
    """A worker of the default queue writes its heartbeat as soon as it consumes, so /healthz
    says "ok" at once instead of "no heartbeat yet" until beat's first tick (up to 30 s)."""
    queues = set(sender.app.amqp.queues.consume_from or ()) if sender is not None else set()
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    if queues and queue not in queues:
        return  # a host's worker (-Q host.gpu2): it proves nothing about the portal queue
    from portal.tasks import heartbeat_record

    try:
        close_old_connections()
        heartbeat_record(queue)
    except Exception:  # the worker must start even when the database is down for now
        logger.exception("recording the worker heartbeat at start-up")
    finally:
        connection.close()  # not kept open in the main process, whose pool forks later
