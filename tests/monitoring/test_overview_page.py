"""The Server health page: admins only, a range picker that refuses anything but its four
ranges in words (400), charts fed from the rows with gaps as nulls, what it says without GPU
samples or pressure, and a fixed number of queries whatever the range."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import DjangoAssertNumQueries, Settings

from gpus.models import GPU, GpuHost, GpuSample
from monitoring.bins import floor
from monitoring.series import SPANS, window_for
from portal.models import AuditEvent, Host
from tests.monitoring.conftest import Rows, minutes

pytestmark = pytest.mark.django_db
URL = reverse("monitoring:overview")


def _data(response: object) -> dict:
    html = response.content.decode()  # type: ignore[attr-defined]
    start = html.index('<script id="health-data" type="application/json">') + len(
        '<script id="health-data" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


@pytest.fixture
def host_rows(rows: Rows) -> None:
    """Two hours of every host figure but pressure, the second half hour missing (a gap)."""
    now = floor(timezone.now(), minutes(1))

    def value(figure: float):  # type: ignore[no-untyped-def]
        return lambda at: None if now - minutes(90) <= at < now - minutes(60) else figure

    for series, figure in {
        "host.cpu.percent": 37.5,
        "host.load.1": 1.5,
        "host.load.5": 1.2,
        "host.load.15": 1.0,
        "host.mem.used_bytes": 8 * 1024**3,
        "host.mem.total_bytes": 32 * 1024**3,
        "disk.root.used_bytes": 50 * 1024**3,
        "disk.root.total_bytes": 200 * 1024**3,
    }.items():
        rows(series, start=now - timedelta(hours=2), end=now + minutes(1), value=value(figure))


def test_an_admin_sees_the_charts_with_gaps_where_no_sample_was(
    admin_client: Client, host_rows: None, settings: Settings
) -> None:
    settings.MONITORING_DISK_PATHS = ["/"]
    response = admin_client.get(URL, {"range": "6h"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Server health" in body
    assert 'aria-current="true">6 hours' in body
    data = _data(response)
    window = window_for(SPANS["6h"], now=timezone.now())
    assert len(data["labels"]) == window.count
    cpu = data["charts"]["cpu"]["datasets"][0]
    assert cpu["label"] == "CPU busy (%)"
    assert cpu["data"][-1] == 37.5
    assert None in cpu["data"][-40:]  # the missing half hour, not zeros
    assert 0 not in cpu["data"]
    assert data["charts"]["memory"]["datasets"][0]["data"][-1] == 8.0
    assert [d["label"] for d in data["charts"]["disks"]["datasets"]] == ["/"]
    assert data["charts"]["disks"]["datasets"][0]["data"][-1] == 25.0
    # The latest figures, worded.
    assert "38 %" in body
    assert "8G of 32G" in body
    assert "25 % of 200G" in body
    assert "Swap" in body


def test_without_pressure_rows_the_page_says_the_kernel_does_not_measure_it(
    admin_client: Client, host_rows: None
) -> None:
    body = admin_client.get(URL).content.decode()
    assert 'id="no-pressure"' in body
    assert "/proc/pressure" in body


def test_without_gpu_samples_the_page_says_there_is_no_nvidia_driver(admin_client: Client, host_rows: None) -> None:
    body = admin_client.get(URL).content.decode()
    assert "No GPU samples: no NVIDIA driver on this server." in body
    assert "gpu_util" not in _data(admin_client.get(URL))["charts"]


def test_gpu_samples_are_drawn_per_gpu(admin_client: Client, host_rows: None) -> None:
    host = Host.local()
    GpuHost.objects.update_or_create(host=host, defaults={"source": GpuHost.Source.NVML})
    gpu = GPU.objects.create(host=host, index=0, name="RTX 5080", memory_bytes=16 * 1024**3)
    now = timezone.now()
    GpuSample.objects.bulk_create(
        GpuSample(
            gpu=gpu, at=now - minutes(m), utilization=80, memory_used=4 * 1024**3, temperature=71, power_watts=300
        )
        for m in range(30)
    )
    charts = _data(admin_client.get(URL, {"range": "6h"}))["charts"]
    assert charts["gpu_util"]["datasets"][0]["label"] == "GPU 0 (RTX 5080)"
    assert 80.0 in charts["gpu_util"]["datasets"][0]["data"]
    assert 4.0 in charts["gpu_mem"]["datasets"][0]["data"]
    assert 71.0 in charts["gpu_temp"]["datasets"][0]["data"]
    assert 300.0 in charts["gpu_power"]["datasets"][0]["data"]
    # A sampled host with no samples in the range says so, and not that there is no driver.
    GpuSample.objects.all().delete()
    body = admin_client.get(URL, {"range": "1y"}).content.decode()
    assert "No GPU samples in the last 365 days." in body


@pytest.mark.parametrize("bad", ["7d", "", "6H", "../1y", "1y' OR 1=1", "x" * 300])
def test_a_range_not_offered_is_refused_in_words_and_the_default_is_shown(admin_client: Client, bad: str) -> None:
    response = admin_client.get(URL, {"range": bad})
    if bad == "":
        assert response.status_code == 200  # no range asked: the default
        return
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="range-error"' in body
    assert "pick 6 hours, 48 hours, 30 days or 365 days" in body
    assert "Showing the last 48 hours." in body
    assert len(_data(response)["labels"]) == window_for(SPANS["48h"], now=timezone.now()).count


def test_a_post_is_not_allowed(admin_client: Client) -> None:
    assert admin_client.post(URL).status_code == 405


def test_a_member_is_refused_and_the_refusal_is_audited(alice_client: Client) -> None:
    assert alice_client.get(URL).status_code == 403
    assert AuditEvent.objects.filter(action="admin_page.denied", outcome="refused").count() == 1


def test_no_recent_sample_is_said_plainly(admin_client: Client) -> None:
    body = admin_client.get(URL).content.decode()
    assert 'id="no-recent-sample"' in body
    assert "The local host's worker samples it every minute" in body


def test_the_menu_has_server_health_for_admins_only(admin_client: Client, alice_client: Client) -> None:
    assert f'href="{URL}"' in admin_client.get(reverse("dashboard")).content.decode()
    assert f'href="{URL}"' not in alice_client.get(reverse("dashboard")).content.decode()


@pytest.mark.parametrize("span", list(SPANS))
def test_the_page_makes_the_same_few_queries_whatever_the_range(
    admin_client: Client, host_rows: None, span: str, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    admin_client.get(URL)  # the session and user are cached after the first request
    # session, user, rollup boundary (not for raw), host series, GPU samples, GPU hosts, latest
    expected = 6 if span == "6h" else 7
    with django_assert_num_queries(expected):
        assert admin_client.get(URL, {"range": span}).status_code == 200
