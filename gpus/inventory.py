"""Which GPUs each host has: from NVML on the host's worker, else from the configured
inventory (GPU_INVENTORY), else none. GPU rows are never deleted (bookings PROTECT them): a GPU
missing from the inventory is kept as not present, and the admins are told once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone

from gpus.models import GPU, GpuHost
from hostops import nvidia
from hostops.errors import NvmlUnavailable
from hostops.nvidia import GpuInfo
from portal.models import Host, Notification
from portal.services import notify_admins

logger = logging.getLogger(__name__)

LOCAL_HOST = "local"  # Host.local()'s name: the server the portal runs on


@dataclass(frozen=True)
class Found:
    """What one refresh read, before it is stored."""

    source: str  # a GpuHost.Source
    driver_version: str
    gpus: list[GpuInfo]
    error: str  # why NVML could not be read, when it could not


def config_variable(host: Host) -> str:
    """The setting that declares this host's GPUs."""
    if host.name == LOCAL_HOST:
        return "GPU_INVENTORY"
    return "GPU_INVENTORY_" + host.name.upper().replace("-", "_")


def configured_text(host: Host) -> str:
    if host.name == LOCAL_HOST:
        return str(settings.GPU_INVENTORY)
    return str(settings.GPU_INVENTORY_HOSTS.get(host.name, ""))


def inventory_read(host: Host) -> Found:
    """NVML where the driver answers; else the configuration; else nothing (source none)."""
    try:
        inventory = nvidia.read_inventory()
    except NvmlUnavailable as exc:
        error = str(exc)
    else:
        return Found(GpuHost.Source.NVML, inventory.driver_version, inventory.gpus, "")
    try:
        configured = nvidia.parse_inventory_config(configured_text(host))
    except ValueError as exc:  # settings check it at start-up; this is an overridden value
        return Found(GpuHost.Source.NONE, "", [], f"{error} {config_variable(host)} is not valid: {exc}")
    if configured:
        return Found(GpuHost.Source.CONFIG, "", configured, error)
    return Found(GpuHost.Source.NONE, "", [], f"{error} {config_variable(host)} is not set either.")


def inventory_refresh(host: Host, *, now: datetime | None = None) -> GpuHost:
    """Read the host's GPUs (run this on the host's worker: NVML answers for the machine it
    runs on) and store them; returns the host's GpuHost."""
    return inventory_store(host, inventory_read(host), now=now or timezone.now())


@transaction.atomic
def inventory_store(host: Host, found: Found, *, now: datetime) -> GpuHost:
    gpu_host, _ = GpuHost.objects.select_for_update().get_or_create(host=host)
    rows = list(GPU.objects.select_for_update().filter(host=host).order_by("-present", "pk"))
    was_present = {row.pk for row in rows if row.present}
    # Everything leaves the inventory first, so indexes can move between GPUs without
    # tripping the "one present GPU per index" constraint; what was read comes back below.
    GPU.objects.filter(host=host, present=True).update(present=False)
    for row in rows:
        row.present = False
    seen = [_upsert(host, info, rows, source=found.source, now=now) for info in found.gpus]
    gone = [row for row in rows if row.pk in was_present and row not in seen]
    gpu_host.source, gpu_host.driver_version = found.source, found.driver_version
    gpu_host.refreshed_at, gpu_host.refresh_error = now, found.error
    gpu_host.save()
    if gone:
        _tell_admins(host, gone, found)
    return gpu_host


def _match(info: GpuInfo, rows: list[GPU]) -> GPU | None:
    """The stored GPU this one is: the same UUID; else the same index, among GPUs without a
    UUID when this one has one (it is newly known), among any when it has none (a configured
    GPU standing in for one NVML listed before)."""
    free = [row for row in rows if not row.present]  # not matched yet in this refresh
    if info.uuid:
        same = next((row for row in free if row.uuid == info.uuid), None)
        return same or next((row for row in free if row.index == info.index and not row.uuid), None)
    return next((row for row in free if row.index == info.index), None)


def _upsert(host: Host, info: GpuInfo, rows: list[GPU], *, source: str, now: datetime) -> GPU:
    row = _match(info, rows) or GPU(host=host)
    row.index, row.name, row.memory_bytes, row.mig_mode = info.index, info.name, info.memory_total, info.mig_mode
    row.uuid = info.uuid or row.uuid
    row.source, row.present, row.last_seen = source, True, now
    row.save()
    if row not in rows:
        rows.append(row)
    return row


def _tell_admins(host: Host, gone: list[GPU], found: Found) -> None:
    labels = ", ".join(f"{gpu.label} ({gpu.name}{', ' + gpu.uuid if gpu.uuid else ''})" for gpu in gone)
    where = {
        GpuHost.Source.NVML: "the NVIDIA driver no longer lists",
        GpuHost.Source.CONFIG: f"{config_variable(host)} no longer lists",
        GpuHost.Source.NONE: "the portal can read no GPUs on the host, so it no longer sees",
    }[GpuHost.Source(found.source)]
    body = (
        f"On {host}, {where} {labels}. Existing bookings of {pluralize(len(gone), 'it,them')} stay; nobody can "
        f"book {pluralize(len(gone), 'it,them')} until {pluralize(len(gone), 'it is,they are')} back."
    )
    if found.error and found.source != GpuHost.Source.NVML:
        body += f" NVML: {found.error}"
    logger.warning("GPUs gone from %s: %s", host, labels)
    notify_admins(
        title=f"{len(gone)} GPU{pluralize(len(gone))} of {host} left the inventory",
        body=body,
        url=reverse("gpus:admin-gpus"),
        level=Notification.Level.WARNING,
    )
