"""The alerts' beat task run by a real Celery worker over the real Redis broker: the task is
registered under the name beat sends (CELERY_IMPORTS), and two deliveries tell once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from backups.models import BackupPolicy, BackupRun
from portal.models import Notification, User
from tests.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("transactional_db")]

TASK = "backups.alerts_tasks.backup_alerts_task"


def test_beats_task_by_name_opens_the_incident_once(celery_worker_process: WorkerProcess, admin_user: User) -> None:
    policy = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    BackupPolicy.objects.filter(pk=policy.pk).update(enabled=True, updated=timezone.now() - timedelta(days=1))
    started = timezone.now() - timedelta(minutes=4)
    BackupRun.objects.create(
        kind=BackupRun.Kind.SNAPSHOT,
        result=BackupRun.Result.FAILED,
        started_at=started,
        finished_at=started + timedelta(seconds=9),
        message="btrfs subvolume snapshot: Read-only file system",
    )

    current_app.send_task(TASK)
    current_app.send_task(TASK)  # delivered twice

    note = wait_for(lambda: Notification.objects.filter(user=admin_user).first(), what="the admin's notification")
    assert note.title == "Local snapshots (BTRFS): the last run failed"
    assert "Read-only file system" in note.body
    wait_for(
        lambda: len(re.findall(rf"{re.escape(TASK)}\[[^]]+\] succeeded", celery_worker_process.log())) >= 2,
        what="both deliveries run",
    )
    assert Notification.objects.filter(user=admin_user).count() == 1
    assert BackupPolicy.objects.get(pk=policy.pk).incident == "failed"
