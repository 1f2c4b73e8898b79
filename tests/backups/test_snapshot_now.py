"""The overview's "Snapshot now": an admin's pass, audited, refused while one runs."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from backups.models import BackupRun
from portal.models import AuditEvent, Operation, User

URL = reverse("backups:snapshot-now")


def test_an_admin_starts_a_pass_and_is_told_where_to_follow_it(
    admin_client: Client, admin_user: User, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = admin_client.post(URL, follow=True)
    assert "Taking snapshots now" in response.content.decode()
    assert len(sent) == 1  # the task goes after the commit
    op = Operation.objects.get(kind="backups.snapshot")
    assert op.actor == admin_user
    assert BackupRun.objects.filter(kind=BackupRun.Kind.SNAPSHOT, result=BackupRun.Result.RUNNING).count() == 1
    assert AuditEvent.objects.filter(action="backups.snapshot_now", actor=admin_user).count() == 1


def test_a_second_pass_while_one_runs_is_refused_in_words(admin_client: Client) -> None:
    admin_client.post(URL)
    response = admin_client.post(URL, follow=True)
    assert "already queued or running" in response.content.decode()
    assert Operation.objects.filter(kind="backups.snapshot").count() == 1


def test_members_may_not_start_one(alice_client: Client) -> None:
    assert alice_client.post(URL).status_code == 403
    assert not Operation.objects.filter(kind="backups.snapshot").exists()
