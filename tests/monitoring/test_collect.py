"""The minute sample: the host read through hostops.metrics and written as raw rows in one
insert (real PostgreSQL), the CPU reading kept in Redis between runs, figures the host lacks
absent, and the beat entries sending the work to the local host's queue."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.core.cache import cache
from django.utils import timezone
from pytest_django.fixtures import DjangoAssertNumQueries, Settings

from monitoring import collect, tasks
from monitoring.collect import CPU_READING_KEY, disk_name, host_sample
from monitoring.models import Resolution, Sample, series_problem
from project.celery import app as celery_app
from tests.hostops.proc_recorded import MEMINFO_NO_SWAP, STAT_6_8, write_proc

pytestmark = pytest.mark.usefixtures("no_cpu_reading")

# STAT_6_8 a minute later: 600 more ticks, 150 of them busy (user).
STAT_LATER = STAT_6_8.replace("cpu  4705196 2174", "cpu  4705346 2174").replace("113385471", "113385921")


def _stored() -> dict[str, float]:
    return dict(Sample.objects.values_list("series", "value"))


@pytest.mark.django_db
def test_the_first_sample_of_this_machine_writes_every_figure_but_the_cpu_in_one_insert(
    django_assert_num_queries: DjangoAssertNumQueries, settings: Settings
) -> None:
    settings.HOST_PROC = "/proc"
    with django_assert_num_queries(2):  # the count of running workspaces, then the insert
        written = host_sample(disk_paths=["/", "/does/not/exist"])
    stored = _stored()
    assert len(stored) == len(written)
    assert "host.cpu.percent" not in stored  # one reading is no percent; it is kept for the next run
    assert cache.get(CPU_READING_KEY)
    assert 0 < stored["host.mem.used_bytes"] < stored["host.mem.total_bytes"]
    assert stored["host.load.1"] >= 0
    assert 0 < stored["disk.root.used_bytes"] < stored["disk.root.total_bytes"]
    assert not any(name.startswith("disk.does") for name in stored)
    if Path("/proc/pressure").exists():
        assert {"host.psi.cpu.some10", "host.psi.memory.some10", "host.psi.memory.full10"} <= set(stored)
    assert all(series_problem(name) is None for name in stored)
    assert set(Sample.objects.values_list("resolution", flat=True)) == {Resolution.RAW}


@pytest.mark.django_db
def test_the_next_run_writes_the_cpu_percent_since_the_previous_reading(tmp_path: Path, settings: Settings) -> None:
    proc = write_proc(tmp_path / "proc")
    settings.HOST_PROC = str(proc)
    now = timezone.now()
    host_sample(now=now - timedelta(minutes=1), disk_paths=[])
    (proc / "stat").write_text(STAT_LATER)
    host_sample(now=now, disk_paths=[])
    cpu = Sample.objects.get(series="host.cpu.percent")
    assert cpu.at == now
    assert cpu.value == 25.0


@pytest.mark.django_db
def test_a_kernel_without_pressure_and_a_host_without_swap_write_no_rows_for_them(
    tmp_path: Path, settings: Settings
) -> None:
    settings.HOST_PROC = str(write_proc(tmp_path / "proc", meminfo=MEMINFO_NO_SWAP, pressure=False))
    host_sample(disk_paths=[])
    stored = _stored()
    assert not [name for name in stored if name.startswith(("host.psi.", "host.swap."))]
    assert stored["host.mem.total_bytes"] == 24683568 * 1024
    assert 0.0 not in {stored[name] for name in stored if name.startswith("host.mem.")}


@pytest.mark.django_db
def test_pressure_is_written_with_its_full_lines_but_not_cpus_which_is_always_zero(
    tmp_path: Path, settings: Settings
) -> None:
    settings.HOST_PROC = str(write_proc(tmp_path / "proc"))
    host_sample(disk_paths=[])
    stored = _stored()
    psi = {name: value for name, value in stored.items() if name.startswith("host.psi.")}
    assert psi == {
        "host.psi.cpu.some10": 27.35,
        "host.psi.memory.some10": 3.21,
        "host.psi.memory.full10": 1.05,
        "host.psi.io.some10": 0.5,
        "host.psi.io.full10": 0.25,
    }
    assert stored["host.swap.used_bytes"] == (52428796 - 41943036) * 1024


@pytest.mark.django_db
def test_an_unreadable_file_leaves_out_its_figures_and_the_others_are_still_written(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    proc = write_proc(tmp_path / "proc")
    (proc / "meminfo").unlink()
    settings.HOST_PROC = str(proc)
    host_sample(disk_paths=[])
    stored = _stored()
    assert not [name for name in stored if name.startswith(("host.mem.", "host.swap."))]
    assert "host.load.1" in stored
    assert "meminfo could not be read" in caplog.text


@pytest.mark.django_db
def test_the_cpu_reading_is_kept_in_redis_for_at_most_its_ttl(tmp_path: Path, settings: Settings) -> None:
    """Redis forgets an old reading by itself: a run after a long pause writes no percent
    averaged over the pause and stamped on one minute."""
    settings.HOST_PROC = str(write_proc(tmp_path / "proc"))
    host_sample(disk_paths=[])
    assert cache.get(CPU_READING_KEY) == [5988360, 119455762]
    ttl = redis.Redis.from_url(settings.REDIS_URL).ttl(cache.make_key(CPU_READING_KEY))
    assert 0 < ttl <= collect.CPU_READING_TTL


@pytest.mark.django_db
def test_a_second_run_in_the_same_instant_writes_nothing_twice(tmp_path: Path, settings: Settings) -> None:
    settings.HOST_PROC = str(write_proc(tmp_path / "proc"))
    now = timezone.now()
    host_sample(now=now, disk_paths=["/"])
    count = Sample.objects.count()
    cache.delete(CPU_READING_KEY)
    host_sample(now=now, disk_paths=["/"])
    assert Sample.objects.count() == count


@pytest.mark.parametrize(
    ("path", "word"), [("/", "root"), ("/srv", "srv"), ("/srv/data", "srv_data"), ("/mnt/Scratch-2/", "mnt_scratch_2")]
)
def test_a_filesystem_is_named_by_its_path(path: str, word: str) -> None:
    assert disk_name(path) == word
    assert series_problem(f"disk.{word}.used_bytes") is None


def _take(queue: str) -> list[str]:
    """The task names waiting on a queue of the test's Redis, taken off it."""
    taken = []
    with celery_app.connection_for_read() as conn:
        while (message := conn.default_channel.basic_get(queue, no_ack=True)) is not None:
            taken.append(message.headers["task"])
    return taken


