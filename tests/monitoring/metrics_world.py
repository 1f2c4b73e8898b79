"""Rows of every kind /metrics reads, timed from a given moment (the collector's tests use a fixed
one; the real Prometheus scraping the live server reads them at the wall clock's now)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from backups.models import BackupPolicy, BackupRun
from gpus.models import GPU, Booking, GpuHost, GpuSample
from monitoring.heartbeats import stamp
from monitoring.models import Sample
from portal.models import Host, Operation, User
from storage.models import MemberStorage
from tests.factories import UserFactory
from workspaces.models import Workspace


@dataclass
class World:
    now: datetime
    alice: User
    bob: User
    host: Host

    def at(self, hours: float) -> datetime:
        return self.now - timedelta(hours=hours)


def world_make(now: datetime) -> World:
    host = Host.local()
    Host.objects.filter(pk=host.pk).update(state=Host.State.ONLINE, last_seen=now - timedelta(minutes=6))
    gpu2 = Host.objects.create(name="gpu2", queue="host.gpu2", state=Host.State.UNREACHABLE)
    world = World(now, UserFactory(username="alice"), UserFactory(username="bob"), Host.local())
    _workspaces(world, gpu2)
    _operations(world)
    _gpus(world)
    _backups(world)
    MemberStorage.objects.create(
        user=world.alice, kind="subvolume", home_path="/h/a", scratch_path="/s/a", referenced=5 * 1024**3,
        hard_limit_applied=100 * 1024**3, measured_at=world.at(0.2),
    )  # fmt: skip
    MemberStorage.objects.create(user=world.bob, kind="folder", home_path="/h/b", scratch_path="/s/b")  # not measured
    stamp("portal", now=now - timedelta(seconds=40))
    stamp("host.local", now=now - timedelta(minutes=10))
    _host_rows(now)
    return world


def _workspaces(world: World, gpu2: Host) -> None:
    Workspace.objects.create(owner=world.alice, host=world.host, ssh_port=2300, slug="alice", state="running")
    Workspace.objects.create(owner=world.alice, name="b", host=world.host, ssh_port=2301, slug="alice-b", state="error")
    Workspace.objects.create(owner=world.bob, host=gpu2, ssh_port=2302, slug="bob", state="stopped")


def _operations(world: World) -> None:
    at, common = world.at, {"owner": world.alice, "actor": world.alice, "kind": "workspace.start"}
    Operation.objects.create(state="succeeded", started=at(2), finished=at(2) + timedelta(seconds=30), **common)
    Operation.objects.create(state="succeeded", started=at(3), finished=at(3) + timedelta(seconds=90), **common)
    Operation.objects.create(state="failed", started=at(1), finished=at(1) + timedelta(seconds=5), **common)
    Operation.objects.create(state="succeeded", started=at(30), finished=at(29), **common)  # too old
    Operation.objects.create(
        kind="backups.restore", state="running", started=at(1), owner=world.alice, actor=world.alice
    )


def _gpus(world: World) -> None:
    GpuHost.objects.create(host=world.host, source=GpuHost.Source.NVML)
    gpu = GPU.objects.create(host=world.host, index=0, name="RTX 5080", memory_bytes=16 * 1024**3)
    ws = Workspace.objects.get(slug="alice")
    idle = GpuSample(gpu=gpu, at=world.now - timedelta(minutes=20), utilization=0, memory_used=1, workspaces=[ws.pk])
    busy = [  # 30 busy minutes of alice's, in her booking
        GpuSample(
            gpu=gpu,
            at=world.now - timedelta(minutes=minute),
            utilization=90,
            memory_used=2 * 1024**3,
            temperature=71,
            power_watts=250,
            workspaces=[ws.pk],
        )
        for minute in range(1, 31)
    ]
    GpuSample.objects.bulk_create([idle, *busy])
    at, host = world.at, world.host
    Booking.objects.create(user=world.alice, host=host, start=at(2), end=at(-1), state="active", gpu_count=2)
    Booking.objects.create(user=world.bob, host=host, start=at(-24), end=at(-26), state=Booking.State.BOOKED)
    Booking.objects.create(user=world.bob, host=host, start=at(-3), end=at(-4), state=Booking.State.CANCELLED)


def _backups(world: World) -> None:
    at = world.at
    BackupPolicy.objects.update_or_create(tier="snapshot", defaults={"enabled": True, "max_age_hours": 2})
    BackupPolicy.objects.update_or_create(
        tier="restic", defaults={"enabled": True, "max_age_hours": 26, "incident": "failed"}
    )
    BackupRun.objects.create(kind="snapshot", result="succeeded", started_at=at(1.5), finished_at=at(1))
    BackupRun.objects.create(kind="snapshot", result="succeeded", started_at=at(5), finished_at=at(4))
    BackupRun.objects.create(kind="snapshot", result="failed", started_at=at(0.5), finished_at=at(0.4))
    BackupRun.objects.create(kind="restic", result="failed", started_at=at(3), finished_at=at(2))


def _host_rows(now: datetime) -> None:
    old, fresh = now - timedelta(minutes=20), now - timedelta(minutes=1)
    figures = {"host.cpu.percent": 42.0, "host.mem.used_bytes": 8e9, "host.mem.total_bytes": 64e9,
               "host.load.5": 1.5, "host.psi.memory.some10": 3.25, "disk.srv.used_bytes": 9e11,
               "disk.srv.total_bytes": 1e12}  # fmt: skip
    Sample.objects.bulk_create([Sample(series=name, at=fresh, value=value) for name, value in figures.items()])
    Sample.objects.create(series="host.cpu.percent", at=fresh - timedelta(minutes=1), value=99.0)  # older, same series
    Sample.objects.create(series="host.swap.used_bytes", at=old, value=5.0)  # stale: left out
