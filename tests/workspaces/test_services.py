"""Request-side services: rows, ports, refusals, audit rows and tasks enqueued after commit.
No container is touched here (the lifecycle tests do that against dockerd)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from portal.models import AuditEvent, Host, Operation, User
from portal.operations import operation_claim
from project.celery import app as celery_app
from tests.factories import UserFactory
from tests.workspaces.conftest import G, make_workspace, small_quota
from workspaces import services
from workspaces.admission import AdmissionRefused, WorkspaceError
from workspaces.models import Workspace
from workspaces.services import WorkspaceBusy


def test_creating_a_workspace_records_it_and_enqueues_one_task_after_commit(
    member: User,
    host: Host,
    ws_settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        op = services.workspace_create(owner=member, actor=member, host=host)

    workspace = Workspace.objects.get(owner=member)
    assert (op.kind, op.state, op.owner, op.target_id) == ("create", Operation.State.QUEUED, member, str(workspace.pk))
    assert workspace.desired_state == Workspace.Desired.RUNNING
    assert workspace.state == Workspace.State.ABSENT
    assert workspace.ssh_port == ws_settings.WORKSPACE_SSH_PORT_BASE
    assert workspace.image == ws_settings.WORKSPACE_IMAGE
    assert workspace.slug == member.username
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(action="workspace.create", actor=member, target_id=str(workspace.pk)).exists()


def _message(name: str, kwargs: dict) -> dict:  # type: ignore[type-arg]
    """What a task message carries (its task's name checked), without the retry settings."""
    from workspaces import tasks

    assert getattr(tasks, name.rsplit(".", 1)[1]).name == name  # the worker has the task it names
    return {key: kwargs[key] for key in ("args", "kwargs", "queue")}


def test_the_task_goes_to_the_hosts_queue(
    member: User,
    host: Host,
    ws_settings,
    monkeypatch,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,
) -> None:
    sent: list[dict] = []  # type: ignore[type-arg]
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kwargs: sent.append(_message(name, kwargs)))
    with django_capture_on_commit_callbacks(execute=True):
        op = services.workspace_create(owner=member, actor=member, host=host)
    assert sent == [{"args": [op.pk], "kwargs": {}, "queue": host.queue}]


