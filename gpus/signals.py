"""A worker reads its hosts' GPUs as it starts, so a fresh server (or `make run`) has its
inventory at once instead of at beat's first 10-minute tick."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery.signals import worker_ready
from django.db import close_old_connections, connection

from gpus.inventory import inventory_refresh
from portal.models import Host

logger = logging.getLogger(__name__)


def refresh_hosts_of(queues: Iterable[str]) -> list[str]:
    """Read the GPUs of the hosts whose queues are in ``queues``; returns their names."""
    done = []
    for host in Host.objects.filter(queue__in=list(queues)).order_by("name"):
        inventory_refresh(host)
        done.append(host.name)
    return done


@worker_ready.connect
def _inventory_on_worker_start(sender: Any = None, **kwargs: Any) -> None:
    queues = set(sender.app.amqp.queues.consume_from or ()) if sender is not None else set()
    try:
        close_old_connections()
        for name in refresh_hosts_of(queues):
            logger.info("GPUs of %s read at worker start", name)
    except Exception:  # the worker must start even when the database is down for now
        logger.exception("reading the GPU inventory at worker start")
    finally:
        connection.close()  # not kept open in the main process, whose pool forks later
