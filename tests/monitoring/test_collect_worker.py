"""The minute sample end to end: beat's fan-out puts the task on the local host's queue, a real
Celery worker reads this machine's /proc and writes the rows, and the CPU reading it leaves in
Redis gives the next run, in another process, its percent busy."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from monitoring import tasks
from monitoring.collect import CPU_READING_KEY
from monitoring.models import Sample
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("transactional_db", "no_cpu_reading")]


def test_the_local_hosts_worker_samples_the_host_and_the_next_run_has_the_cpu_percent(
    celery_worker_process: WorkerProcess,
) -> None:
    tasks.host_sample_fanout_task()
    wait_for(lambda: Sample.objects.filter(series="host.mem.used_bytes").exists(), what="the worker's sample")
    assert not Sample.objects.filter(series="host.cpu.percent").exists()
    assert cache.get(CPU_READING_KEY)  # the worker's reading, in the Redis this process reads too

    time.sleep(0.5)  # some clock ticks between the two readings, on any machine
    tasks.host_sample_fanout_task()
    cpu = wait_for(lambda: Sample.objects.filter(series="host.cpu.percent").first(), what="the CPU percent")
    assert 0.0 <= cpu.value <= 100.0
    assert Sample.objects.filter(series="host.mem.used_bytes").count() == 2
    assert Sample.objects.filter(series="disk.root.used_bytes").count() == 2
