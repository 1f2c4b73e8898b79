"""Minute samples from NVML (a stand-in pynvml) with processes mapped through recorded cgroup
files to real Workspace rows; nothing where NVML is absent; GPU use keeping a workspace from
the idle stop, memory alone not."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings

from gpus import tasks
from gpus.inventory import inventory_refresh
from gpus.models import GPU, BookingPolicy, GpuHost, GpuSample
from gpus.sampling import sample_host, samples_prune
from portal.models import Host, SitePolicy, User
from project.celery import app as celery_app
from tests import cgroups, fake_nvml
from tests.fake_nvml import MIB, FakeMachine
from workspaces.activity import idle_step
from workspaces.models import Workspace

JOB_PID, XORG_PID, OTHER_JOB_PID = 48213, 2112, 51007
LONG_AGO = timedelta(hours=10)


def workspace(owner: User, host: Host, *, container_id: str, port: int) -> Workspace:
    """A running workspace row whose last session ended long ago (no container: no Docker)."""
    started = timezone.now() - LONG_AGO
    return Workspace.objects.create(
        owner=owner,
        host=host,
        slug=owner.username,
        ssh_port=port,
        image="portal/workspace:latest",
        container_id=container_id,
        state=Workspace.State.RUNNING,
        desired_state=Workspace.Desired.RUNNING,
        started_at=started,
        last_activity_at=started,
    )


@pytest.fixture
def proc(tmp_path: Path, settings: Settings) -> Path:
    """The host's /proc as the worker sees it (HOST_PROC): the job in alice's container, Xorg
    on the host."""
    settings.HOST_PROC = str(tmp_path)
    return cgroups.write_proc(tmp_path, {JOB_PID: cgroups.V2_DOCKER, XORG_PID: cgroups.HOST_SERVICE_V1})


@pytest.fixture
def workstation(host: Host, monkeypatch: pytest.MonkeyPatch) -> FakeMachine:
    """The RTX 5080 read through NVML; the inventory refreshed once, as beat does first."""
    machine = fake_nvml.install(monkeypatch, fake_nvml.rtx_5080_workstation())
    inventory_refresh(host)
    return machine


@pytest.fixture
def alice_ws(alice: User, host: Host) -> Workspace:
    return workspace(alice, host, container_id=cgroups.CONTAINER_A, port=2301)


def test_a_sample_per_gpu_names_the_workspace_with_a_process_on_it(
    host: Host, workstation: FakeMachine, proc: Path, alice_ws: Workspace
) -> None:
    now = timezone.now()
    (sample,) = sample_host(host, now=now)
    stored = GpuSample.objects.get()
    assert stored.pk == sample.pk
    assert stored.gpu == GPU.objects.get(uuid=fake_nvml.RTX_5080_UUID)
    assert (stored.at, stored.utilization, stored.memory_used) == (now, 97, 14210 * MIB)
    assert (stored.temperature, stored.power_watts) == (71, 301)
    assert stored.workspaces == [alice_ws.pk]
    assert stored.other_processes == 1  # Xorg, a host process


def test_a_short_stored_container_id_matches_by_prefix(
    host: Host, workstation: FakeMachine, proc: Path, alice: User
) -> None:
    ws = workspace(alice, host, container_id=cgroups.CONTAINER_A[:12], port=2301)
    (sample,) = sample_host(host)
    assert sample.workspaces == [ws.pk]


def test_another_container_or_a_process_that_ended_counts_as_other(
    host: Host, workstation: FakeMachine, proc: Path, bob: User
) -> None:
    workspace(bob, host, container_id=cgroups.CONTAINER_B, port=2302)  # not the job's container
    workstation.gpus[0].compute.append(fake_nvml.FakeProcess(pid=99999, usedGpuMemory=MIB))  # no /proc entry
    (sample,) = sample_host(host)
    assert (sample.workspaces, sample.other_processes) == ([], 3)


def test_a_busy_gpu_marks_the_workspace_active(
    host: Host, workstation: FakeMachine, proc: Path, alice_ws: Workspace
) -> None:
    now = timezone.now()
    Workspace.objects.filter(pk=alice_ws.pk).update(idle_warned_at=now - timedelta(minutes=30))
    sample_host(host, now=now)
    alice_ws.refresh_from_db()
    assert (alice_ws.last_activity_at, alice_ws.idle_warned_at) == (now, None)


def test_gpu_use_keeps_the_workspace_from_the_idle_stop(
    host: Host, workstation: FakeMachine, proc: Path, alice_ws: Workspace
) -> None:
    SitePolicy.objects.update_or_create(pk=1, defaults={"idle_stop_hours": 8, "idle_grace_minutes": 60})
    now = timezone.now()
    assert idle_step(Workspace.objects.get(pk=alice_ws.pk), now=now) == [f"warned {alice_ws}"]  # idle 10 h
    sample_host(host, now=now + timedelta(minutes=1))
    assert idle_step(Workspace.objects.get(pk=alice_ws.pk), now=now + timedelta(minutes=2)) == []


def test_memory_held_on_an_idle_gpu_does_not_count_as_use(
    host: Host, workstation: FakeMachine, proc: Path, alice_ws: Workspace
) -> None:
    workstation.gpus[0].utilization = 4  # the default idle threshold is 5 %
    (sample,) = sample_host(host)
    assert sample.workspaces == [alice_ws.pk]  # it is on the GPU, holding 13.5 GiB ...
    alice_ws.refresh_from_db()
    assert alice_ws.last_activity_at == alice_ws.started_at  # ... but not using it


def test_the_threshold_is_the_booking_policys_idle_percent(
    host: Host, workstation: FakeMachine, proc: Path, alice_ws: Workspace
) -> None:
    BookingPolicy.objects.update_or_create(pk=1, defaults={"idle_percent": 98})
    sample_host(host)  # 97 %
    alice_ws.refresh_from_db()
    assert alice_ws.last_activity_at == alice_ws.started_at
    BookingPolicy.objects.filter(pk=1).update(idle_percent=97)
    sample_host(host)
    alice_ws.refresh_from_db()
    assert alice_ws.last_activity_at != alice_ws.started_at


def test_each_gpu_names_its_own_workspaces(
    host: Host, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings, alice: User, bob: User
) -> None:
    machine = fake_nvml.install(monkeypatch, fake_nvml.hgx_server())
    machine.gpus[1].compute = [fake_nvml.FakeProcess(pid=JOB_PID, usedGpuMemory=MIB)]
    inventory_refresh(host)
    cgroups.write_proc(tmp_path, {OTHER_JOB_PID: cgroups.V1_DOCKER, JOB_PID: cgroups.V2_DOCKER})
    settings.HOST_PROC = str(tmp_path)
    alice_ws = workspace(alice, host, container_id=cgroups.CONTAINER_A, port=2301)
    bob_ws = workspace(bob, host, container_id=cgroups.CONTAINER_B, port=2302)
    h200, h100 = sample_host(host)
    assert (h200.gpu.uuid, h200.workspaces, h200.power_watts) == (fake_nvml.H200_UUID, [bob_ws.pk], None)
    assert (h100.gpu.uuid, h100.workspaces, h100.utilization) == (fake_nvml.H100_UUID, [alice_ws.pk], 0)
    bob_ws.refresh_from_db()
    alice_ws.refresh_from_db()
    assert bob_ws.last_activity_at != bob_ws.started_at  # 64 %
    assert alice_ws.last_activity_at == alice_ws.started_at  # 0 %


# --- nothing where NVML is absent ---------------------------------------------------------------


def test_no_samples_where_the_gpus_come_from_configuration(
    host: Host, gpus: list[GPU], monkeypatch: pytest.MonkeyPatch, proc: Path, alice_ws: Workspace
) -> None:
    machine = fake_nvml.install(monkeypatch, fake_nvml.rtx_5080_workstation())  # even if NVML would answer
    assert sample_host(host) == []
    assert not GpuSample.objects.exists()
    assert machine.calls == []  # not even asked


def test_no_samples_before_the_first_inventory(host: Host) -> None:
    assert sample_host(host) == []
    assert not GpuSample.objects.exists()


def test_no_samples_when_nvml_fails_between_two_inventories(
    host: Host, workstation: FakeMachine, proc: Path, alice_ws: Workspace
) -> None:
    workstation.init_error = fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED
    assert sample_host(host) == []
    assert not GpuSample.objects.exists()
    alice_ws.refresh_from_db()
    assert alice_ws.last_activity_at == alice_ws.started_at


def test_a_gpu_without_utilisation_gets_no_sample(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = fake_nvml.install(monkeypatch, fake_nvml.hgx_server())
    machine.gpus[0].mig, machine.gpus[0].utilization = (1, 1), fake_nvml.NOT_SUPPORTED  # MIG on
    inventory_refresh(host)
    (sample,) = sample_host(host)
    assert sample.gpu.uuid == fake_nvml.H100_UUID


def test_a_gpu_not_in_the_inventory_yet_gets_no_sample(host: Host, workstation: FakeMachine) -> None:
    workstation.gpus.append(fake_nvml.hgx_server().gpus[0])  # plugged in after the last refresh
    (sample,) = sample_host(host)
    assert sample.gpu.uuid == fake_nvml.RTX_5080_UUID


# --- pruning and the tasks ---------------------------------------------------------------------


def test_samples_older_than_the_retention_are_pruned(host: Host, gpus: list[GPU], settings: Settings) -> None:
    settings.GPU_SAMPLE_DAYS = 90
    now = timezone.now()
    for days in (91, 89):
        GpuSample.objects.create(gpu=gpus[0], at=now - timedelta(days=days), utilization=1, memory_used=0)
    assert samples_prune(now=now) == 1
    assert [s.at for s in GpuSample.objects.all()] == [now - timedelta(days=89)]
    tasks.gpu_sample_prune_task()
    assert GpuSample.objects.count() == 1


def _take(queue: str) -> list[tuple[str, str]]:
    """The messages waiting on a queue of the test's Redis (task name, args), taken off it."""
    taken = []
    with celery_app.connection_for_read() as conn:
        while (message := conn.default_channel.basic_get(queue, no_ack=True)) is not None:
            taken.append((message.headers["task"], message.headers["argsrepr"]))
    return taken


