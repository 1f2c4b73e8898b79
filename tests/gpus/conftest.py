"""GPUs on the local host from a configured inventory (no driver here), and a clock on the grid."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from gpus.models import GPU, BookingPolicy, GpuHost
from portal.models import Host


@pytest.fixture
def host(db: None) -> Host:
    return Host.local()


@pytest.fixture
def gpus(host: Host) -> list[GPU]:
    """Two RTX 5080s with made-up UUIDs (as GPU_INVENTORY may give them)."""
    GpuHost.objects.update_or_create(host=host, defaults={"source": GpuHost.Source.CONFIG})
    return [
        GPU.objects.create(host=host, index=i, uuid=f"GPU-0000000{i}-1111-2222-3333-444444444444", name="RTX 5080")
        for i in range(2)
    ]


@pytest.fixture
def policy(db: None) -> BookingPolicy:
    return BookingPolicy.current()


def next_slot(hours: int = 1) -> datetime:
    """The start of the current 30-minute slot plus ``hours`` (0: a booking may start
    there, now)."""
    now = timezone.localtime().replace(second=0, microsecond=0)
    return now.replace(minute=now.minute - now.minute % 30) + timedelta(hours=hours)
