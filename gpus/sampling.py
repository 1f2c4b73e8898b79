"""One sample per GPU a minute, where the host's GPUs are read through NVML: utilisation,
memory, temperature, power, and whose workspaces have processes on it (NVML's PIDs, through
their cgroups, to the container, to the Workspace row). Where NVML is absent nothing is
written: no sample is better than a zero that looks like an idle GPU.

A workspace with a process on a GPU that is busy (utilisation at least the booking policy's
idle threshold) is in use, so the workspace idle policy counts GPU work like an open session.
Memory held alone does not count: frameworks reserve it and sit idle."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from gpus.models import GPU, BookingPolicy, GpuHost, GpuSample
from hostops import nvidia
from hostops.errors import NvmlUnavailable
from hostops.nvidia import GpuReading
from portal.models import Host
from workspaces.models import Workspace
from workspaces.records import workspace_mark_active

logger = logging.getLogger(__name__)

SHORTEST_ID = 12  # a stored container id shorter than Docker's short form matches nothing


@dataclass
class Owners:
    """Which workspace each GPU process belongs to, looked up once per PID per pass."""

    workspaces: list[Workspace]
    proc_root: str
    _by_pid: dict[int, Workspace | None] = field(default_factory=dict)

    def of(self, pid: int) -> Workspace | None:
        if pid not in self._by_pid:
            container = nvidia.container_of_pid(pid, proc_root=self.proc_root) or "-"
            self._by_pid[pid] = next((ws for ws in self.workspaces if container.startswith(ws.container_id)), None)
        return self._by_pid[pid]


def _gpu_for(reading: GpuReading, gpus: list[GPU]) -> GPU | None:
    if reading.uuid:
        by_uuid = next((gpu for gpu in gpus if gpu.uuid == reading.uuid), None)
        if by_uuid is not None:
            return by_uuid
    return next((gpu for gpu in gpus if gpu.index == reading.index and not gpu.uuid), None)


def sample_host(host: Host, *, now: datetime | None = None) -> list[GpuSample]:
    """Store one sample per present GPU of the host and mark workspaces busy on a GPU active.
    Runs on the host's worker; does nothing unless the inventory came from NVML."""
    gpu_host = GpuHost.objects.filter(host=host).first()
    if gpu_host is None or not gpu_host.sampled:
        return []
    try:
        readings = nvidia.read_readings()
    except NvmlUnavailable as exc:
        logger.warning("no GPU samples on %s: %s", host, exc)
        return []  # the next inventory refresh records the error and the source
    now = now or timezone.now()
    gpus = list(GPU.objects.filter(host=host, present=True))
    candidates = Workspace.objects.filter(host=host).exclude(container_id="").select_related("owner")
    owners = Owners([ws for ws in candidates if len(ws.container_id) >= SHORTEST_ID], str(settings.HOST_PROC))
    busy_at = BookingPolicy.current().idle_percent
    samples: list[GpuSample] = []
    busy: dict[int, Workspace] = {}
    for reading in readings:
        gpu = _gpu_for(reading, gpus)
        measured = None if gpu is None else _sample(gpu, reading, owners, now=now)
        if measured is None:
            continue  # a GPU the inventory doesn't list yet (the next refresh adds it), or unmeasured
        samples.append(measured[0])
        if measured[0].utilization >= busy_at:
            busy.update({ws.pk: ws for ws in measured[1]})
    GpuSample.objects.bulk_create(samples)
    for workspace in busy.values():
        workspace_mark_active(workspace, now=now)
    return samples


def _sample(
    gpu: GPU, reading: GpuReading, owners: Owners, *, now: datetime
) -> tuple[GpuSample, list[Workspace]] | None:
    """The GPU's sample and the workspaces with a process on it; None without utilisation or
    memory (with MIG on, NVML reports no utilisation for the whole GPU; a guess is worse)."""
    if reading.utilization is None or reading.memory_used is None:
        return None
    on_gpu: dict[int, Workspace] = {}
    other = 0
    for process in reading.processes:
        workspace = owners.of(process.pid)
        if workspace is None:
            other += 1
        else:
            on_gpu[workspace.pk] = workspace
    sample = GpuSample(
        gpu=gpu,
        at=now,
        utilization=reading.utilization,
        memory_used=reading.memory_used,
        temperature=reading.temperature,
        power_watts=reading.power_watts,
        workspaces=sorted(on_gpu),
        other_processes=min(other, 32767),
    )
    return sample, list(on_gpu.values())


def samples_prune(*, now: datetime | None = None) -> int:
    """Delete samples older than GPU_SAMPLE_DAYS; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.GPU_SAMPLE_DAYS)
    deleted, _ = GpuSample.objects.filter(at__lt=cutoff).delete()
    return deleted
