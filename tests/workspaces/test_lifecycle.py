"""The worker side without starting containers: refusals found by the worker, claims,
retries of transient errors and giving up. Engines that don't exist are real too: a unix
socket path with nothing behind it."""

from __future__ import annotations

import pytest

from hostops.errors import (
    EngineUnreachable,
    HostOpsError,
    ImageMissing,
    NetworkBusy,
    OutOfMemory,
    PortTaken,
    SubnetPoolFull,
)
from portal.models import Host, Operation, User
from portal.operations import operation_claim, operation_succeed
from tests.factories import UserFactory
from tests.workspaces.conftest import G, make_workspace, small_quota
from workspaces import services, tasks
from workspaces.lifecycle import explain
from workspaces.models import Workspace

NOWHERE = "unix:///nonexistent/h5/docker.sock"


def start_op(workspace: Workspace, actor: User, capture) -> Operation:  # type: ignore[no-untyped-def]
    with capture():
        return services.workspace_start(workspace=workspace, actor=actor)


def test_the_worker_refuses_a_start_the_host_can_no_longer_honour(
    member: User,
    host: Host,
    ws_settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    workspace = Workspace.objects.with_related().get(
        pk=make_workspace(member, host, port=2600, state=Workspace.State.STOPPED).pk
    )
    op = start_op(workspace, member, django_capture_on_commit_callbacks)
    other = UserFactory(username="latecomer")  # started between the click and the worker
    small_quota(other, mem_guarantee=8 * G - 32 * 1024**2, mem_limit=8 * G)
    make_workspace(other, host, port=2601, state=Workspace.State.RUNNING)

    tasks.workspace_start_task(op.pk)

    op.refresh_from_db()
    workspace.refresh_from_db()
    assert op.state == Operation.State.FAILED
    assert op.message.startswith("The server can't guarantee 64M of memory right now")
    assert "AdmissionRefused" in op.error
    assert workspace.state == Workspace.State.STOPPED  # untouched
    assert workspace.desired_state == Workspace.Desired.STOPPED
    assert workspace.state_reason == op.message


def test_a_second_delivery_of_a_finished_operation_does_nothing(
    member: User,
    host: Host,
    ws_settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2610).pk)
    op = start_op(workspace, member, django_capture_on_commit_callbacks)
    operation_claim(op.pk)
    operation_succeed(op.pk, message="Running")
    Host.objects.filter(pk=host.pk).update(docker_url=NOWHERE, memory_bytes=None)

    tasks.workspace_start_task(op.pk)  # would fail loudly if it touched the (missing) engine

    op.refresh_from_db()
    assert (op.state, op.message, op.attempts) == (Operation.State.SUCCEEDED, "Running", 1)


def test_an_unreachable_engine_is_retried_with_the_operation_saying_so(
    member: User,
    host: Host,
    ws_settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    Host.objects.filter(pk=host.pk).update(docker_url=NOWHERE, memory_bytes=None, cpu_count=None)
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2620).pk)
    op = start_op(workspace, member, django_capture_on_commit_callbacks)

    with pytest.raises(EngineUnreachable):  # called directly, Celery's retry re-raises
        tasks.workspace_start_task(op.pk)

    op.refresh_from_db()
    assert op.state == Operation.State.RETRYING
    assert op.message == "Temporary problem; trying again in 5 s"
    assert NOWHERE.removeprefix("unix://") in op.error


def test_after_the_last_retry_the_operation_fails_in_words(
    member: User,
    host: Host,
    ws_settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    Host.objects.filter(pk=host.pk).update(docker_url=NOWHERE, memory_bytes=None, cpu_count=None)
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2630).pk)
    op = start_op(workspace, member, django_capture_on_commit_callbacks)

    tasks.workspace_start_task.apply(args=[op.pk], retries=tasks.MAX_RETRIES)  # this one call only, not eager mode

    op.refresh_from_db()
    workspace.refresh_from_db()
    assert op.state == Operation.State.FAILED
    assert (
        op.message == f"Server {host.name}'s container engine does not answer. Admins have been told; try again later."
    )
    assert workspace.desired_state == Workspace.Desired.STOPPED


def test_an_operation_on_a_deleted_workspace_fails(
    member: User,
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,
) -> None:
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2640).pk)
    op = start_op(workspace, member, django_capture_on_commit_callbacks)
    Workspace.objects.filter(pk=workspace.pk).delete()
    tasks.workspace_start_task(op.pk)
    op.refresh_from_db()
    assert (op.state, op.error) == (Operation.State.FAILED, "The workspace no longer exists.")


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (ImageMissing("x"), "is not on server gpu1; an admin must build it"),
        (PortTaken("x"), "SSH port 2222 is taken by another program on gpu1"),
        (OutOfMemory("x"), "ran out of memory"),
        (EngineUnreachable("x"), "container engine does not answer"),
        (HostOpsError("no such network"), "Docker refused: no such network"),
        (NetworkBusy("x"), "could not be set up: many workspaces were starting at once. Try again in a minute; if it"),
        (SubnetPoolFull("x"), "Server gpu1 has no addresses left for your network; an admin must widen"),
        (ValueError("bad cpuset"), "settings are not valid: bad cpuset"),
    ],
)
def test_failures_are_explained_in_words(exc: Exception, words: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.WORKSPACE_IMAGE = "img"
    workspace = Workspace(image="img", ssh_port=2222, host=Host(name="gpu1"))
    assert words in explain(exc, workspace)


def test_a_workspace_on_a_retired_image_is_told_to_rebuild(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WORKSPACE_IMAGE = "portal/workspace:2"
    workspace = Workspace(image="portal/workspace:1", ssh_port=2222, host=Host(name="gpu1"))
    assert explain(ImageMissing("x"), workspace) == (
        "Its image portal/workspace:1 is gone from server gpu1; "
        "Rebuild moves it to the current image (your files stay)."
    )
