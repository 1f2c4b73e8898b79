"""Helpers for the reclaim and accounting tests: bookings put straight into a state, and
one-minute GPU samples written with bulk_create (as the NVML sampler writes them)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta

from gpus.models import GPU, Booking, GpuHost, GpuSample
from gpus.services import booking_create
from portal.models import Host, User
from workspaces.models import Workspace

GIB = 1024**3


def make_sampled(host: Host) -> None:
    """The host's GPUs read through NVML, so their use is measured."""
    GpuHost.objects.update_or_create(host=host, defaults={"source": GpuHost.Source.NVML})


def workspace_of(user: User, host: Host, port: int = 2299, name: str = "") -> Workspace:
    slug = f"{user.username}-{name}" if name else user.username
    return Workspace.objects.create(owner=user, host=host, ssh_port=port, slug=slug, name=name)


def book(
    user: User,
    gpus: Sequence[GPU],
    start: datetime,
    end: datetime,
    *,
    admin: User,
    state: str = Booking.State.ACTIVE,
) -> Booking:
    """A booking through the service (an admin's override: the span may lie in the past),
    then moved to ``state`` as the minute tick would."""
    booking = booking_create(
        user=user,
        host=gpus[0].host,
        start=start,
        end=end,
        gpu_indexes=[gpu.index for gpu in gpus],
        actor=admin,
        override=True,
    )
    Booking.objects.filter(pk=booking.pk).update(state=state)
    booking.refresh_from_db()
    return booking


def samples(
    gpu: GPU,
    start: datetime,
    minutes: int,
    *,
    utilization: int = 0,
    workspaces: Iterable[Workspace] = (),
    memory: int = 0,
    skip: Collection[int] = (),
) -> None:
    """One sample per minute from ``start`` for ``minutes`` minutes (minus the ``skip`` ones)."""
    ids = [ws.pk for ws in workspaces]
    GpuSample.objects.bulk_create(
        GpuSample(
            gpu=gpu,
            at=start + timedelta(minutes=i),
            utilization=utilization,
            memory_used=memory,
            workspaces=ids,
        )
        for i in range(minutes)
        if i not in skip
    )
