"""GPU booking on the real PostgreSQL.

* booking creation: ``gpus.services.booking_create`` ("any free GPU") with 100,000 existing
  reservations (BookingGPU rows holding their slot, 8 GPUs), p95 over 200 creations; baseline:
  the bare ORM insert of the same Booking and BookingGPU rows (no checks, no locks, no
  audit), timed in the same run, alternating.
* calendar week: the calendar's events JSON for a week with 1,000 bookings in it, through the
  view (Django test client, logged in), p95 over 30 loads, with its query count; baseline: a
  bare ``list()`` of the same week's BookingGPU rows.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

EXISTING = 100_000
GPUS = 8
MEMBERS = 50
CREATIONS = 200
WEEK_BOOKINGS = 1_000
WEEK_LOADS = 30


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def _world() -> tuple[Any, list[Any], list[Any]]:
    from gpus.models import GPU, Booking, BookingGPU, BookingPolicy
    from portal.models import Host, Quota, User

    BookingGPU.objects.all().delete()
    Booking.objects.all().delete()
    host = Host.local()
    GPU.objects.filter(host=host).delete()
    gpus = [GPU.objects.create(host=host, index=i, uuid=f"GPU-bench-{i:04d}-0000", name="H200") for i in range(GPUS)]
    members = []
    for n in range(MEMBERS):
        user, _ = User.objects.get_or_create(username=f"bench{n}", defaults={"email": f"bench{n}@corp.example"})
        Quota.objects.update_or_create(user=user, defaults={**Quota.team_defaults(), "max_gpus": GPUS})
        members.append(user)
    BookingPolicy.objects.update_or_create(
        pk=1, defaults={"horizon_days": 1000, "max_hours_per_week": 24 * 7 * 16, "max_booking_hours": 24 * 31}
    )
    return host, gpus, members


def _fill(host: Any, gpus: list[Any], members: list[Any], start: datetime) -> set[tuple[int, int]]:
    """EXISTING one-hour reservations spread over the GPUs, holding and in the future, with a
    random third of the hours left free on each GPU; returns the taken (gpu index, hour)."""
    from gpus.models import Booking, BookingGPU

    rng = random.Random(7)
    per_gpu = EXISTING // GPUS
    taken: set[tuple[int, int]] = set()
    batch_b: list[Booking] = []
    pairs: list[tuple[int, int]] = []
    for gpu in gpus:
        hour = 0
        for _ in range(per_gpu):
            hour += rng.choice((1, 1, 2))
            pairs.append((gpu.index, hour))
    for gpu_index, hour in pairs:
        taken.add((gpu_index, hour))
        s = start + timedelta(hours=hour)
        batch_b.append(Booking(user=rng.choice(members), host=host, start=s, end=s + timedelta(hours=1)))
    created = Booking.objects.bulk_create(batch_b, batch_size=5000)
    rows = [
        BookingGPU(booking=b, gpu=gpus[gi], start=b.start, end=b.end)
        for b, (gi, _h) in zip(created, pairs, strict=True)
    ]
    BookingGPU.objects.bulk_create(rows, batch_size=5000)
    return taken


def booking_creation() -> list[dict[str, Any]]:
    from django.db import connection

    from gpus.models import Booking, BookingGPU
    from gpus.services import BookingConflict, booking_create

    host, gpus, members = _world()
    start = timezone.localtime().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    taken = _fill(host, gpus, members, start)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE gpus_booking; ANALYZE gpus_bookinggpu")
    rng = random.Random(11)
    span_hours = max(h for _g, h in taken)
    service, bare = [], []
    made = 0
    while made < CREATIONS:
        hour = rng.randrange(1, span_hours)
        if all((g.index, hour) in taken for g in gpus):
            continue
        user = rng.choice(members)
        s = start + timedelta(hours=hour)
        gc.collect()
        t0 = time.perf_counter()
        try:
            booking_create(user=user, host=host, start=s, end=s + timedelta(hours=1), actor=user)
        except BookingConflict:
            continue
        service.append(time.perf_counter() - t0)
        free = next(g for g in gpus if (g.index, hour) not in taken)
        taken.add((free.index, hour))
        # The baseline: the same two rows, inserted bare (on a far-away hour).
        gc.collect()
        t0 = time.perf_counter()
        with transaction.atomic():
            far = s + timedelta(days=4000)
            b = Booking.objects.create(user=user, host=host, start=far, end=far + timedelta(hours=1), gpu_count=1)
            BookingGPU.objects.create(booking=b, gpu=free, start=b.start, end=b.end)
        bare.append(time.perf_counter() - t0)
        made += 1
    p95, base = _p95(service), _p95(bare)
    return [
        {
            "name": f"booking creation p95, {EXISTING:,} reservations",
            "value": round(p95 * 1000, 2),
            "unit": "ms",
            "target": "<= 20 ms",
            "baseline": (
                f"bare insert p95 {base * 1000:.2f} ms (x{p95 / base:.1f}); "
                f"median {statistics.median(service) * 1000:.2f} ms"
            ),
        }
    ]


def calendar_week() -> list[dict[str, Any]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from gpus.models import Booking, BookingGPU

    host, gpus, members = _world()
    monday = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=7)
    monday -= timedelta(days=monday.weekday())
    cells = [(g, h) for g in gpus for h in range(24 * 7)]
    random.Random(3).shuffle(cells)
    chosen = cells[:WEEK_BOOKINGS]
    bookings = Booking.objects.bulk_create(
        [
            Booking(
                user=members[i % MEMBERS],
                host=host,
                start=monday + timedelta(hours=h),
                end=monday + timedelta(hours=h + 1),
            )
            for i, (_g, h) in enumerate(chosen)
        ]
    )
    BookingGPU.objects.bulk_create(
        [BookingGPU(booking=b, gpu=g, start=b.start, end=b.end) for b, (g, _h) in zip(bookings, chosen, strict=True)]
    )
    with connection.cursor() as cursor:  # the creation benchmark left 100,000 dead rows behind
        cursor.execute("VACUUM ANALYZE gpus_booking")
        cursor.execute("VACUUM ANALYZE gpus_bookinggpu")
    client = Client()
    client.force_login(members[0])
    url = reverse("gpus:calendar-events")
    params = {"host": str(host.pk), "start": monday.isoformat(), "end": (monday + timedelta(days=7)).isoformat()}
    view, bare = [], []
    queries = 0
    for _ in range(WEEK_LOADS):
        gc.collect()  # each side starts without the other's garbage (timeit's practice)
        t0 = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, params)
        view.append(time.perf_counter() - t0)
        queries = len(captured)
        assert response.status_code == 200, response.content[:500]
        assert len(response.json()) >= WEEK_BOOKINGS
        gc.collect()
        t0 = time.perf_counter()
        list(
            BookingGPU.objects.filter(
                booking__host=host, start__lt=monday + timedelta(days=7), end__gt=monday
            ).select_related("booking__user", "gpu")
        )
        bare.append(time.perf_counter() - t0)
    p95, base = _p95(view), _p95(bare)
    return [
        {
            "name": f"calendar week, {WEEK_BOOKINGS:,} bookings",
            "value": round(p95 * 1000, 1),
            "unit": "ms",
            "target": "<= 100 ms",
            "baseline": (
                f"bare ORM query p95 {base * 1000:.1f} ms (x{p95 / base:.1f}); "
                f"median {statistics.median(view) * 1000:.1f} ms; {queries} queries per load"
            ),
        }
    ]


def benchmarks() -> list[dict[str, Any]]:
    return booking_creation() + calendar_week()