def test_the_sampling_fan_out_goes_only_to_hosts_read_through_nvml(
    host: Host, workstation: FakeMachine, proc: Path
) -> None:
    Host.objects.create(name="gpu-2", queue="host.gpu-2")  # no inventory yet
    for queue in ("host.local", "host.gpu-2"):
        _take(queue)  # whatever an earlier test left
    tasks.gpu_sample_fanout_task()
    assert _take("host.local") == [("gpus.tasks.gpu_sample_task", f"[{host.pk}]")]
    assert _take("host.gpu-2") == []
    tasks.gpu_sample_task(host.pk)
    assert GpuSample.objects.count() == 1


def test_the_inventory_fan_out_goes_to_every_host(host: Host) -> None:
    other = Host.objects.create(name="gpu-2", queue="host.gpu-2")
    for queue in ("host.local", "host.gpu-2"):
        _take(queue)  # whatever an earlier test left
    tasks.gpu_inventory_fanout_task()
    assert _take("host.local") == [("gpus.tasks.gpu_inventory_task", f"[{host.pk}]")]
    assert _take("host.gpu-2") == [("gpus.tasks.gpu_inventory_task", f"[{other.pk}]")]
    assert GpuHost.objects.count() == 0  # the work happens on the hosts' workers


def test_beat_starts_the_gpu_tasks_by_names_the_worker_knows(settings: Settings) -> None:
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscover the tasks
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["gpus.tasks.gpu_inventory_fanout_task"] == 600.0
    assert schedule["gpus.tasks.gpu_sample_fanout_task"] == 60.0
    assert "gpus.tasks.gpu_sample_prune_task" in schedule
    for name in [*schedule, "gpus.tasks.gpu_inventory_task", "gpus.tasks.gpu_sample_task"]:
        assert name in celery_app.tasks, name
