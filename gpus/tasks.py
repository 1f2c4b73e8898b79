"""Celery tasks of gpus. Thin: each calls one function of the app and logs what it did."""

from __future__ import annotations

import logging

from celery import shared_task

from gpus.tick import booking_tick

logger = logging.getLogger(__name__)


@shared_task(name="gpus.tasks.booking_tick_task", ignore_result=True)
def booking_tick_task() -> list[str]:
    """Every minute (beat, on the default queue): bookings start and end, holders are warned,
    GPUs are granted or taken on the workspaces of enforced hosts."""
    done = booking_tick()
    for line in done:
        logger.info("booking tick: %s", line)
    return done
