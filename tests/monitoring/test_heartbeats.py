"""Heartbeats: beat's fan-out reaches every queue's worker, which stamps its row; a queue whose
row is old is late, and every queue late at once says beat itself is not sending."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import heartbeats
from monitoring.heartbeats import LATE, beat_is_late, queue_beats
from portal import tasks
from portal.models import Host, WorkerHeartbeat
from tests.worker import WorkerProcess, wait_for


@pytest.mark.django_db
def test_a_queue_never_stamped_or_stamped_too_long_ago_is_late() -> None:
    Host.local()
    Host.objects.create(name="gpu2", queue="host.gpu2")
    now = timezone.now()
    heartbeats.stamp("portal", worker="local@a", now=now - timedelta(seconds=30))
    heartbeats.stamp("host.local", worker="local@a", now=now - LATE - timedelta(seconds=1))

    beats = {beat.queue: beat for beat in queue_beats(now=now)}

    assert list(beats) == ["portal", "host.gpu2", "host.local"]  # the default queue first, hosts by name
    assert not beats["portal"].late
    assert beats["portal"].worker == "local@a"
    assert beats["host.local"].late
    assert beats["host.gpu2"].late
    assert beats["host.gpu2"].at is None
    assert not beat_is_late(list(beats.values()))  # the portal queue is fresh: beat is sending


@pytest.mark.django_db
def test_every_queue_late_at_once_is_beat_down() -> None:
    Host.local()
    old = timezone.now() - timedelta(hours=1)
    for queue in ("portal", "host.local"):
        heartbeats.stamp(queue, now=old)
    assert beat_is_late(queue_beats())
    assert not beat_is_late([])  # nothing expected, nothing to say


@pytest.mark.worker
@pytest.mark.usefixtures("transactional_db")
def test_the_fanout_reaches_each_queues_worker(celery_worker_process: WorkerProcess) -> None:
    Host.local()
    WorkerHeartbeat.objects.all().delete()  # the worker's own at start-up
    tasks.worker_heartbeat_fanout_task()
    wait_for(lambda: WorkerHeartbeat.objects.count() == 2, what="both queues' heartbeats")
    beats = queue_beats()
    assert [beat.queue for beat in beats] == ["portal", "host.local"]
    assert [(beat.late, beat.worker) for beat in beats] == [(False, celery_worker_process.nodename)] * 2
