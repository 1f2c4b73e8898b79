"""Beat's "storage-scrub" row: the monthly scrub on the first Sunday of the month at 01:00 in
the server's time zone. day_of_month 1-7 and day_of_week 0 together: Celery's crontab requires
both to match (Vixie cron would fire on either), so this is exactly the first Sunday; the task
checks the date again (storage.scrub.scrub_monthly). Admins change it on the storage page."""

from django.conf import settings
from django.db import migrations

NAME = "storage-scrub"
TASK = "storage.scrub_tasks.scrub_monthly_task"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="1", day_of_month="1-7", month_of_year="*", day_of_week="0", timezone=settings.TIME_ZONE
    )
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "crontab": crontab,
            "enabled": True,
            "description": "The monthly scrub of the storage filesystem (storage/scrub.py). "
            "Admins change it on the storage page.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("storage", "0002_filesystem_state"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
