"""Is beat sending and is each queue's worker taking tasks? Read from the WorkerHeartbeat rows.

Every 30 s beat sends one heartbeat task to every queue (the portal's own and each host's,
portal.tasks.worker_heartbeat_fanout_task); the worker that runs it stamps the queue's row. A
queue is *late* when its row is older than LATE (or missing): its worker is down or stuck. When
every queue is late, beat is the likelier culprit, since one process sends them all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from portal.models import Host, WorkerHeartbeat

# Six missed beats (three minutes): a worker restarting, or a long task holding every slot, stays quiet.
LATE = timedelta(minutes=3)


def expected_queues() -> list[str]:
    """Every queue a worker should be taking: the portal's default one and each host's."""
    default = str(settings.CELERY_TASK_DEFAULT_QUEUE)
    hosts = list(Host.objects.order_by("name").values_list("queue", flat=True))
    return [default, *[queue for queue in hosts if queue != default]]


def stamp(queue: str, *, worker: str = "", now: datetime | None = None) -> None:
    """Write a queue's heartbeat as its worker would (tests, and a worker starting)."""
    WorkerHeartbeat.objects.update_or_create(queue=queue, defaults={"seen_at": now or timezone.now(), "worker": worker})


@dataclass(frozen=True)
class QueueBeat:
    queue: str
    at: datetime | None  # None: never stamped
    worker: str
    late: bool


def queue_beats(*, now: datetime | None = None) -> list[QueueBeat]:
    """Each expected queue's last heartbeat, in expected_queues() order (two queries)."""
    moment = now or timezone.now()
    rows = {row.queue: row for row in WorkerHeartbeat.objects.all()}
    beats = []
    for queue in expected_queues():
        row = rows.get(queue)
        at = row.seen_at if row else None
        beats.append(QueueBeat(queue, at, row.worker if row else "", at is None or moment - at > LATE))
    return beats


def beat_is_late(beats: list[QueueBeat]) -> bool:
    """Every queue late at once: beat (which sends them all) is not sending."""
    return bool(beats) and all(beat.late for beat in beats)
