"""The snapshot tier's policy and beat row as migration 0002 makes them: a test database reused
after a transactional test (--reuse-db, a flush) has lost the migration's rows."""

from __future__ import annotations

import importlib

from django.apps import apps as django_apps

from backups.models import BackupPolicy


def snapshot_policy() -> BackupPolicy:
    migration = importlib.import_module("backups.migrations.0002_snapshot_policy")
    migration.create_policy(django_apps, None)
    return BackupPolicy.objects.select_related("periodic_task__crontab").get(tier="snapshot")


def offsite_policy() -> BackupPolicy:
    """The offsite tier's policy and the offsite and drill beat rows, as migration 0004 makes them."""
    migration = importlib.import_module("backups.migrations.0004_offsite_schedules")
    migration.create_rows(django_apps, None)
    return BackupPolicy.objects.select_related("periodic_task__crontab").get(tier="restic")
