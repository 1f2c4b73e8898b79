"""The admin GPUs page: staff only, each host's GPUs with their latest sample and whose
workspaces run on them, the configured-inventory warning, the enforcement switch (audited)
and Refresh now (a real message on the host's queue)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pynvml as real_pynvml
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import DjangoAssertNumQueries, Settings

from gpus.hosts import GpuHostError, gpu_host_set_enforcement
from gpus.inventory import inventory_refresh
from gpus.models import GPU, GpuHost, GpuSample
from gpus.sampling import sample_host
from portal.audit import SYSTEM
from portal.models import AuditEvent, Host, User
from project.celery import app as celery_app
from tests import cgroups, fake_nvml
from tests.gpus.test_sampling import JOB_PID, XORG_PID, _take, workspace
from tests.workspaces.test_broker_outage import _use_broker

URL = "/gpus/admin/"


@pytest.fixture
def sampled(host: Host, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings, alice: User) -> Host:
    """The local host read through NVML (the RTX 5080), alice's job on it, one sample taken."""
    fake_nvml.install(monkeypatch, fake_nvml.rtx_5080_workstation())
    settings.HOST_PROC = str(
        cgroups.write_proc(tmp_path, {JOB_PID: cgroups.V2_DOCKER, XORG_PID: cgroups.HOST_SESSION_V2})
    )
    inventory_refresh(host)
    workspace(alice, host, container_id=cgroups.CONTAINER_A, port=2301)
    sample_host(host)
    return host


