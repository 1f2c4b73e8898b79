"""The local snapshot tier's policy with the seed's defaults (24 hourly, 7 daily, 4 weekly),
and its hourly beat row, which admins edit on the policy page."""

from __future__ import annotations

from django.db import migrations

SNAPSHOT_TASK = "backups.tasks.snapshot_run_task"


def create_policy(apps, schema_editor):  # type: ignore[no-untyped-def]
    policy_model = apps.get_model("backups", "BackupPolicy")
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = crontab_model.objects.get_or_create(
        minute="0", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    task, _ = task_model.objects.get_or_create(
        name="backups-snapshots", defaults={"task": SNAPSHOT_TASK, "crontab": crontab, "enabled": True}
    )
    policy_model.objects.get_or_create(
        tier="snapshot",
        defaults={"keep_hourly": 24, "keep_daily": 7, "keep_weekly": 4, "max_age_hours": 2, "periodic_task": task},
    )


def remove_policy(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name="backups-snapshots").delete()
    apps.get_model("backups", "BackupPolicy").objects.filter(tier="snapshot").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_policy, remove_policy)]
