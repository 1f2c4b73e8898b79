"""What monitoring adds to the dashboard: admins' Health checks card, the doctor's last report
(monitoring/doctor.py), read from the cache in one round trip; the checks run on the worker."""

from __future__ import annotations

from django.utils import timezone

from monitoring import doctor
from monitoring.doctor_checks import Status
from portal.access import AuthedRequest
from portal.panels import Panel

POLL_SECONDS = 300


def doctor_card(request: AuthedRequest) -> Panel | None:
    if not request.user.is_staff:
        return None
    report, requested = doctor.report_last()
    now = timezone.now()
    waiting = requested is not None and (report is None or requested > report.at)
    context = {
        "doctor_report": report,
        "doctor_problems": report.with_status(Status.FAIL, Status.WARN) if report else [],
        "doctor_counts": report.counts() if report else {},
        "doctor_stale": report is not None and (now - report.at).total_seconds() > doctor.STALE_SECONDS,
        # Asked after the last report was made: the worker has not answered yet. The card reloads
        # itself meanwhile, for a few minutes; past them the worker is likely down, and it says so.
        "doctor_waiting": waiting,
        "doctor_polling": waiting and requested is not None and (now - requested).total_seconds() < POLL_SECONDS,
    }
    return Panel("monitoring/_doctor_card.html", context)
