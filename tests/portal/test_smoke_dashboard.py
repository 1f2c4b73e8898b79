from __future__ import annotations

from django.test import Client


def test_dashboard_shows_the_members_linux_identity(alice_client: Client, alice) -> None:
    response = alice_client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "alice" in body
    assert f"{alice.uid} / {alice.gid}" in body


def test_dashboard_redirects_anonymous_visitors_to_login(client: Client, db: None) -> None:
    response = client.get("/")
    assert response.status_code == 302


def test_a_workspace_job_under_way_is_shown_once_on_its_card_not_in_recent_jobs(alice_client: Client, alice) -> None:
    from portal.models import Host, Operation
    from workspaces.models import Workspace

    ws = Workspace.objects.create(owner=alice, host=Host.local(), ssh_port=2260, slug="alice")
    done = Operation.objects.create(
        kind="stop", owner=alice, actor=alice, target_type="workspace", target_id=str(ws.pk), state="succeeded"
    )
    running = Operation.objects.create(
        kind="start", owner=alice, actor=alice, target_type="workspace", target_id=str(ws.pk), state="running"
    )
    body = alice_client.get("/").content.decode()
    assert body.count(f'id="op-{running.pk}"') == 1
    assert body.count(f'id="op-{done.pk}"') == 1
