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


def test_the_limits_card_says_how_many_cores_and_gpus_in_words(alice_client: Client, alice) -> None:
    alice.quota.cpuset, alice.quota.max_gpus = "0-3,8", 2
    alice.quota.save()
    body = alice_client.get("/").content.decode()
    assert "5 cores (0-3,8)" in body
    assert "up to 2 per booking" in body


def test_a_member_without_gpus_is_told_so_not_up_to_zero(alice_client: Client, alice) -> None:
    alice.quota.cpuset, alice.quota.max_gpus = "3", 0
    alice.quota.save()
    body = alice_client.get("/").content.decode()
    assert "1 core (CPU 3)" in body
    assert "up to 0" not in body
    assert "Your quota has no GPUs" in body
