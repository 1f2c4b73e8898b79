"""Enforcement on the real dockerd: at a booking's start the holder's container is recreated
asking the engine for the booked GPU by UUID; another member's container carries
NVIDIA_VISIBLE_DEVICES=void; at the end the holder's is recreated without it. There is no GPU
here: dockerd runs with a stand-in of the NVIDIA hook (scripts/test-setup.sh), so the engine
takes the device request down its real path and only mounting the devices is skipped."""

from __future__ import annotations

import uuid
from datetime import timedelta

import docker as docker_sdk
import pytest

from gpus.models import GPU, Booking, GpuHost
from gpus.services import booking_create, slot_floor
from gpus.tick import booking_tick
from portal.models import Host, Operation, User
from tests.factories import UserFactory
from tests.workspaces.conftest import engine, host, small_quota, ws_settings  # noqa: F401  (fixtures)
from tests.workspaces.test_lifecycle_docker import create_and_run
from workspaces import tasks
from workspaces.models import Workspace

pytestmark = pytest.mark.docker

GPU_UUID = "GPU-5a1e0c3e-7d2b-4c1a-9f00-0123456789ab"


@pytest.fixture
def gpu_engine(engine: docker_sdk.DockerClient, slim_image: str) -> docker_sdk.DockerClient:  # noqa: F811
    """Skip, saying why, where dockerd has no NVIDIA device driver (no hook on its PATH)."""
    try:
        engine.containers.run(
            slim_image,
            entrypoint=["true"],
            remove=True,
            device_requests=[docker_sdk.types.DeviceRequest(device_ids=[GPU_UUID], capabilities=[["gpu"]])],
        )
    except docker_sdk.errors.APIError as exc:
        pytest.skip(
            f"dockerd can't start GPU containers ({exc.explanation}); scripts/test-setup.sh starts one that can"
        )
    return engine


def member_named(prefix: str, server: Host) -> User:
    """A member with one GPU allowed, working on ``server`` (bookings follow the member's server)."""
    user = UserFactory(username=f"{prefix}{uuid.uuid4().hex[:7]}", host=server)
    small_quota(user, max_gpus=1)
    return User.objects.select_related("quota").get(pk=user.pk)


def gpu_view(client: docker_sdk.DockerClient, workspace: Workspace) -> tuple[list[str], str]:
    """The device ids the container asks the engine for, and its NVIDIA_VISIBLE_DEVICES."""
    attrs = client.containers.get(workspace.container_name).attrs
    requests = attrs["HostConfig"].get("DeviceRequests") or []
    ids = [device for request in requests for device in request.get("DeviceIDs") or []]
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    return ids, env["NVIDIA_VISIBLE_DEVICES"]


def run_restart(workspace: Workspace) -> None:
    op = Operation.objects.for_target(workspace).in_progress().get()
    assert op.kind == "restart"
    tasks.workspace_restart_task(op.pk)
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, f"{op.message}\n{op.log}\n{op.error}"


def test_the_holder_gets_the_booked_gpu_for_the_booking_only(
    gpu_engine: docker_sdk.DockerClient,
    host: Host,  # noqa: F811
    django_capture_on_commit_callbacks,
) -> None:
    GpuHost.objects.create(host=host, source=GpuHost.Source.CONFIG)
    GPU.objects.create(host=host, index=0, uuid=GPU_UUID, name="RTX 5080")
    holder, other = member_named("g", host), member_named("o", host)
    mine = create_and_run(holder, host, django_capture_on_commit_callbacks)
    theirs = create_and_run(other, host, django_capture_on_commit_callbacks)
    assert gpu_view(gpu_engine, mine) == ([], "void")

    start = slot_floor(mine.started_at, timedelta(minutes=30))
    booking = booking_create(user=holder, host=host, start=start, end=start + timedelta(hours=1), actor=holder)
    # The worker was down at the start: the next pass, ten minutes late, grants the GPU.
    with django_capture_on_commit_callbacks(execute=False):
        booking_tick(now=start + timedelta(minutes=10))
    run_restart(mine)
    assert gpu_view(gpu_engine, Workspace.objects.get(pk=mine.pk)) == ([GPU_UUID], GPU_UUID)
    assert gpu_view(gpu_engine, theirs) == ([], "void")
    mine.refresh_from_db()
    assert mine.state == Workspace.State.RUNNING
    assert mine.applied_gpus == [GPU_UUID]

    with django_capture_on_commit_callbacks(execute=False):
        booking_tick(now=booking.end + timedelta(minutes=3))
    booking.refresh_from_db()
    assert booking.state == Booking.State.COMPLETED
    run_restart(mine)
    assert gpu_view(gpu_engine, Workspace.objects.get(pk=mine.pk)) == ([], "void")
    assert not Operation.objects.for_target(theirs).filter(kind="restart").exists()


def test_a_workspace_started_during_its_owners_booking_gets_the_gpu_at_once(
    gpu_engine: docker_sdk.DockerClient,
    host: Host,  # noqa: F811
    django_capture_on_commit_callbacks,
) -> None:
    from django.utils import timezone

    GpuHost.objects.create(host=host, source=GpuHost.Source.CONFIG)
    GPU.objects.create(host=host, index=0, uuid=GPU_UUID, name="RTX 5080")
    holder = member_named("s", host)
    start = slot_floor(timezone.now(), timedelta(minutes=30))
    booking_create(user=holder, host=host, start=start, end=start + timedelta(hours=1), actor=holder)
    booking_tick()
    mine = create_and_run(holder, host, django_capture_on_commit_callbacks)
    assert gpu_view(gpu_engine, mine) == ([GPU_UUID], GPU_UUID)
    with django_capture_on_commit_callbacks(execute=False):
        booking_tick()
    assert not Operation.objects.for_target(mine).in_progress().exists()  # no restart needed
