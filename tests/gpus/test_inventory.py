"""The inventory: NVML (a stand-in pynvml) or, without a driver (the real bindings here), the
configured GPU_INVENTORY; rows upserted, vanished GPUs kept as gone and the admins told once."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from gpus import tasks
from gpus.inventory import inventory_refresh
from gpus.models import GPU, Booking, BookingGPU, GpuHost
from portal.models import Host, Notification, User
from tests import fake_nvml
from tests.fake_nvml import MIB
from tests.portal.test_settings import PRODUCTION_ENV, _manage

GIB = 1024**3
UUID_0 = "GPU-8a1e3c52-7f0b-4d1e-9c39-2b6f5d0e4a17"
UUID_1 = "GPU-1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"


def _gpus(host: Host) -> list[tuple[int, str, str, int | None, bool]]:
    rows = GPU.objects.filter(host=host).order_by("index", "pk")
    return [(g.index, g.name, g.uuid, g.memory_bytes, g.present) for g in rows]


def _warnings(user: User) -> list[Notification]:
    return list(Notification.objects.filter(user=user, level=Notification.Level.WARNING))


# --- from the configuration (no driver here: the real pynvml finds no library) -------------


def test_without_a_driver_the_configured_gpus_are_the_inventory(host: Host, settings: SettingsWrapper) -> None:
    settings.GPU_INVENTORY = f"0:RTX 5080:16G:{UUID_0}; 1:RTX 5080:16G"
    gpu_host = inventory_refresh(host)
    assert _gpus(host) == [(0, "RTX 5080", UUID_0, 16 * GIB, True), (1, "RTX 5080", "", 16 * GIB, True)]
    assert gpu_host.source == GpuHost.Source.CONFIG
    assert gpu_host.driver_version == ""
    assert gpu_host.refresh_error.startswith("No NVIDIA driver on this host")
    assert gpu_host.refreshed_at is not None
    assert set(GPU.objects.values_list("source", flat=True)) == {GpuHost.Source.CONFIG}


def test_another_host_reads_its_own_variable(db: None, settings: SettingsWrapper) -> None:
    other = Host.objects.create(name="gpu-2", queue="host.gpu-2")
    settings.GPU_INVENTORY = "0:RTX 5080:16G"
    settings.GPU_INVENTORY_HOSTS = {"gpu-2": "0:A100:80GiB,1:A100:80GiB"}
    inventory_refresh(other)
    assert [(i, n, m) for i, n, _u, m, _p in _gpus(other)] == [(0, "A100", 80 * GIB), (1, "A100", 80 * GIB)]


def test_no_driver_and_no_configuration_is_no_gpus(host: Host, settings: SettingsWrapper) -> None:
    settings.GPU_INVENTORY = ""
    gpu_host = inventory_refresh(host)
    assert _gpus(host) == []
    assert gpu_host.source == GpuHost.Source.NONE
    assert gpu_host.refresh_error.endswith("GPU_INVENTORY is not set either.")


def test_a_bad_configuration_is_recorded_not_raised(db: None, settings: SettingsWrapper) -> None:
    other = Host.objects.create(name="gpu-2", queue="host.gpu-2")
    settings.GPU_INVENTORY_HOSTS = {"gpu-2": "0:A100"}
    gpu_host = inventory_refresh(other)
    assert gpu_host.source == GpuHost.Source.NONE
    assert "GPU_INVENTORY_GPU_2 is not valid: GPU entry '0:A100' must be index:name:memory" in gpu_host.refresh_error


def test_refreshing_twice_keeps_the_rows(host: Host, settings: SettingsWrapper, admin_user: User) -> None:
    settings.GPU_INVENTORY = "0:RTX 5080:16G,1:RTX 5080:16G"
    inventory_refresh(host)
    first = list(GPU.objects.filter(host=host).values_list("pk", flat=True).order_by("index"))
    settings.GPU_INVENTORY = "0:RTX 5080 (renamed):16G,1:RTX 5080:16G"
    inventory_refresh(host)
    assert list(GPU.objects.filter(host=host).values_list("pk", flat=True).order_by("index")) == first
    assert _gpus(host)[0][1] == "RTX 5080 (renamed)"
    assert _warnings(admin_user) == []


# --- a GPU vanishing ---------------------------------------------------------------------


def test_a_vanished_gpu_is_kept_as_gone_and_the_admins_are_told_once(
    host: Host, settings: SettingsWrapper, admin_user: User, alice: User
) -> None:
    settings.GPU_INVENTORY = f"0:RTX 5080:16G:{UUID_0},1:RTX 5080:16G:{UUID_1}"
    inventory_refresh(host)
    gpu_1 = GPU.objects.get(uuid=UUID_1)
    start = timezone.now() + timedelta(hours=1)
    booking = Booking.objects.create(user=alice, host=host, start=start, end=start + timedelta(hours=2))
    BookingGPU.objects.create(booking=booking, gpu=gpu_1, start=booking.start, end=booking.end)

    settings.GPU_INVENTORY = f"0:RTX 5080:16G:{UUID_0}"
    inventory_refresh(host)
    inventory_refresh(host)

    gpu_1.refresh_from_db()
    assert not gpu_1.present
    assert BookingGPU.objects.filter(gpu=gpu_1).exists()  # the booking still points at it
    assert list(GPU.objects.bookable().filter(host=host).values_list("uuid", flat=True)) == [UUID_0]
    (note,) = _warnings(admin_user)
    assert note.title == "1 GPU of local left the inventory"
    assert f"GPU_INVENTORY no longer lists GPU 1 (RTX 5080, {UUID_1})" in note.body
    assert "Existing bookings of it stay; nobody can book it until it is back." in note.body
    assert note.url == "/gpus/admin/"
    assert _warnings(alice) == []  # members are not told


def test_a_gpu_that_comes_back_is_the_same_row(host: Host, settings: SettingsWrapper) -> None:
    settings.GPU_INVENTORY = f"0:RTX 5080:16G:{UUID_0},1:RTX 5080:16G:{UUID_1}"
    inventory_refresh(host)
    pk = GPU.objects.get(uuid=UUID_1).pk
    settings.GPU_INVENTORY = f"0:RTX 5080:16G:{UUID_0}"
    inventory_refresh(host)
    settings.GPU_INVENTORY = f"0:RTX 5080:16G:{UUID_0},1:RTX 5080:16G:{UUID_1}"
    inventory_refresh(host)
    assert GPU.objects.get(uuid=UUID_1).pk == pk
    assert GPU.objects.get(pk=pk).present


def test_losing_the_driver_and_the_configuration_says_why(
    host: Host, settings: SettingsWrapper, admin_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvml.install(monkeypatch, fake_nvml.hgx_server())
    inventory_refresh(host)
    monkeypatch.delitem(sys.modules, "pynvml")  # the real bindings again: no driver
    settings.GPU_INVENTORY = ""
    gpu_host = inventory_refresh(host)
    assert gpu_host.source == GpuHost.Source.NONE
    assert [present for *_rest, present in _gpus(host)] == [False, False]
    (note,) = _warnings(admin_user)
    assert note.title == "2 GPUs of local left the inventory"
    assert "the portal can read no GPUs on the host" in note.body
    assert "NVML: No NVIDIA driver on this host" in note.body


# --- from NVML ----------------------------------------------------------------------------


def test_nvml_gives_names_uuids_memory_mig_and_the_driver(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml.install(monkeypatch, fake_nvml.hgx_server())
    gpu_host = inventory_refresh(host)
    assert (gpu_host.source, gpu_host.driver_version, gpu_host.refresh_error) == ("nvml", "575.57.08", "")
    assert _gpus(host) == [
        (0, "NVIDIA H200", fake_nvml.H200_UUID, 143771 * MIB, True),
        (1, "NVIDIA H100 80GB HBM3", fake_nvml.H100_UUID, 81559 * MIB, True),
    ]
    assert list(GPU.objects.values_list("mig_mode", "source")) == [("disabled", "nvml"), ("disabled", "nvml")]


def test_nvml_wins_over_the_configuration(
    host: Host, settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.GPU_INVENTORY = "0:RTX 5080:16G"
    inventory_refresh(host)
    configured_pk = GPU.objects.get(host=host).pk
    fake_nvml.install(monkeypatch, fake_nvml.rtx_5080_workstation())
    gpu_host = inventory_refresh(host)
    # The configured GPU without a UUID is the same GPU NVML now names: its bookings stay on it.
    assert _gpus(host) == [(0, "NVIDIA GeForce RTX 5080", fake_nvml.RTX_5080_UUID, 16303 * MIB, True)]
    assert GPU.objects.get(host=host).pk == configured_pk
    assert (gpu_host.source, gpu_host.refresh_error) == ("nvml", "")


def test_gpus_that_swap_indexes_keep_their_rows_by_uuid(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = fake_nvml.install(monkeypatch, fake_nvml.hgx_server())
    inventory_refresh(host)
    h200 = GPU.objects.get(uuid=fake_nvml.H200_UUID).pk
    machine.gpus.reverse()  # re-plugged: the H100 enumerates first now
    inventory_refresh(host)
    assert GPU.objects.get(pk=h200).index == 1
    assert GPU.objects.get(uuid=fake_nvml.H100_UUID).index == 0
    assert GPU.objects.filter(host=host).count() == 2


def test_the_task_refreshes_the_host_and_ignores_a_deleted_one(host: Host, settings: SettingsWrapper) -> None:
    settings.GPU_INVENTORY = "0:RTX 5080:16G"
    tasks.gpu_inventory_task(host.pk)
    assert GpuHost.objects.get(host=host).source == GpuHost.Source.CONFIG
    tasks.gpu_inventory_task(host.pk + 1000)  # gone since the fan-out: nothing to do
    assert GpuHost.objects.count() == 1


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"GPU_INVENTORY": "0:RTX 5080"}, "GPU_INVENTORY: GPU entry '0:RTX 5080' must be index:name:memory"),
        ({"GPU_INVENTORY_GPU_2": "0:A100:80GiB:not-a-uuid"}, "GPU_INVENTORY_GPU_2: GPU entry"),
    ],
)
def test_a_bad_inventory_stops_startup_naming_the_variable(override: dict[str, str], named: str) -> None:
    result = _manage("check", env={**PRODUCTION_ENV, **override})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr.splitlines()[-1]


def test_each_hosts_variable_is_read_by_host_name() -> None:
    env = {**PRODUCTION_ENV, "GPU_INVENTORY": "0:RTX 5080:16G", "GPU_INVENTORY_GPU_2": "0:A100:80G"}
    code = "from django.conf import settings as s; print(repr(s.GPU_INVENTORY), s.GPU_INVENTORY_HOSTS)"
    result = _manage("shell", "--no-imports", "-c", code, env=env)
    assert result.stdout.strip() == "'0:RTX 5080:16G' {'gpu-2': '0:A100:80G'}", result.stderr


def test_a_starting_worker_reads_the_gpus_of_the_hosts_it_serves(settings, db: None) -> None:  # type: ignore[no-untyped-def]
    from gpus.models import GPU as GpuRow
    from gpus.signals import refresh_hosts_of
    from portal.models import Host as HostRow

    settings.GPU_INVENTORY = "0:RTX 5080:16G"
    local = HostRow.local()
    other = HostRow.objects.create(name="gpu2", queue="host.gpu2")
    assert refresh_hosts_of({"portal", "host.local"}) == ["local"]
    assert list(GpuRow.objects.filter(host=local).values_list("index", "name")) == [(0, "RTX 5080")]
    assert not GpuRow.objects.filter(host=other).exists()
