"""A Prometheus scrape of /metrics (monitoring/metrics.py) over a busy server's rows: 90 days of
minute samples of 8 GPUs (a million rows), 130,000 jobs, 50 members with workspaces, storage and
bookings. The rows are written and measured in one transaction that is rolled back, so nothing
stays in the bench database."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

GPUS = 8
SAMPLE_MINUTES = 90 * 24 * 60
OPERATIONS = 130_000
MEMBERS = 50


def _rows() -> None:
    from gpus.models import GPU, Booking, GpuHost
    from portal.models import Host, User
    from storage.models import MemberStorage
    from workspaces.models import Workspace

    host = Host.local()
    GpuHost.objects.get_or_create(host=host, defaults={"source": GpuHost.Source.NVML})
    for index in range(GPUS):
        GPU.objects.create(host=host, index=100 + index, name="bench GPU")
    now = timezone.now()
    for n in range(MEMBERS):
        member = User.objects.create(username=f"benchm{n}", email=f"benchm{n}@bench.example")
        Workspace.objects.create(owner=member, host=host, ssh_port=40000 + n, slug=f"benchm{n}", state="running")
        MemberStorage.objects.create(user=member, kind="folder", home_path=f"/h/{n}", scratch_path=f"/s/{n}")
        Booking.objects.create(user=member, host=host, start=now - timedelta(hours=n + 1), end=now - timedelta(hours=n))
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO gpus_gpusample (gpu_id, at, utilization, memory_used, temperature, power_watts,
                                           workspaces, other_processes)
               SELECT g.id, now() - make_interval(mins => m), 50, 1, 60, 100, '[]'::jsonb, 0
               FROM gpus_gpu g, generate_series(0, %s) m WHERE g.name = 'bench GPU'""",
            [SAMPLE_MINUTES - 1],
        )
        cursor.execute(
            """INSERT INTO portal_operation (kind, state, percent, message, log, error, target_type, target_id,
                                             target_label, params, attempts, created, started, finished, updated)
               SELECT 'bench' || (m %% 20), 'succeeded', 100, '', '', '', '', '', '', '{}', 0,
                      now() - make_interval(mins => m), now() - make_interval(mins => m),
                      now() - make_interval(mins => m) + interval '30 seconds', now()
               FROM generate_series(1, %s) m""",
            [OPERATIONS],
        )
        cursor.execute("ANALYZE")


def scrape(rounds: int = 5) -> list[dict[str, Any]]:
    from monitoring.metrics import metrics_text

    with transaction.atomic():
        _rows()
        metrics_text(now=timezone.now())  # warm: the booking policy's row, the plans
        times = []
        for _ in range(rounds):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                size = len(metrics_text(now=timezone.now()))
                times.append(time.perf_counter() - start)
        transaction.set_rollback(True)
    return [
        {
            "name": "metrics scrape, 1M GPU samples",
            "value": round(statistics.median(times) * 1e3, 1),
            "unit": "ms",
            "baseline": f"{len(queries)} queries, {size // 1024} KiB",
            "target": "<= 1000",
        }
    ]


def benchmarks() -> list[dict[str, Any]]:
    return scrape()
