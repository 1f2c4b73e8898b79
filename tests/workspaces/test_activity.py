"""The idle policy: what counts as a session, the warning, the grace period and the stop."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import Host, Notification, Operation, SitePolicy, User
from tests.workspaces.conftest import make_workspace
from workspaces.activity import busy_computing, has_sessions, idle_check_host, idle_step
from workspaces.models import Workspace

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
LISTEN_SSH = "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"


def row(local: str, remote: str, state: str = "01") -> str:
    return f"   1: {local} {remote} {state} 00000000:00000000 02:000A7B6D 00000000  1000        0 2 1\n"


@pytest.mark.parametrize(
    ("table", "in_use"),
    [
        (HEADER + LISTEN_SSH, False),
        (HEADER + LISTEN_SSH + row("020011AC:0016", "010011AC:D2F0"), True),  # ssh from the bridge
        (HEADER + row("020011AC:22B8", "0A00000A:C350"), True),  # Jupyter (8888) through Traefik
        (HEADER + row("020011AC:1F90", "0A00000A:C350"), True),  # code-server (8080)
        (HEADER + row("020011AC:0D3D", "0A00000A:C350"), True),  # xrdp (3389), Guacamole's desktop
        (HEADER + row("0100007F:0016", "0100007F:D2F0"), False),  # the health check over loopback
        (HEADER + row("020011AC:0016", "010011AC:D2F0", state="06"), False),  # TIME_WAIT
        (HEADER + row("020011AC:D2F0", "0A00000A:0016"), False),  # an outgoing ssh is not a session here
        (HEADER + row("0000000000000000FFFF0000020011AC:0016", "0000000000000000FFFF0000010011AC:D2F0"), True),
        (HEADER + row("00000000000000000000000001000000:22B8", "00000000000000000000000001000000:C350"), False),
    ],
)
def test_only_established_outside_connections_to_service_ports_count(table: str, in_use: bool) -> None:
    assert has_sessions(table) is in_use


def set_idle_policy(hours: int, grace_minutes: int = 60) -> SitePolicy:
    """The idle policy as an admin sets it on the Policies page."""
    policy, _ = SitePolicy.objects.update_or_create(
        pk=1, defaults={"idle_stop_hours": hours, "idle_grace_minutes": grace_minutes}
    )
    return policy


def running_workspace(member: User, host: Host, *, idle_for: timedelta, port: int = 2800) -> Workspace:
    """A running workspace (no container) whose last session ended ``idle_for`` ago."""
    started = timezone.now() - idle_for
    return make_workspace(
        member,
        host,
        port=port,
        state=Workspace.State.RUNNING,
        desired_state=Workspace.Desired.RUNNING,
        started_at=started,
        last_activity_at=started,
    )


@pytest.fixture
def idle_ws(member: User, host: Host, ws_settings) -> Workspace:  # type: ignore[no-untyped-def]
    set_idle_policy(8)
    return running_workspace(member, host, idle_for=timedelta(hours=10))


def test_a_workspace_idle_past_the_limit_is_warned_first(
    idle_ws: Workspace, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    with django_capture_on_commit_callbacks() as callbacks:
        done = idle_step(Workspace.objects.with_related().get(pk=idle_ws.pk), now=now)

    assert done == [f"warned {idle_ws}"]
    idle_ws.refresh_from_db()
    assert idle_ws.idle_warned_at == now
    note = Notification.objects.get(user=idle_ws.owner)
    assert note.level == Notification.Level.WARNING
    assert note.title.startswith(f"Your workspace {idle_ws} stops at ")
    assert "Keep running" in note.body
    assert len(callbacks) == 1  # the Slack post
    assert not Operation.objects.exists()


def test_it_stops_the_workspace_after_the_grace_period(idle_ws: Workspace, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    warned = timezone.now() - SitePolicy.current().idle_grace - timedelta(minutes=1)
    Workspace.objects.filter(pk=idle_ws.pk).update(idle_warned_at=warned)
    with django_capture_on_commit_callbacks():
        done = idle_step(Workspace.objects.with_related().get(pk=idle_ws.pk), now=timezone.now())
    assert done == [f"stopped {idle_ws}"]
    op = Operation.objects.get()
    assert (op.kind, op.actor) == ("stop", None)
    assert Workspace.objects.get(pk=idle_ws.pk).desired_state == Workspace.Desired.STOPPED


def test_it_waits_during_the_grace_period(idle_ws: Workspace) -> None:
    Workspace.objects.filter(pk=idle_ws.pk).update(idle_warned_at=timezone.now() - timedelta(minutes=10))
    assert idle_step(Workspace.objects.with_related().get(pk=idle_ws.pk), now=timezone.now()) == []
    assert not Operation.objects.exists()


def test_recent_activity_keeps_it_running(idle_ws: Workspace) -> None:
    Workspace.objects.filter(pk=idle_ws.pk).update(last_activity_at=timezone.now() - timedelta(hours=2))
    assert idle_step(Workspace.objects.with_related().get(pk=idle_ws.pk), now=timezone.now()) == []
    assert not Notification.objects.exists()


def test_keep_running_after_a_warning_starts_the_count_again(
    idle_ws: Workspace,
    member: User,
    client,  # type: ignore[no-untyped-def]
) -> None:
    from django.urls import reverse

    Workspace.objects.filter(pk=idle_ws.pk).update(idle_warned_at=timezone.now())
    client.force_login(member)
    response = client.post(reverse("workspaces:keep-running", args=[idle_ws.pk]))
    assert response.status_code == 302
    assert idle_step(Workspace.objects.with_related().get(pk=idle_ws.pk), now=timezone.now()) == []


def test_with_the_policy_off_nothing_is_checked(idle_ws: Workspace, host: Host, ws_settings) -> None:  # type: ignore[no-untyped-def]
    ws_settings.WORKSPACE_IDLE_HOURS = 0
    set_idle_policy(0)
    Host.objects.filter(pk=host.pk).update(docker_url="unix:///nonexistent/h5/docker.sock")
    host.refresh_from_db()
    assert idle_check_host(host) == []


def test_an_unreadable_connection_table_never_stops_a_workspace(idle_ws: Workspace, host: Host) -> None:
    Host.objects.filter(pk=host.pk).update(docker_url="unix:///nonexistent/h5/docker.sock")
    host.refresh_from_db()
    assert idle_check_host(host) == []
    assert not Notification.objects.exists()


def test_a_job_computing_with_nobody_connected_is_not_idle(idle_ws: Workspace, host: Host) -> None:
    Workspace.objects.filter(pk=idle_ws.pk).update(cpu_percent=180.0, stats_at=timezone.now())
    Host.objects.filter(pk=host.pk).update(docker_url="unix:///nonexistent/h5/docker.sock")
    host.refresh_from_db()

    assert idle_check_host(host) == []

    idle_ws.refresh_from_db()
    assert idle_ws.idle_warned_at is None
    assert timezone.now() - idle_ws.last_activity_at < timedelta(minutes=1)
    assert not Notification.objects.exists()


def test_an_old_cpu_sample_does_not_keep_a_workspace_busy(idle_ws: Workspace) -> None:
    Workspace.objects.filter(pk=idle_ws.pk).update(cpu_percent=180.0, stats_at=timezone.now() - timedelta(hours=1))
    idle_ws.refresh_from_db()
    assert not busy_computing(idle_ws)
