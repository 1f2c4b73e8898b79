"""Celery tasks of gpus. Thin: beat starts the booking tick and each fan-out on the default
queue; a fan-out sends one task per host onto that host's queue, so NVML and /proc are read
on the worker next to the GPUs."""

from __future__ import annotations

import logging

from celery import shared_task

from gpus import inventory, sampling
from gpus.models import GpuHost
from gpus.tick import booking_tick
from portal.models import Host

logger = logging.getLogger(__name__)


@shared_task(name="gpus.tasks.booking_tick_task", ignore_result=True)
def booking_tick_task() -> list[str]:
    """Every minute (beat, on the default queue): bookings start and end, holders are warned,
    GPUs are granted or taken on the workspaces of enforced hosts."""
    done = booking_tick()
    for line in done:
        logger.info("booking tick: %s", line)
    return done


@shared_task(ignore_result=True)
def gpu_inventory_fanout_task() -> None:
    """Every 10 minutes (CELERY_BEAT_SCHEDULE): one inventory refresh per host, on its queue."""
    for host_id, queue in Host.objects.values_list("pk", "queue"):
        gpu_inventory_task.apply_async(args=[host_id], queue=queue)


@shared_task(ignore_result=True, acks_late=True)
def gpu_inventory_task(host_id: int) -> None:
    """Read the host's GPUs (NVML, else GPU_INVENTORY) and store them. Also sent by the admin
    GPUs page's "Refresh now" (gpus.hosts)."""
    host = Host.objects.filter(pk=host_id).first()
    if host is not None:
        gpu_host = inventory.inventory_refresh(host)
        logger.info("GPUs of %s read from %s", host, gpu_host.get_source_display())


@shared_task(ignore_result=True)
def gpu_sample_fanout_task() -> None:
    """Every minute: one sampling task per host whose GPUs are read through NVML."""
    hosts = Host.objects.filter(gpu_host__source=GpuHost.Source.NVML).values_list("pk", "queue")
    for host_id, queue in hosts:
        gpu_sample_task.apply_async(args=[host_id], queue=queue, expires=55)  # a late sample is worthless


@shared_task(ignore_result=True, acks_late=True)
def gpu_sample_task(host_id: int) -> None:
    host = Host.objects.filter(pk=host_id).first()
    if host is not None:
        sampling.sample_host(host)


@shared_task(ignore_result=True)
def gpu_sample_prune_task() -> None:
    """Daily: drop samples older than GPU_SAMPLE_DAYS."""
    logger.info("pruned %d GPU samples", sampling.samples_prune())
