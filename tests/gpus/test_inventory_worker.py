"""Refresh now, end to end: the admin's click puts the task on the host's queue, a real Celery
worker (with GPU_INVENTORY in its environment and the real pynvml, which finds no driver
here) reads the configured GPUs, and the page shows them."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from gpus.models import GPU, GpuHost
from portal.models import Host
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("transactional_db")]

UUID = "GPU-8a1e3c52-7f0b-4d1e-9c39-2b6f5d0e4a17"


@pytest.fixture(scope="module")
def celery_worker_env() -> dict[str, str]:
    return {"GPU_INVENTORY": f"0:RTX 5080:16G:{UUID}"}


def test_refresh_now_makes_the_hosts_worker_read_its_gpus(
    admin_client: Client, celery_worker_process: WorkerProcess
) -> None:
    host = Host.local()
    admin_client.post(reverse("gpus:admin-refresh", args=[host.pk]))

    gpu_host = wait_for(
        lambda: GpuHost.objects.filter(host=host, refreshed_at__isnull=False).first(), what="the inventory"
    )
    assert gpu_host.source == GpuHost.Source.CONFIG
    assert "No NVIDIA driver on this host" in gpu_host.refresh_error
    assert list(GPU.objects.values_list("index", "name", "uuid", "present")) == [(0, "RTX 5080", UUID, True)]
    body = admin_client.get(reverse("gpus:admin-gpus")).content.decode()
    assert "Read from configuration (GPU_INVENTORY): the portal can't see use on these GPUs." in body
    celery_worker_process.wait_for_log("GPUs of local read from Configuration (GPU_INVENTORY)")
