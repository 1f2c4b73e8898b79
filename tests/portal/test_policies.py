"""The Policies page (admins set the idle policy in the portal) and the idle check obeying it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from hostops import docker
from portal.models import AuditEvent, Host, Notification, Operation, SitePolicy, User
from tests.workspaces.test_activity import HEADER, LISTEN_SSH, running_workspace, set_idle_policy
from workspaces.activity import idle_check_host
from workspaces.models import Workspace

URL = "/policies/"


def _post(client: Client, **changes: str):  # type: ignore[no-untyped-def]
    return client.post(URL, {"idle_stop_hours": "8", "idle_grace_minutes": "60", **changes})


# --- who may see it -----------------------------------------------------------------------


def test_the_url_is_named_site_policies() -> None:
    assert reverse("site-policies") == URL


def test_an_admin_sees_the_idle_policy_explained_with_its_values(admin_client: Client) -> None:
    set_idle_policy(8, grace_minutes=45)

    response = admin_client.get(URL)

    assert response.status_code == 200
    body = response.content.decode()
    assert '<h2 id="idle-policy-h">Idle workspaces</h2>' in body
    assert "Keep running" in body
    assert "GPU use counts only where the server's GPUs are read through the NVIDIA driver (NVML)" in body
    assert 'name="idle_stop_hours" value="8"' in body
    assert 'name="idle_grace_minutes" value="45"' in body
    assert "On · 8 h" in body
    assert f'<a href="{URL}" aria-current="page">Policies</a>' in body


def test_the_page_says_when_the_policy_is_off(admin_client: Client) -> None:
    set_idle_policy(0)
    body = admin_client.get(URL).content.decode()
    assert '<span class="pill">Off</span>' in body


def test_a_member_is_refused_and_the_refusal_is_audited(alice_client: Client, alice: User) -> None:
    set_idle_policy(8)

    assert alice_client.get(URL).status_code == 403
    assert _post(alice_client, idle_stop_hours="1").status_code == 403

    refusals = AuditEvent.objects.filter(actor=alice, action="admin_page.denied", outcome="refused")
    assert refusals.count() == 2
    assert refusals.first().detail["path"] == URL  # type: ignore[union-attr]
    assert SitePolicy.current().idle_stop_hours == 8


def test_a_member_sees_no_policies_link(alice_client: Client) -> None:
    assert URL not in alice_client.get("/").content.decode()


# --- the initial value ----------------------------------------------------------------------


def test_the_first_read_takes_the_hours_from_workspace_idle_hours(admin_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.WORKSPACE_IDLE_HOURS = 12
    assert not SitePolicy.objects.exists()

    body = admin_client.get(URL).content.decode()

    policy = SitePolicy.objects.get()
    assert (policy.pk, policy.idle_stop_hours, policy.idle_grace_minutes, policy.updated_by) == (1, 12, 60, None)
    assert "the hours come from WORKSPACE_IDLE_HOURS" in body


def test_later_changes_of_the_setting_do_not_override_the_row(db: None, settings) -> None:  # type: ignore[no-untyped-def]
    set_idle_policy(3)
    settings.WORKSPACE_IDLE_HOURS = 12
    assert SitePolicy.current().idle_stop_hours == 3


# --- saving ---------------------------------------------------------------------------------


def test_saving_updates_the_policy_and_audits_old_and_new(admin_client: Client, admin_user: User) -> None:
    set_idle_policy(8)

    response = _post(admin_client, idle_stop_hours="1", idle_grace_minutes="30")

    assert response.status_code == 302
    assert response["Location"] == URL
    policy = SitePolicy.current()
    assert (policy.idle_stop_hours, policy.idle_grace_minutes, policy.updated_by) == (1, 30, admin_user)
    event = AuditEvent.objects.get(action="policy.update")
    assert (event.actor, event.outcome, event.target_type) == (admin_user, "ok", "sitepolicy")
    assert event.detail == {"changes": {"idle_stop_hours": [8, 1], "idle_grace_minutes": [60, 30]}}
    page = admin_client.get(URL).content.decode()
    assert "Saved the idle policy." in page
    assert "Last changed by ada on" in page


def test_saving_the_same_values_writes_no_audit_row(admin_client: Client) -> None:
    set_idle_policy(8)
    assert _post(admin_client).status_code == 302
    assert not AuditEvent.objects.filter(action="policy.update").exists()


def test_an_admin_can_turn_the_policy_off(admin_client: Client) -> None:
    set_idle_policy(8)
    assert _post(admin_client, idle_stop_hours="0").status_code == 302
    assert SitePolicy.current().idle_after is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("idle_stop_hours", "-1", "Hours can&#x27;t be negative; use 0 to turn the policy off."),
        ("idle_stop_hours", "721", "At most 720 hours (30 days)"),
        ("idle_stop_hours", "99999999999999999999", "At most 720 hours (30 days)"),
        ("idle_stop_hours", "eight", "Enter a whole number of hours, like 8."),
        ("idle_stop_hours", "1.5", "Enter a whole number of hours, like 8."),
        ("idle_stop_hours", "", "Enter a number of hours (0 turns the policy off)."),
        ("idle_grace_minutes", "4", "At least 5 minutes, so the member has time to see the warning."),
        ("idle_grace_minutes", "-60", "At least 5 minutes, so the member has time to see the warning."),
        ("idle_grace_minutes", "1441", "At most 1440 minutes (one day)."),
        ("idle_grace_minutes", "an hour", "Enter a whole number of minutes, like 60."),
        ("idle_grace_minutes", "", "Enter a number of minutes, like 60."),
    ],
)
def test_it_refuses_bad_input_next_to_the_field_and_saves_nothing(
    admin_client: Client, field: str, value: str, message: str
) -> None:
    set_idle_policy(8)
    before = SitePolicy.current()
    other = "idle_grace_minutes" if field == "idle_stop_hours" else "idle_stop_hours"

    response = _post(admin_client, **{field: value, other: "2" if other == "idle_stop_hours" else "30"})

    assert response.status_code == 400
    body = response.content.decode()
    assert f'<ul class="errorlist" id="id_{field}_error"><li>{message}' in body
    assert f'aria-invalid="true" aria-describedby="id_{field}_helptext id_{field}_error" id="id_{field}"' in body
    after = SitePolicy.current()
    assert (after.idle_stop_hours, after.idle_grace_minutes, after.updated_by, after.updated) == (
        8,
        60,
        None,
        before.updated,
    )
    assert not AuditEvent.objects.filter(action="policy.update").exists()


# --- the idle check obeys the policy ----------------------------------------------------------


@pytest.fixture
def host(db: None) -> Host:
    name = f"pol-{uuid.uuid4().hex[:8]}"
    return Host.objects.create(name=name, queue=f"host.{name}", docker_url="unix:///nonexistent/h7/docker.sock")


@pytest.fixture
def no_sessions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every container's connection table shows sshd listening and nobody connected (the
    engine is the edge here; has_sessions still reads the table). Returns the containers asked."""
    asked: list[str] = []

    def exec_run(name: str, argv: Sequence[str], **kwargs: object) -> tuple[int, str]:
        asked.append(name)
        return 0, HEADER + LISTEN_SSH

    monkeypatch.setattr(docker, "exec_run", exec_run)
    return asked