def test_new_workspaces_go_to_the_local_host_by_default(
    member: User,
    ws_settings,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks():
        services.workspace_create(owner=member, actor=member)
    assert Workspace.objects.get(owner=member).host.name == "local"


def test_ssh_ports_are_allocated_upward_and_kept(
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,
) -> None:
    base = ws_settings.WORKSPACE_SSH_PORT_BASE
    users = [UserFactory(username=f"p{i}") for i in range(3)]
    for user in users:
        small_quota(user)
    make_workspace(users[0], host, port=base + 1)  # someone holds base+1 already
    with django_capture_on_commit_callbacks():
        services.workspace_create(owner=users[1], actor=users[1], host=host)
        services.workspace_create(owner=users[2], actor=users[2], host=host)
    ports = dict(Workspace.objects.values_list("owner__username", "ssh_port"))
    assert ports == {"p0": base + 1, "p1": base, "p2": base + 2}


def test_it_refuses_when_every_ssh_port_is_taken(member: User, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    ws_settings.WORKSPACE_SSH_PORT_MAX = ws_settings.WORKSPACE_SSH_PORT_BASE
    make_workspace(UserFactory(username="holder"), host, port=ws_settings.WORKSPACE_SSH_PORT_BASE)
    with pytest.raises(WorkspaceError, match="Every SSH port"):
        services.workspace_create(owner=member, actor=member, host=host)
    assert not Workspace.objects.filter(owner=member).exists()


@pytest.mark.django_db(transaction=True)
def test_two_members_creating_at_once_get_different_ports(ws_settings) -> None:  # type: ignore[no-untyped-def]
    host = Host.objects.create(name="race", queue="host.race", memory_bytes=64 * G, cpu_count=8)
    users = [UserFactory(username=f"racer{i}") for i in range(4)]
    for user in users:
        small_quota(user)
    barrier = threading.Barrier(len(users))
    errors: list[BaseException] = []

    def create(user: User) -> None:
        try:
            barrier.wait()
            services.workspace_create(owner=user, actor=user, host=host)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ports = list(Workspace.objects.values_list("ssh_port", flat=True))
    assert sorted(ports) == list(range(ws_settings.WORKSPACE_SSH_PORT_BASE, ws_settings.WORKSPACE_SSH_PORT_BASE + 4))


def test_a_second_default_workspace_is_refused(member: User, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    make_workspace(member, host, port=ws_settings.WORKSPACE_SSH_PORT_BASE)
    with pytest.raises(WorkspaceError, match="already has a workspace"):
        services.workspace_create(owner=member, actor=member, host=host)
    assert Workspace.objects.filter(owner=member).count() == 1


def test_extra_named_workspaces_are_allowed_up_to_the_quota(
    member: User,
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks():
        services.workspace_create(owner=member, actor=member, host=host)
        services.workspace_create(owner=member, actor=member, host=host, name="gpu2")
    with pytest.raises(WorkspaceError, match="quota allows 2 workspace"):
        services.workspace_create(owner=member, actor=member, host=host, name="gpu3")
    assert sorted(Workspace.objects.filter(owner=member).values_list("name", flat=True)) == ["", "gpu2"]


@pytest.mark.parametrize("name", ["GPU", "a-b", "x" * 21, "a b", "../x"])
def test_it_refuses_a_bad_workspace_name(member: User, host: Host, ws_settings, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WorkspaceError, match="A workspace name is 1 to 20 lowercase letters and digits"):
        services.workspace_create(owner=member, actor=member, host=host, name=name)
    assert not Workspace.objects.exists()


def test_a_workspace_that_would_share_another_members_address_is_refused(
    host: Host,
    ws_settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    alice = UserFactory(username="alice")
    small_quota(alice)
    with django_capture_on_commit_callbacks():
        services.workspace_create(owner=alice, actor=alice, host=host, name="gpu")
    clash = UserFactory(username="alice-gpu")
    small_quota(clash)
    with pytest.raises(WorkspaceError, match="web address “alice-gpu” is already used"):
        services.workspace_create(owner=clash, actor=clash, host=host)
    assert not Workspace.objects.filter(owner=clash).exists()


def test_a_username_that_is_no_dns_label_gets_a_clear_refusal(host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory(username="_svc")
    with pytest.raises(WorkspaceError, match="can't be used in a web address"):
        services.workspace_create(owner=user, actor=user, host=host)


def test_a_member_without_quota_is_refused(host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory(username="noquota", with_quota=False)
    with pytest.raises(WorkspaceError, match="no quota yet"):
        services.workspace_create(owner=user, actor=user, host=host)


def test_a_suspended_member_cannot_start(member: User, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    workspace = make_workspace(member, host, port=2400, state=Workspace.State.STOPPED)
    User.objects.filter(pk=member.pk).update(is_active=False)
    workspace.owner.refresh_from_db()
    with pytest.raises(WorkspaceError, match="suspended"):
        services.workspace_start(workspace=workspace, actor=member)
    assert not Operation.objects.exists()


def test_start_is_refused_when_the_host_cannot_guarantee_the_memory(member: User, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    others = [UserFactory(username=f"o{i}") for i in range(2)]
    for i, other in enumerate(others):
        small_quota(other, mem_guarantee=20 * G, mem_limit=40 * G)
        make_workspace(other, host, port=2410 + i, state=Workspace.State.RUNNING)
    small_quota(member, mem_guarantee=32 * G, mem_limit=100 * G)
    Host.objects.filter(pk=host.pk).update(memory_bytes=48 * G)
    workspace = make_workspace(member, Host.objects.get(pk=host.pk), port=2420, state=Workspace.State.STOPPED)
    workspace = Workspace.objects.with_related().get(pk=workspace.pk)

    with pytest.raises(AdmissionRefused) as refused:
        services.workspace_start(workspace=workspace, actor=member)

    assert str(refused.value).startswith(
        "The server can't guarantee 32G of memory right now: 40G of 48G are promised to other running workspaces."
    )
    workspace.refresh_from_db()
    assert workspace.desired_state == Workspace.Desired.STOPPED
    assert not Operation.objects.exists()


def test_stopped_workspaces_do_not_hold_memory(
    member: User,
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,
) -> None:
    other = UserFactory(username="sleeper")
    small_quota(other, mem_guarantee=40 * G, mem_limit=40 * G)
    make_workspace(other, host, port=2430, state=Workspace.State.STOPPED)
    small_quota(member, mem_guarantee=32 * G, mem_limit=32 * G)
    Host.objects.filter(pk=host.pk).update(memory_bytes=48 * G)
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2431).pk)
    with django_capture_on_commit_callbacks():
        op = services.workspace_start(workspace=workspace, actor=member)
    assert op.kind == "start"


def test_a_cpuset_beyond_the_hosts_cpus_is_refused(member: User, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    small_quota(member, cpuset="0-3")
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2440).pk)
    with pytest.raises(
        AdmissionRefused, match=r"Your CPU set 0-3 names CPUs this server doesn't have \(it has 2: 0-1\)"
    ):
        services.workspace_start(workspace=workspace, actor=member)


def test_a_second_operation_is_refused_while_one_is_pending(
    member: User,
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,
) -> None:
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2450).pk)
    with django_capture_on_commit_callbacks():
        services.workspace_start(workspace=workspace, actor=member)
    with pytest.raises(WorkspaceBusy, match="busy: “start” has not finished"):
        services.workspace_stop(workspace=workspace, actor=member)
    assert Operation.objects.count() == 1


def test_a_running_operation_whose_worker_died_is_sent_again_not_failed(
    member: User,
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
    monkeypatch,
    django_capture_on_commit_callbacks,
) -> None:
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2460).pk)
    with django_capture_on_commit_callbacks():
        first = services.workspace_start(workspace=workspace, actor=member)
    assert operation_claim(first.pk)  # claimed, then the worker vanished: nobody holds the lock
    sent: list[dict] = []  # type: ignore[type-arg]
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kwargs: sent.append(_message(name, kwargs)))

    with django_capture_on_commit_callbacks(), pytest.raises(WorkspaceBusy, match="being finished now"):
        services.workspace_stop(workspace=workspace, actor=member)

    first.refresh_from_db()
    assert first.state == Operation.State.RUNNING  # the next worker takes it over and finishes it
    assert "sent to another worker" in first.log
    assert sent == [{"args": [first.pk], "kwargs": {}, "queue": host.queue}]
    assert not Operation.objects.filter(kind="stop").exists()


def test_an_admin_acting_on_a_members_workspace_is_audited_with_the_owner(
    member: User,
    admin_user: User,
    host: Host,
    ws_settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2470).pk)
    with django_capture_on_commit_callbacks():
        op = services.workspace_stop(workspace=workspace, actor=admin_user)
    event = AuditEvent.objects.get(action="workspace.stop")
    assert (event.actor, event.detail["owner"], event.detail["operation"]) == (admin_user, member.username, op.pk)
    assert op.owner == member
    assert op.actor == admin_user


