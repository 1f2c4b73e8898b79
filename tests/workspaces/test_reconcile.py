"""The reconciler against the real dockerd: containers removed, stopped and added behind the
portal's back, an engine that doesn't answer, and one list call for many workspaces."""

from __future__ import annotations

import docker as docker_sdk
import pytest

from hostops import docker as hostops_docker
from portal.models import Host, Notification, Operation, User
from portal.operations import operation_claim
from tests.factories import UserFactory
from tests.workspaces.conftest import DOCKER_URL, SLIM_IMAGE, make_workspace
from tests.workspaces.test_lifecycle_docker import create_and_run
from workspaces import reconcile, tasks
from workspaces.models import OrphanContainer, Workspace

NOWHERE = "unix:///nonexistent/h5/docker.sock"


def test_an_engine_that_does_not_answer_marks_the_host_and_leaves_workspaces_alone(
    member: User,
    admin_user: User,
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
) -> None:
    workspace = make_workspace(
        member, host, port=2700, state=Workspace.State.RUNNING, desired_state=Workspace.Desired.RUNNING
    )
    Host.objects.filter(pk=host.pk).update(docker_url=NOWHERE)
    host.refresh_from_db()

    first = reconcile.reconcile_host(host)
    reconcile.reconcile_host(host)

    host.refresh_from_db()
    workspace.refresh_from_db()
    assert not first.reachable
    assert host.state == Host.State.UNREACHABLE
    assert "nonexistent" in host.state_detail
    assert workspace.state == Workspace.State.RUNNING
    assert workspace.observed_at is None
    assert not Operation.objects.exists()
    assert Notification.objects.filter(user=admin_user, title=f"Server {host.name} does not answer").count() == 1


@pytest.mark.docker
def test_the_host_recovers_when_its_engine_answers_again(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
) -> None:
    Host.objects.filter(pk=host.pk).update(docker_url=NOWHERE, cpu_count=None, memory_bytes=None)
    host.refresh_from_db()
    reconcile.reconcile_host(host)
    Host.objects.filter(pk=host.pk).update(docker_url=DOCKER_URL)
    host.refresh_from_db()

    report = reconcile.reconcile_host(host)

    host.refresh_from_db()
    assert report.reachable
    assert (host.state, host.state_detail) == (Host.State.ONLINE, "")
    assert host.last_seen is not None
    info = hostops_docker.engine_info(docker_url=host.docker_url)
    assert (host.cpu_count, host.memory_bytes) == (info.cpus, info.memory_bytes)


