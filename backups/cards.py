"""What backups add to the shared pages: the dashboard's Schedules card for admins, the next
start of each job beat runs (the backup tiers, the restore drill, the monthly scrub, ingestion
jobs), read from the django-celery-beat rows only, so it is right wherever the web process runs."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from backups import drill_schedule, policies
from portal.access import AuthedRequest
from portal.panels import Panel
from storage import ingestion, scrub


def schedule_runs(*, now: datetime | None = None) -> list[tuple[str, datetime | None]]:
    """(label, next start) of every admin-edited schedule; None where switched off. Four
    queries, however many ingestion jobs."""
    now = now or timezone.now()
    runs = policies.next_runs(now=now)
    runs.append(("Restore drill", policies.next_run(drill_schedule.drill_beat_row(), now)))
    runs.append(("Monthly scrub", policies.next_run(scrub.scrub_schedule(), now)))
    jobs = PeriodicTask.objects.select_related("crontab").filter(name__startswith=ingestion.PERIODIC_PREFIX)
    for task in jobs.order_by("name"):
        runs.append((f"Ingestion: {task.name.removeprefix(ingestion.PERIODIC_PREFIX)}", policies.next_run(task, now)))
    return runs


def schedule_card(request: AuthedRequest) -> Panel | None:
    if not request.user.is_staff:
        return None
    context = {"schedule_runs": schedule_runs(), "time_zone": settings.TIME_ZONE}
    return Panel("backups/_schedule_card.html", context, column="side")