def test_with_the_policy_at_0_no_idle_workspace_is_warned(
    alice: User, host: Host, no_sessions: list[str], settings
) -> None:  # type: ignore[no-untyped-def]
    settings.WORKSPACE_IDLE_HOURS = 8  # the environment's value no longer decides
    set_idle_policy(0)
    running_workspace(alice, host, idle_for=timedelta(days=30))

    assert idle_check_host(host) == []

    assert no_sessions == []  # not even looked at
    assert not Notification.objects.exists()


def test_a_policy_of_1_hour_warns_a_workspace_idle_for_2_hours(
    alice: User, host: Host, no_sessions: list[str], settings, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    settings.WORKSPACE_IDLE_HOURS = 0
    set_idle_policy(1, grace_minutes=15)
    ws = running_workspace(alice, host, idle_for=timedelta(hours=2))
    now = timezone.now()

    with django_capture_on_commit_callbacks():
        assert idle_check_host(host, now=now) == [f"warned {ws}"]

    assert no_sessions == [ws.container_name]
    note = Notification.objects.get(user=alice)
    assert "for 1 hour," in note.body
    stop_at = timezone.localtime(now + timedelta(minutes=15)).strftime("%H:%M")
    assert note.title == f"Your workspace {ws} stops at {stop_at}"


def test_the_grace_period_comes_from_the_policy(
    alice: User, host: Host, no_sessions: list[str], django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    ws = running_workspace(alice, host, idle_for=timedelta(hours=3))
    Workspace.objects.filter(pk=ws.pk).update(idle_warned_at=timezone.now() - timedelta(minutes=6))

    set_idle_policy(1, grace_minutes=60)
    assert idle_check_host(host) == []
    assert not Operation.objects.exists()

    set_idle_policy(1, grace_minutes=5)
    with django_capture_on_commit_callbacks():
        assert idle_check_host(host) == [f"stopped {ws}"]
    assert Workspace.objects.get(pk=ws.pk).desired_state == Workspace.Desired.STOPPED


def test_a_change_on_the_page_applies_at_the_next_check(
    admin_client: Client, alice: User, host: Host, no_sessions: list[str], django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    set_idle_policy(8)
    ws = running_workspace(alice, host, idle_for=timedelta(hours=2))
    assert idle_check_host(host) == []

    assert _post(admin_client, idle_stop_hours="1").status_code == 302

    with django_capture_on_commit_callbacks():
        assert idle_check_host(host) == [f"warned {ws}"]