@pytest.fixture
def configured(db: None, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Host:
    """A second server without a driver (its worker has the real bindings, which find none):
    two GPUs in its configuration, one since removed."""
    other = Host.objects.create(name="gpu-2", queue="host.gpu-2")
    with monkeypatch.context() as on_that_host:
        on_that_host.setitem(sys.modules, "pynvml", real_pynvml)
        settings.GPU_INVENTORY_HOSTS = {"gpu-2": "0:A100:80GiB,1:A100:80GiB:GPU-1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"}
        inventory_refresh(other)
        settings.GPU_INVENTORY_HOSTS = {"gpu-2": "0:A100:80GiB"}
        inventory_refresh(other)
    return other


def test_the_url_is_named() -> None:
    assert reverse("gpus:admin-gpus") == URL


def test_an_admin_sees_each_gpu_its_latest_sample_and_whose_workspace_uses_it(
    admin_client: Client, sampled: Host, alice: User
) -> None:
    body = admin_client.get(URL).content.decode()
    assert "NVIDIA driver 570.133.07" in body
    assert "NVIDIA GeForce RTX 5080" in body
    assert fake_nvml.RTX_5080_UUID in body
    assert "15.9G" in body  # 16303 MiB
    assert "not supported" in body  # no MIG on a GeForce
    assert 'aria-valuenow="97"' in body
    assert "<span>97%</span>" in body
    assert '13.9G <span class="muted small">of 15.9G</span>' in body  # 14210 MiB used
    assert "71 °C" in body
    assert "301 W" in body
    assert f'<a href="{reverse("member-detail", args=[alice.pk])}">alice</a>' in body
    assert "1 other process<" in body  # the host's own process
    assert "Read from configuration" not in body
    assert f'<a href="{URL}" aria-current="page">GPUs</a>' in body


def test_a_configured_host_says_the_portal_cant_see_use_and_shows_the_gone_gpu(
    admin_client: Client, configured: Host
) -> None:
    body = admin_client.get(URL).content.decode()
    assert "Read from configuration (GPU_INVENTORY_GPU_2): the portal can't see use on these GPUs." in body
    assert "NVML: No NVIDIA driver on this host" in body  # why it fell back
    assert "Not sampled: the portal can't see use without the NVIDIA driver." in body
    assert body.count('<span class="pill pill-ok">Present</span>') == 1
    assert body.count('<span class="pill pill-bad">Gone</span>') == 1
    assert "GPU-1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9" in body


def test_a_host_without_gpus_says_what_to_do(admin_client: Client, host: Host, settings: Settings) -> None:
    settings.GPU_INVENTORY = ""
    inventory_refresh(host)
    body = admin_client.get(URL).content.decode()
    assert "No GPUs found" in body
    assert "GPU_INVENTORY is not set either. Install the NVIDIA driver on the server, or declare its GPUs" in body


def test_a_host_not_read_yet_says_so(admin_client: Client, host: Host) -> None:
    body = admin_client.get(URL).content.decode()
    assert "has not read its GPUs yet" in body
    assert "No GPUs known on this server." in body


def test_the_page_takes_the_same_queries_however_many_gpus_and_samples(
    admin_client: Client, sampled: Host, configured: Host, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    admin_client.get(URL)  # warm the session
    with django_assert_num_queries(6) as first:
        admin_client.get(URL)
    for _ in range(3):
        sample_host(sampled)
    GpuSample.objects.create(
        gpu=GPU.objects.get(host=configured, present=True), at=timezone.now(), utilization=1, memory_used=0
    )
    Host.objects.create(name="gpu-3", queue="host.gpu-3")
    with django_assert_num_queries(len(first.captured_queries)):
        admin_client.get(URL)


def test_members_are_refused_and_do_not_see_the_menu_entry(alice_client: Client, sampled: Host) -> None:
    assert alice_client.get(URL).status_code == 403
    assert 'href="/gpus/admin/"' not in alice_client.get("/").content.decode()


# --- enforcement -------------------------------------------------------------------------------


def _enforcement_url(host: Host) -> str:
    return reverse("gpus:admin-enforcement", args=[host.pk])


def test_an_admin_switches_a_host_to_advisory_audited_with_old_and_new(
    admin_client: Client, admin_user: User, configured: Host
) -> None:
    response = admin_client.post(_enforcement_url(configured), {"mode": "advisory"}, follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert "gpu-2: Advisory: every container sees every GPU; bookings only notify." in response.content.decode()
    assert GpuHost.objects.get(host=configured).enforcement == GpuHost.Enforcement.ADVISORY
    event = AuditEvent.objects.get(action="gpu_host.enforcement")
    assert (event.actor, event.target_label, event.detail) == (
        admin_user,
        "gpu-2",
        {"old": "enforced", "new": "advisory"},
    )
    assert event.ip == "127.0.0.1"


def test_saving_the_same_mode_again_writes_no_audit_row(admin_client: Client, configured: Host) -> None:
    admin_client.post(_enforcement_url(configured), {"mode": "advisory"})
    admin_client.post(_enforcement_url(configured), {"mode": "advisory"})
    assert AuditEvent.objects.filter(action="gpu_host.enforcement").count() == 1


def test_a_host_never_read_gets_its_gpu_row_on_the_first_switch(admin_client: Client, host: Host) -> None:
    admin_client.post(_enforcement_url(host), {"mode": "advisory"})
    gpu_host = GpuHost.objects.get(host=host)
    assert (gpu_host.enforcement, gpu_host.source) == ("advisory", "")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "off"}, "off is not a choice here: choose enforced or advisory."),
        ({"mode": ""}, "Choose enforced or advisory."),
        ({}, "Choose enforced or advisory."),
    ],
)
def test_a_bad_mode_is_refused_and_changes_nothing(
    admin_client: Client, configured: Host, data: dict[str, str], message: str
) -> None:
    response = admin_client.post(_enforcement_url(configured), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert GpuHost.objects.get(host=configured).enforcement == GpuHost.Enforcement.ENFORCED
    assert not AuditEvent.objects.filter(action="gpu_host.enforcement").exists()


def test_an_unknown_host_is_404(admin_client: Client, db: None) -> None:
    assert admin_client.post(reverse("gpus:admin-enforcement", args=[999999]), {"mode": "advisory"}).status_code == 404
    assert admin_client.post(reverse("gpus:admin-refresh", args=[999999])).status_code == 404


def test_the_service_refuses_a_mode_it_does_not_know(admin_user: User, host: Host) -> None:
    with pytest.raises(GpuHostError, match=r"'strict' is not a way to enforce bookings; choose enforced or advisory\."):
        gpu_host_set_enforcement(host=host, mode="strict", actor=admin_user, context=SYSTEM)
    assert not GpuHost.objects.exists()


# --- refresh now -------------------------------------------------------------------------------


def test_refresh_now_sends_the_inventory_task_to_the_hosts_queue(
    admin_client: Client, admin_user: User, configured: Host
) -> None:
    _take("host.gpu-2")
    response = admin_client.post(reverse("gpus:admin-refresh", args=[configured.pk]), follow=True)
    assert "Asked gpu-2&#x27;s worker to read its GPUs again." in response.content.decode()
    assert _take("host.gpu-2") == [("gpus.tasks.gpu_inventory_task", f"[{configured.pk}]")]
    assert AuditEvent.objects.get(action="gpu_host.refresh").actor == admin_user


@pytest.fixture
def broker_down() -> Iterator[None]:
    original = celery_app.conf.broker_url
    _use_broker("redis://127.0.0.1:1/0")  # nothing listens there
    yield
    _use_broker(original)


def test_refresh_now_with_the_queue_down_says_so(admin_client: Client, configured: Host, broker_down: None) -> None:
    response = admin_client.post(reverse("gpus:admin-refresh", args=[configured.pk]), follow=True)
    assert response.status_code == 200
    assert "The job queue is not answering, so the GPUs were not read again." in response.content.decode()
    assert not AuditEvent.objects.filter(action="gpu_host.refresh").exists()
