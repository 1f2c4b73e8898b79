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
    """A worker writes the heartbeat of each queue it consumes as soon as it starts, so /healthz
    says "ok" at once instead of "no heartbeat yet" until beat's first tick (up to 30 s)."""
    queues = sorted(sender.app.amqp.queues.consume_from or ()) if sender is not None else []
    from portal.tasks import heartbeat_record

    try:
        close_old_connections()
        for queue in queues or [settings.CELERY_TASK_DEFAULT_QUEUE]:
            heartbeat_record(queue, worker=str(getattr(sender, "hostname", "") or ""))
    except Exception:  # the worker must start even when the database is down for now
        logger.exception("recording the worker heartbeat at start-up")
    finally:
        connection.close()  # not kept open in the main process, whose pool forks later
