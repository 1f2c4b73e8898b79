"""Workspace pages and actions: who may see and do what, what htmx gets back, the forms'
messages, and query counts that stay flat as data grows."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from portal.models import AuditEvent, Host, Operation, User
from portal.operations import operation_create
from tests.factories import UserFactory
from tests.workspaces.conftest import make_workspace, small_quota
from workspaces.models import OrphanContainer, Workspace

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ws_host(db: None) -> Host:
    return Host.objects.create(name="gpu1", queue="host.gpu1", memory_bytes=64 * 1024**3, cpu_count=8)


@pytest.fixture
def alice_ws(alice: User, ws_host: Host, ws_settings) -> Workspace:  # type: ignore[no-untyped-def]
    small_quota(alice)
    return make_workspace(alice, ws_host, port=2222, state=Workspace.State.STOPPED)


def act(client: Client, workspace: Workspace, action: str, **extra: str):  # type: ignore[no-untyped-def]
    return client.post(reverse("workspaces:act", args=[workspace.pk, action]), **extra)


def test_a_member_starts_their_workspace_and_gets_the_polling_card(
    alice_client: Client,
    alice_ws: Workspace,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = act(alice_client, alice_ws, "start", **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert f'id="workspace-card-{alice_ws.pk}"' in body
    assert 'hx-trigger="every 1s"' in body  # polls while the job runs
    assert "Waiting for a worker" in body
    assert len(callbacks) == 1
    assert Operation.objects.get().kind == "start"


def test_without_htmx_the_action_redirects_to_the_dashboard(
    alice_client: Client,
    alice_ws: Workspace,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    with django_capture_on_commit_callbacks():
        response = act(alice_client, alice_ws, "start")
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")


def test_a_redirect_back_never_leaves_the_portal(
    alice_client: Client,
    alice_ws: Workspace,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    with django_capture_on_commit_callbacks():
        response = act(alice_client, alice_ws, "start", data={"next": "https://evil.example/"})
    assert response["Location"] == reverse("dashboard")


def test_the_card_stops_polling_once_the_job_is_done(alice_client: Client, alice_ws: Workspace) -> None:
    op = operation_create(kind="start", actor=None, owner=alice_ws.owner, target=alice_ws)
    Operation.objects.filter(pk=op.pk).update(state=Operation.State.SUCCEEDED)
    Workspace.objects.filter(pk=alice_ws.pk).update(state=Workspace.State.RUNNING)
    body = alice_client.get(reverse("workspaces:card", args=[alice_ws.pk]), **HTMX).content.decode()
    assert "hx-trigger" not in body.split(">", 1)[0]  # the section itself carries no trigger
    assert "alice-code.corp.example" in body
    assert "jupyter-alice.corp.example" in body


def test_a_refused_action_is_explained_on_the_card(
    alice_client: Client,
    alice_ws: Workspace,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    with django_capture_on_commit_callbacks():
        act(alice_client, alice_ws, "start", **HTMX)
    response = act(alice_client, alice_ws, "stop", **HTMX)
    assert "busy: “start” has not finished yet" in response.content.decode()
    assert Operation.objects.count() == 1


def test_a_failed_job_shows_its_message_and_log_on_the_card(alice_client: Client, alice_ws: Workspace) -> None:
    op = operation_create(kind="start", actor=alice_ws.owner, target=alice_ws)
    Operation.objects.filter(pk=op.pk).update(
        state=Operation.State.FAILED,
        message="The server can't guarantee 64M of memory right now",
        log="02:00:00 Checking server gpu1\n",
        error="AdmissionRefused: ...",
    )
    body = alice_client.get(reverse("workspaces:card", args=[alice_ws.pk])).content.decode()
    assert "The server can&#x27;t guarantee 64M of memory right now" in body
    assert "<summary>Log</summary>" in body
    assert "Checking server gpu1" in body


@pytest.mark.parametrize("action", ["start", "stop", "restart", "rebuild"])
def test_another_member_cannot_act_on_a_workspace(bob_client: Client, alice_ws: Workspace, action: str) -> None:
    response = act(bob_client, alice_ws, action)
    assert response.status_code == 403
    assert not Operation.objects.exists()
    event = AuditEvent.objects.get(outcome=AuditEvent.Outcome.REFUSED)
    assert (event.action, event.actor_label, event.target_id) == ("workspace.act_denied", "bob", str(alice_ws.pk))


@pytest.mark.parametrize("name", ["workspaces:card", "workspaces:connect", "workspaces:x2go"])
def test_another_member_cannot_see_a_workspace(bob_client: Client, alice_ws: Workspace, name: str) -> None:
    response = bob_client.get(reverse(name, args=[alice_ws.pk]))
    assert response.status_code == 403
    assert "ws-alice" not in response.content.decode()
    assert AuditEvent.objects.filter(action="workspace.view_denied", outcome="refused").count() == 1


def test_keep_running_by_another_member_is_refused(bob_client: Client, alice_ws: Workspace) -> None:
    response = bob_client.post(reverse("workspaces:keep-running", args=[alice_ws.pk]))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="workspace.act_denied").exists()


def test_actions_need_post(alice_client: Client, alice_ws: Workspace) -> None:
    assert alice_client.get(reverse("workspaces:act", args=[alice_ws.pk, "start"])).status_code == 405
    assert not Operation.objects.exists()


def test_an_unknown_action_is_not_found(alice_client: Client, alice_ws: Workspace) -> None:
    assert act(alice_client, alice_ws, "explode").status_code == 404


def test_an_admin_can_act_on_any_workspace_and_it_is_audited(
    admin_client: Client,
    admin_user: User,
    alice_ws: Workspace,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    with django_capture_on_commit_callbacks():
        response = act(admin_client, alice_ws, "start", data={"next": reverse("workspaces:admin-list")})
    assert response["Location"] == reverse("workspaces:admin-list")
    event = AuditEvent.objects.get(action="workspace.start")
    assert event.actor == admin_user
    assert event.detail["owner"] == "alice"


def test_the_connect_page_gives_ssh_config_and_links(alice_client: Client, alice_ws: Workspace, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SSH_HOST = "gpu.corp.example"
    body = alice_client.get(reverse("workspaces:connect", args=[alice_ws.pk])).content.decode()
    assert "Host ws-alice\n    HostName gpu.corp.example\n    Port 2222\n    User alice" in body
    assert "https://alice-code.corp.example" in body
    assert "https://jupyter-alice.corp.example" in body
    assert reverse("workspaces:x2go", args=[alice_ws.pk]) in body


def test_the_x2go_session_file_opens_kde_over_the_workspaces_ssh_port(
    alice_client: Client,
    alice_ws: Workspace,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.SSH_HOST = "gpu.corp.example"
    response = alice_client.get(reverse("workspaces:x2go", args=[alice_ws.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="alice.x2go"'
    lines = response.content.decode().splitlines()
    assert lines[0] == "[alice]"
    for line in ("host=gpu.corp.example", "sshport=2222", "user=alice", "command=KDE", "autologin=true"):
        assert line in lines


def test_a_member_creates_their_default_workspace_from_the_dashboard(
    alice_client: Client,
    alice: User,
    ws_settings,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    small_quota(alice)
    Host.objects.update_or_create(name="local", defaults={"queue": "host.local", "memory_bytes": None})
    with django_capture_on_commit_callbacks() as callbacks:
        response = alice_client.post(reverse("workspaces:create"))
    assert response.status_code == 302
    assert Workspace.objects.get(owner=alice).name == ""
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("GPU 2", "Use 1 to 20 lowercase letters and digits"),
        ("", "Give the new workspace a name"),
        ("x" * 25, "Use 1 to 20 lowercase letters and digits"),
    ],
)
def test_a_bad_name_for_another_workspace_is_explained_next_to_the_field(
    alice_client: Client,
    alice_ws: Workspace,
    name: str,
    message: str,
) -> None:
    response = alice_client.post(reverse("workspaces:create"), {"name": name, "extra": "1"}, **HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="ws-new-name-error"' in body
    assert message in body
    assert 'aria-invalid="true"' in body
    assert Workspace.objects.count() == 1


def test_a_refused_extra_workspace_is_explained_next_to_the_name(alice_client: Client, alice_ws: Workspace) -> None:
    small_quota(alice_ws.owner, max_workspaces=1)
    response = alice_client.post(reverse("workspaces:create"), {"name": "gpu2", "extra": "1"}, **HTMX)
    assert "quota allows 1 workspace" in response.content.decode()
    assert Workspace.objects.count() == 1


def test_a_good_extra_workspace_sends_htmx_back_to_the_dashboard(
    alice_client: Client,
    alice_ws: Workspace,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    Host.objects.update_or_create(name="local", defaults={"queue": "host.local", "memory_bytes": None})
    with django_capture_on_commit_callbacks():
        response = alice_client.post(reverse("workspaces:create"), {"name": "gpu2", "extra": "1"}, **HTMX)
    assert response["HX-Redirect"] == reverse("dashboard")
    assert Workspace.objects.filter(owner=alice_ws.owner, name="gpu2").exists()


def test_the_dashboard_shows_the_members_workspace_card(alice_client: Client, alice_ws: Workspace) -> None:
    body = alice_client.get(reverse("dashboard")).content.decode()
    assert f'id="workspace-card-{alice_ws.pk}"' in body
    assert "ssh -p 2222 alice@" in body
    assert "Create and start my workspace" not in body
    assert "Another workspace" in body  # the quota allows two


def test_the_dashboard_offers_to_create_a_workspace_when_there_is_none(alice_client: Client, alice: User) -> None:
    body = alice_client.get(reverse("dashboard")).content.decode()
    assert "Create and start my workspace" in body
    assert f"{alice.uid} / {alice.gid}" in body


def test_the_dashboards_query_count_does_not_grow_with_workspaces(
    alice_client: Client,
    alice: User,
    ws_host: Host,
    ws_settings,
    django_assert_num_queries,  # type: ignore[no-untyped-def]
) -> None:
    small_quota(alice, max_workspaces=5)
    make_workspace(alice, ws_host, port=2300)
    operation_create(kind="start", actor=alice, target=Workspace.objects.get())
    alice_client.get(reverse("dashboard"))  # warm the session
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        alice_client.get(reverse("dashboard"))
    for i in range(4):
        operation_create(kind="stop", actor=alice, target=make_workspace(alice, ws_host, name=f"w{i}", port=2301 + i))
    with django_assert_num_queries(len(one)):
        alice_client.get(reverse("dashboard"))


def test_remove_is_for_admins_only(alice_client: Client, alice_ws: Workspace) -> None:
    response = alice_client.post(reverse("workspaces:remove", args=[alice_ws.pk]), {"confirm": "ws-alice"})
    assert response.status_code == 403
    assert Workspace.objects.get(pk=alice_ws.pk).desired_state != Workspace.Desired.ABSENT
    assert AuditEvent.objects.filter(outcome="refused", actor_label="alice").exists()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Type the workspace&#x27;s name to confirm."),
        ("alice", "That is not the workspace&#x27;s name; type ws-alice exactly."),
    ],
)
def test_remove_needs_the_name_typed_exactly(
    admin_client: Client, alice_ws: Workspace, typed: str, message: str
) -> None:
    response = admin_client.post(
        reverse("workspaces:remove", args=[alice_ws.pk]), {"confirm": typed, "delete_data": "on"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert 'aria-invalid="true"' in body
    assert Workspace.objects.get(pk=alice_ws.pk).desired_state == Workspace.Desired.STOPPED
    assert not Operation.objects.exists()


def test_remove_with_data_of_a_members_only_workspace_is_queued(
    admin_client: Client,
    alice_ws: Workspace,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            reverse("workspaces:remove", args=[alice_ws.pk]), {"confirm": "ws-alice", "delete_data": "on"}
        )
    assert response.status_code == 302
    assert Operation.objects.get().kind == "remove"
    assert AuditEvent.objects.get(action="workspace.remove").detail["delete_data"] is True
    assert len(callbacks) == 1


def test_remove_with_data_shared_with_another_workspace_is_refused_on_the_form(
    admin_client: Client,
    alice_ws: Workspace,
    ws_host: Host,
) -> None:
    make_workspace(alice_ws.owner, ws_host, name="two", port=2299)
    response = admin_client.post(
        reverse("workspaces:remove", args=[alice_ws.pk]), {"confirm": "ws-alice", "delete_data": "on"}
    )
    assert response.status_code == 400
    assert "home is shared with ws-alice-two" in response.content.decode()
    assert not Operation.objects.exists()


def test_the_admin_page_lists_workspaces_hosts_and_orphans(admin_client: Client, alice_ws: Workspace) -> None:
    OrphanContainer.objects.create(
        host=alice_ws.host,
        container_id="c0ffee" * 10,
        name="ws-ghost",
        labels={"portal.workspace": "999"},
        status="exited",
    )
    body = admin_client.get(reverse("workspaces:admin-list")).content.decode()
    assert "ws-alice" in body
    assert "gpu1" in body
    assert "2222" in body
    assert "ws-ghost" in body
    assert "portal.workspace=999" in body


def test_members_cannot_open_the_admin_page(alice_client: Client, alice_ws: Workspace) -> None:
    assert alice_client.get(reverse("workspaces:admin-list")).status_code == 403
    assert AuditEvent.objects.filter(action="admin_page.denied").exists()


def test_the_admin_pages_query_count_does_not_grow(
    admin_client: Client,
    ws_host: Host,
    ws_settings,
    django_assert_num_queries,  # type: ignore[no-untyped-def]
) -> None:
    def add(count: int, start: int) -> None:
        for i in range(start, start + count):
            owner = UserFactory(username=f"u{i}")
            operation_create(kind="start", actor=owner, target=make_workspace(owner, ws_host, port=2300 + i))

    add(2, 0)
    admin_client.get(reverse("workspaces:admin-list"))
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        admin_client.get(reverse("workspaces:admin-list"))
    add(10, 2)
    with django_assert_num_queries(len(few)):
        admin_client.get(reverse("workspaces:admin-list"))


def test_without_htmx_a_bad_name_comes_back_as_a_message_on_the_dashboard(
    alice_client: Client, alice_ws: Workspace
) -> None:
    response = alice_client.post(reverse("workspaces:create"), {"name": "Bad Name", "extra": "1"}, follow=True)
    assert "Use 1 to 20 lowercase letters and digits" in response.content.decode()
    assert Workspace.objects.count() == 1


def test_the_card_poll_that_finds_the_job_over_tells_the_page_so_recent_jobs_reload(
    alice_client: Client, alice_ws: Workspace
) -> None:
    op = Operation.objects.create(
        kind="start", owner=alice_ws.owner, actor=alice_ws.owner, target_type="workspace", target_id=str(alice_ws.pk)
    )
    url = reverse("workspaces:card", args=[alice_ws.pk])
    assert "HX-Trigger" not in alice_client.get(url, HTTP_HX_REQUEST="true")  # still running: no event
    Operation.objects.filter(pk=op.pk).update(state=Operation.State.SUCCEEDED)
    assert alice_client.get(url, HTTP_HX_REQUEST="true")["HX-Trigger"] == "operation-finished"
    recent = alice_client.get(reverse("recent-jobs")).content.decode()
    assert f'id="op-{op.pk}"' in recent