@pytest.mark.django_db
def test_the_minute_fan_out_sends_the_sample_to_the_local_hosts_queue(tmp_path: Path, settings: Settings) -> None:
    _take("host.local")
    tasks.host_sample_fanout_task()
    assert _take("host.local") == ["monitoring.tasks.host_sample_task"]
    assert Sample.objects.count() == 0  # the host is read by its own worker
    settings.HOST_PROC = str(write_proc(tmp_path / "proc"))
    settings.MONITORING_DISK_PATHS = ["/"]
    tasks.host_sample_task()
    assert Sample.objects.filter(series="disk.root.used_bytes").count() == 1


def test_beat_starts_the_monitoring_tasks_by_names_the_worker_knows(settings: Settings) -> None:
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscover the tasks
    entries = {name: entry for name, entry in settings.CELERY_BEAT_SCHEDULE.items() if name.startswith("monitoring-")}
    assert {name: (entry["task"], entry["schedule"]) for name, entry in entries.items()} == {
        "monitoring-host-sample": ("monitoring.tasks.host_sample_fanout_task", 60.0),
        "monitoring-rollup": ("monitoring.tasks.samples_rollup_task", 300.0),
        "monitoring-doctor": ("monitoring.tasks.doctor_schedule_task", 3600.0),
        "monitoring-alerts": ("monitoring.tasks.alerts_evaluate_task", 60.0),
    }
    for name in ["monitoring.tasks.host_sample_fanout_task", "monitoring.tasks.host_sample_task"]:
        assert name in celery_app.tasks, name
    assert "monitoring.tasks.samples_rollup_task" in celery_app.tasks
    assert "monitoring.tasks.doctor_schedule_task" in celery_app.tasks
    assert "monitoring.tasks.alerts_evaluate_task" in celery_app.tasks