@pytest.mark.docker
def test_a_container_removed_behind_the_portals_back_is_recreated(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    engine.containers.get(workspace.container_name).remove(force=True)

    with django_capture_on_commit_callbacks() as callbacks:
        report = reconcile.reconcile_host(host)

    workspace.refresh_from_db()
    assert report.changed == [f"{workspace}: running -> absent"]
    assert report.started == [str(workspace)]
    assert workspace.state == Workspace.State.ABSENT
    assert workspace.container_id == ""
    assert len(callbacks) == 1
    op = Operation.objects.filter(kind="start").get()
    assert op.actor is None
    tasks.workspace_start_task(op.pk)
    workspace.refresh_from_db()
    assert workspace.state == Workspace.State.RUNNING
    assert engine.containers.get(workspace.container_name).status == "running"


@pytest.mark.docker
def test_a_container_stopped_behind_the_portals_back_is_started_again(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    engine.containers.get(workspace.container_name).stop(timeout=5)

    with django_capture_on_commit_callbacks():
        report = reconcile.reconcile_host(host)

    workspace.refresh_from_db()
    assert workspace.state == Workspace.State.STOPPED
    assert report.started == [str(workspace)]
    op = Operation.objects.get(kind="start")
    tasks.workspace_start_task(op.pk)
    workspace.refresh_from_db()
    assert workspace.state == Workspace.State.RUNNING, Operation.objects.get(pk=op.pk).log


@pytest.mark.docker
def test_a_workspace_the_member_stopped_is_left_stopped(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    engine.containers.get(workspace.container_name).stop(timeout=5)
    Workspace.objects.filter(pk=workspace.pk).update(desired_state=Workspace.Desired.STOPPED)

    report = reconcile.reconcile_host(host)

    assert report.started == []
    assert Workspace.objects.get(pk=workspace.pk).state == Workspace.State.STOPPED


@pytest.mark.docker
def test_a_labelled_container_without_a_workspace_is_reported_once_and_forgotten_when_gone(
    engine: docker_sdk.DockerClient,
    member: User,
    admin_user: User,
    host: Host,
) -> None:
    stray = engine.containers.create(
        SLIM_IMAGE,
        name=f"stray-{host.name}",
        entrypoint=["sleep", "600"],
        labels={"portal.managed": "true", "portal.host": host.name, "portal.workspace": "987654"},
    )
    first = reconcile.reconcile_host(host)
    reconcile.reconcile_host(host)

    orphan = OrphanContainer.objects.get(host=host)
    assert first.orphans == [stray.name]
    assert (orphan.container_id, orphan.name, orphan.status) == (stray.id, stray.name, "created")
    title = f"Unknown container {stray.name} on {host.name}"
    assert Notification.objects.filter(user=admin_user, title=title).count() == 1

    stray.remove(force=True)
    reconcile.reconcile_host(host)
    assert not OrphanContainer.objects.filter(host=host).exists()


@pytest.mark.docker
def test_a_container_claiming_a_workspace_under_another_name_is_an_orphan(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    impostor = engine.containers.create(
        SLIM_IMAGE,
        name=f"copy-{host.name}",
        entrypoint=["sleep", "600"],
        labels={"portal.managed": "true", "portal.host": host.name, "portal.workspace": str(workspace.pk)},
    )
    report = reconcile.reconcile_host(host)
    assert report.orphans == [impostor.name]
    assert Workspace.objects.get(pk=workspace.pk).state == Workspace.State.RUNNING


@pytest.mark.docker
def test_the_reconciler_leaves_a_workspace_alone_while_its_operation_runs(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    from workspaces import services

    workspace = create_and_run(member, host, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks():
        services.workspace_stop(workspace=workspace, actor=member)  # queued, not yet run
    engine.containers.get(workspace.container_name).stop(timeout=5)

    report = reconcile.reconcile_host(host)

    assert report.changed == []
    assert report.started == []
    assert Workspace.objects.get(pk=workspace.pk).state == Workspace.State.RUNNING


@pytest.mark.docker
def test_a_create_whose_worker_died_is_sent_again_and_finished_by_the_next_worker(
    engine: docker_sdk.DockerClient,
    member: User,
    host: Host,
    ws_settings,
    monkeypatch,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    """The worker was killed after creating the container and before starting it: its
    Operation is still "running", but nobody holds the workspace's lock."""
    from project.celery import app as celery_app
    from workspaces import services
    from workspaces.folders import prepare_folders
    from workspaces.steps import Run, _spec

    with django_capture_on_commit_callbacks():
        op = services.workspace_create(owner=member, actor=member, host=host)
    assert operation_claim(op.pk)
    workspace = Workspace.objects.with_related().get(pk=op.target_id)
    Workspace.objects.filter(pk=workspace.pk).update(state=Workspace.State.CREATING)
    workspace.refresh_from_db()
    spec = _spec(Run(op=op, workspace=workspace))
    prepare_folders(spec=spec, uid=member.uid)
    hostops_docker.ensure_container(spec, docker_url=host.docker_url, start=False)

    sent: list[tuple[str, list[int]]] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kwargs: sent.append((name, kwargs["args"])))
    with django_capture_on_commit_callbacks():
        report = reconcile.reconcile_host(host)

    op.refresh_from_db()
    assert op.state == Operation.State.RUNNING  # not failed: sent to a live worker to finish
    assert sent == [("workspaces.tasks.workspace_create_task", [op.pk])]
    assert (report.changed, report.started) == ([], [])
    tasks.workspace_create_task(op.pk)  # the next worker takes the row over
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, op.log
    assert "resuming" in op.log
    assert not Operation.objects.filter(kind="start").exists()
    workspace.refresh_from_db()
    assert workspace.state == Workspace.State.RUNNING
    named = engine.containers.list(all=True, filters={"name": f"^/{workspace.container_name}$"})
    assert len(named) == 1
    assert named[0].status == "running"


@pytest.mark.docker
def test_a_hundred_workspaces_cost_one_list_call(
    engine: docker_sdk.DockerClient,
    host: Host,
    monkeypatch,
    django_assert_max_num_queries,  # type: ignore[no-untyped-def]
) -> None:
    calls: list[object] = []
    real = hostops_docker.list_by_label
    monkeypatch.setattr(hostops_docker, "list_by_label", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setattr(hostops_docker, "engine_info", lambda **k: pytest.fail("engine_info on a known, online host"))
    for i in range(100):
        user = UserFactory(username=f"h{i:03d}", with_quota=False)
        make_workspace(user, host, port=3000 + i, state=Workspace.State.ABSENT, desired_state=Workspace.Desired.STOPPED)

    with django_assert_max_num_queries(10):  # the same for 1 or 100 workspaces in steady state
        report = reconcile.reconcile_host(host)

    assert len(calls) == 1
    assert report.reachable
    assert report.changed == []
    assert report.started == []
    assert Workspace.objects.filter(host=host, observed_at=None).count() == 0


def test_housekeeping_sends_one_task_to_each_hosts_own_queue(host: Host) -> None:
    from project.celery import app as celery_app

    queues = list(Host.objects.values_list("queue", flat=True))
    with celery_app.connection_for_write() as conn:
        for queue in queues:
            conn.default_channel.queue_purge(queue)
        tasks.workspace_housekeeping_task()
        try:
            depth = {queue: conn.default_channel.client.llen(queue) for queue in queues}
        finally:
            for queue in queues:
                conn.default_channel.queue_purge(queue)
    assert depth == dict.fromkeys(queues, 1)


def test_the_host_task_stops_at_an_unreachable_engine(member: User, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    ws_settings.WORKSPACE_IDLE_HOURS = 1
    make_workspace(member, host, port=2710, state=Workspace.State.RUNNING, desired_state=Workspace.Desired.RUNNING)
    Host.objects.filter(pk=host.pk).update(docker_url=NOWHERE)

    tasks.workspace_host_task(host.pk)

    host.refresh_from_db()
    assert host.state == Host.State.UNREACHABLE
    assert Workspace.objects.get(host=host).stats_at is None


@pytest.mark.docker
def test_a_removal_whose_container_is_gone_is_completed(
    docker_client: docker_sdk.DockerClient,
    member: User,
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
) -> None:
    workspace = make_workspace(member, host, port=2720, state=Workspace.State.REMOVING,
                               desired_state=Workspace.Desired.ABSENT)  # fmt: skip
    report = reconcile.reconcile_host(host)
    assert report.removed == [str(workspace)]
    assert not Workspace.objects.filter(pk=workspace.pk).exists()


@pytest.mark.docker
def test_a_workspace_that_keeps_failing_is_not_restarted_every_minute(
    docker_client: docker_sdk.DockerClient,
    member: User,
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,
) -> None:
    from portal.operations import operation_create, operation_fail

    workspace = make_workspace(member, host, port=2730, state=Workspace.State.STOPPED,
                               desired_state=Workspace.Desired.RUNNING)  # fmt: skip
    for _ in range(reconcile.AUTO_START_LIMIT):
        operation_fail(operation_create(kind="start", actor=None, target=workspace).pk, error="died")

    with django_capture_on_commit_callbacks() as callbacks:
        report = reconcile.reconcile_host(host)

    assert report.started == []
    assert callbacks == []
    assert Workspace.objects.get(pk=workspace.pk).state == Workspace.State.ABSENT
