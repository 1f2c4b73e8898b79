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
