"""The minute's workspace stats against the real engine: one call per container in parallel,
a stopped or missing container left out, the deadline kept however slow the engine is, and the
same reading handed to the monitoring app, which writes it as ws.<id> series."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import docker as docker_sdk
import pytest
from django.core.cache import cache
from django.utils import timezone
from pytest_django.fixtures import Settings

from monitoring.models import Sample
from portal.models import Host, User
from tests.conftest import SLIM_IMAGE
from tests.workspaces.conftest import make_workspace
from workspaces.activity import collect_stats
from workspaces.models import Workspace

M = 1024**2


@pytest.fixture
def containers(engine: docker_sdk.DockerClient, host: Host, member: User) -> Iterator[list[Workspace]]:
    """Three workspaces the rows say run: one running container (on a bridge network of its
    own, so it has counters), one created and never started, and one with no container."""
    network = engine.networks.create(f"h5t-net-{uuid.uuid4().hex[:8]}", driver="bridge")
    running, stopped, missing = (
        make_workspace(member, host, name=name, port=2300 + i, state=Workspace.State.RUNNING)
        for i, name in enumerate(("a", "b", "c"))
    )
    labels = {"portal.host": host.name}
    engine.containers.run(
        SLIM_IMAGE, entrypoint=["sleep", "infinity"], name=running.container_name, detach=True,
        mem_limit="256m", network=network.name, labels=labels,
    )  # fmt: skip
    engine.containers.create(SLIM_IMAGE, entrypoint=["sleep", "infinity"], name=stopped.container_name, labels=labels)
    for workspace in (running, stopped, missing):
        cache.delete(f"monitoring:ws-net:{workspace.pk}")
    yield [running, stopped, missing]
    for container in engine.containers.list(all=True, filters={"label": f"portal.host={host.name}"}):
        container.remove(force=True)
    network.remove()


def _series() -> dict[str, float]:
    return dict(Sample.objects.values_list("series", "value"))


@pytest.mark.django_db
def test_the_running_workspace_is_read_and_written_as_series_and_the_others_are_left_out(
    containers: list[Workspace], host: Host
) -> None:
    running, stopped, missing = containers
    first = timezone.now().replace(microsecond=0)

    assert collect_stats(host, now=first) == 1

    running.refresh_from_db()
    assert running.stats_at == first
    assert 0 < running.mem_usage < 256 * M
    stored = _series()
    assert stored[f"ws.{running.pk}.mem.used_bytes"] == running.mem_usage
    assert stored[f"ws.{running.pk}.mem.limit_bytes"] == 256 * M
    assert 0 <= stored[f"ws.{running.pk}.cpu.percent"] < 100
    assert f"ws.{running.pk}.net.rx_bytes" not in stored  # one reading of the counters is no rate yet
    assert not any(name.startswith((f"ws.{stopped.pk}.", f"ws.{missing.pk}.")) for name in stored)
    assert Workspace.objects.get(pk=stopped.pk).stats_at is None

    assert collect_stats(host, now=first + timedelta(minutes=1)) == 1

    rates = dict(Sample.objects.filter(at=first + timedelta(minutes=1)).values_list("series", "value"))
    assert rates[f"ws.{running.pk}.net.rx_bytes"] >= 0
    assert rates[f"ws.{running.pk}.net.tx_bytes"] >= 0
    assert len({name.split(".")[1] for name in rates}) == 1


@pytest.mark.django_db
def test_a_slow_engine_is_given_up_on_at_the_deadline_and_nothing_is_written(
    containers: list[Workspace], host: Host, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.WORKSPACE_STATS_DEADLINE = 0.3  # the engine takes about a second to measure CPU
    started = time.monotonic()

    with caplog.at_level(logging.WARNING, logger="hostops.docker.containers"):
        assert collect_stats(host) == 0

    assert time.monotonic() - started < 1.0
    assert f"no stats within 0.3s for {containers[0].container_name}" in caplog.text
    assert not Sample.objects.exists()
    assert Workspace.objects.filter(stats_at__isnull=False).count() == 0


@pytest.mark.django_db
def test_a_receiver_that_fails_is_logged_and_the_figures_are_still_stored(
    containers: list[Workspace], host: Host, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.WORKSPACE_STATS_RECEIVERS = ["tests.workspaces.test_stats_collect.failing_receiver"]

    assert collect_stats(host) == 1

    assert "workspace stats receiver tests.workspaces.test_stats_collect.failing_receiver failed" in caplog.text
    assert Workspace.objects.filter(stats_at__isnull=False).count() == 1


def failing_receiver(**_kwargs: object) -> None:
    raise RuntimeError("the receiver broke")
