"""The offsite tier's policy with the seed's defaults (daily at BACKUP_START_HOUR, 06:00; keep 7
daily and 52 weekly; 100 Mbit/s), its beat row, and the monthly restore drill's beat row (the
1st of the month at 12:00, after the night's backup). Admins edit both on the Backups pages.
The crontabs are in the server's time zone: "06:00" is the server's 06:00 all year."""

from __future__ import annotations

from django.conf import settings
from django.db import migrations

OFFSITE_TASK = "backups.offsite_tasks.offsite_run_task"
DRILL_TASK = "backups.drill_tasks.drill_run_task"
EXCLUDES = [".cache", "__pycache__", "node_modules", ".local/share/Trash"]


def create_rows(apps, schema_editor):  # type: ignore[no-untyped-def]
    policy_model = apps.get_model("backups", "BackupPolicy")
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    zone = settings.TIME_ZONE
    nightly, _ = crontab_model.objects.get_or_create(
        minute="0",
        hour=str(settings.BACKUP_START_HOUR),
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone=zone,
    )
    task, _ = task_model.objects.get_or_create(
        name="backups-offsite", defaults={"task": OFFSITE_TASK, "crontab": nightly, "enabled": True}
    )
    policy_model.objects.get_or_create(
        tier="restic",
        defaults={
            "keep_daily": 7,
            "keep_weekly": 52,
            "max_age_hours": 26,
            "upload_limit_mbps": 100,
            "excludes": EXCLUDES,
            "periodic_task": task,
        },
    )
    monthly, _ = crontab_model.objects.get_or_create(
        minute="0", hour="12", day_of_week="*", day_of_month="1", month_of_year="*", timezone=zone
    )
    task_model.objects.get_or_create(
        name="backups-drill", defaults={"task": DRILL_TASK, "crontab": monthly, "enabled": True}
    )


def remove_rows(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=["backups-offsite", "backups-drill"]
    ).delete()
    apps.get_model("backups", "BackupPolicy").objects.filter(tier="restic").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0003_restic_tier"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_rows, remove_rows)]