def test_only_an_admin_may_delete_a_members_data(member: User, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2480).pk)
    with pytest.raises(WorkspaceError, match="Only an admin"):
        services.workspace_remove(workspace=workspace, actor=member, delete_data=True)
    workspace.refresh_from_db()
    assert workspace.desired_state == Workspace.Desired.STOPPED


def test_data_shared_with_another_workspace_is_not_deleted(
    member: User,
    admin_user: User,
    host: Host,  # type: ignore[no-untyped-def]
    ws_settings,
) -> None:
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2490).pk)
    make_workspace(member, host, name="two", port=2491)
    with pytest.raises(WorkspaceError, match=r"home is shared with ws-m\w+-two"):
        services.workspace_remove(workspace=workspace, actor=admin_user, delete_data=True)


def test_remove_passes_delete_data_to_its_task(
    member: User,
    admin_user: User,
    host: Host,
    ws_settings,  # type: ignore[no-untyped-def]
    monkeypatch,
    django_capture_on_commit_callbacks,
) -> None:
    sent: list[dict] = []  # type: ignore[type-arg]
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kwargs: sent.append(_message(name, kwargs)))
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2495).pk)
    with django_capture_on_commit_callbacks(execute=True):
        op = services.workspace_remove(workspace=workspace, actor=admin_user, delete_data=True)
    assert sent == [{"args": [op.pk], "kwargs": {"delete_data": True}, "queue": host.queue}]
    workspace.refresh_from_db()
    assert workspace.desired_state == Workspace.Desired.ABSENT
    assert AuditEvent.objects.get(action="workspace.remove").detail["delete_data"] is True


def test_keep_running_counts_as_activity_and_clears_the_warning(member: User, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    from django.utils import timezone

    long_ago = timezone.now() - timezone.timedelta(hours=30)
    workspace = make_workspace(member, host, port=2500, last_activity_at=long_ago, idle_warned_at=long_ago)
    services.workspace_keep_running(workspace=workspace, actor=member)
    workspace.refresh_from_db()
    assert workspace.idle_warned_at is None
    assert workspace.last_activity_at > long_ago
    assert AuditEvent.objects.filter(action="workspace.keep_running", actor=member).exists()


def test_a_guarantee_larger_than_the_whole_server_says_so(member: User, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    small_quota(member, mem_guarantee=16 * G, mem_limit=16 * G)
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2510).pk)
    with pytest.raises(AdmissionRefused, match="can't guarantee 16G of memory: it has 8G in all"):
        services.workspace_start(workspace=workspace, actor=member)


def test_a_host_whose_size_is_unknown_is_not_held_against_the_member(
    member: User,
    host: Host,
    ws_settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    small_quota(member, mem_guarantee=512 * G, mem_limit=512 * G, cpuset="0-63")
    Host.objects.filter(pk=host.pk).update(memory_bytes=None, cpu_count=None)
    workspace = Workspace.objects.with_related().get(pk=make_workspace(member, host, port=2520).pk)
    with django_capture_on_commit_callbacks():
        op = services.workspace_start(workspace=workspace, actor=member)
    assert op.state == Operation.State.QUEUED  # the worker reads the size from the engine and decides
