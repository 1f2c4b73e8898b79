"""The audit log is append-only: the Django admin shows it and changes nothing, not even for
superusers. Every test goes through the admin's own URLs."""

from __future__ import annotations

import datetime as dt

import pytest
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEvent, User
from tests.factories import UserFactory

FORGED = {
    "created_0": "2024-01-01",
    "created_1": "09:00:00",
    "actor_label": "alice",
    "action": "member.suspend",
    "outcome": "ok",
    "target_type": "user",
    "target_id": "1",
    "target_label": "bob",
    "ip": "203.0.113.9",
    "detail": "{}",
    "_save": "Save",
}


@pytest.fixture
def superuser_client(db: None) -> Client:
    root = UserFactory(username="root_admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def event(db: None) -> AuditEvent:
    return AuditEvent.objects.create(
        action="member.invite",
        actor_label="ada",
        target_label="jane",
        ip="10.0.0.7",
        created=timezone.now() - dt.timedelta(hours=1),
    )


def _change_url(event: AuditEvent) -> str:
    return reverse("admin:portal_auditevent_change", args=[event.pk])


def _delete_url(event: AuditEvent) -> str:
    return reverse("admin:portal_auditevent_delete", args=[event.pk])


def test_nobody_can_open_the_add_form_of_the_audit_log(superuser_client: Client) -> None:
    assert superuser_client.get(reverse("admin:portal_auditevent_add")).status_code == 403


def test_a_forged_entry_posted_to_the_add_form_is_refused_and_not_created(
    superuser_client: Client, event: AuditEvent
) -> None:
    response = superuser_client.post(reverse("admin:portal_auditevent_add"), FORGED)
    assert response.status_code == 403
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["member.invite"]


def test_an_entry_opens_read_only_without_a_save_button(superuser_client: Client, event: AuditEvent) -> None:
    response = superuser_client.get(_change_url(event))
    assert response.status_code == 200
    body = response.content.decode()
    assert "member.invite" in body
    assert 'name="_save"' not in body
    assert 'name="action"' not in body
    assert reverse("admin:portal_auditevent_delete", args=[event.pk]) not in body


def test_an_edit_posted_to_an_entry_is_refused_and_the_entry_unchanged(
    superuser_client: Client, event: AuditEvent
) -> None:
    before = model_to_dict(event)
    response = superuser_client.post(_change_url(event), FORGED)
    assert response.status_code == 403
    event.refresh_from_db()
    assert model_to_dict(event) == before


@pytest.mark.parametrize("method", ["get", "post"])
def test_nobody_can_delete_an_entry(superuser_client: Client, event: AuditEvent, method: str) -> None:
    response = getattr(superuser_client, method)(_delete_url(event), {"post": "yes"})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_list_has_no_bulk_delete_action_and_ignores_a_posted_one(
    superuser_client: Client, event: AuditEvent
) -> None:
    url = reverse("admin:portal_auditevent_changelist")
    page = superuser_client.get(url)
    assert page.status_code == 200
    assert "delete_selected" not in page.content.decode()
    superuser_client.post(url, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_list_still_shows_the_entries(superuser_client: Client, event: AuditEvent) -> None:
    response = superuser_client.get(reverse("admin:portal_auditevent_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "member.invite" in body
    assert "10.0.0.7" in body
    assert reverse("admin:portal_auditevent_add") not in body


def test_a_staff_admin_with_every_audit_permission_still_cannot_add_change_or_delete(
    event: AuditEvent, admin_user: User
) -> None:
    from django.contrib.auth.models import Permission

    admin_user.user_permissions.set(Permission.objects.filter(content_type__model="auditevent"))
    client = Client()
    client.force_login(admin_user)
    before = model_to_dict(event)
    assert client.post(reverse("admin:portal_auditevent_add"), FORGED).status_code == 403
    assert client.post(_change_url(event), FORGED).status_code == 403
    assert client.post(_delete_url(event), {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert model_to_dict(event) == before
    assert AuditEvent.objects.count() == 1
