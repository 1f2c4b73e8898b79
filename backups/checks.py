"""System checks of the backups app: the offsite tier needs restic 0.16 or newer (forget's
"oldest snapshot" rule, and the JSON hostops.restic reads; the portal is tested with 0.18).
Django runs the check with manage.py (check, migrate, runserver); the worker, which runs
restic, says the same in its log when it starts."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready
from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from hostops import restic
from hostops.errors import HostOpsError

logger = logging.getLogger(__name__)

MINIMUM = (0, 16)
_HINT = (
    "Build the image again (the Dockerfile installs Debian 13's restic 0.18), or set RESTIC_BINARY to a newer restic."
)


def restic_problem() -> str | None:
    """What is wrong with the restic this process would run; None when it is new enough. A
    missing restic is only a problem once the offsite tier is set up."""
    try:
        found = restic.version(timeout=30)
    except HostOpsError as exc:
        if not settings.BACKUP_RESTIC_REPOSITORY.strip():
            return None
        return f"restic cannot be run ({exc}), so the offsite backup cannot run."
    if restic.version_tuple(found)[:2] < MINIMUM:
        return (
            f"restic {found} ({restic.binary()}) is older than {'.'.join(map(str, MINIMUM))}: its forget lacks the "
            "oldest-snapshot rule and its JSON differs, so the offsite tier would keep other snapshots than its "
            "policy shows."
        )
    return None


@register()
def restic_version_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problem = restic_problem()
    return [Warning(problem, hint=_HINT, id="backups.W001")] if problem else []


@worker_ready.connect
def _warn_at_worker_start(**kwargs: Any) -> None:
    problem = restic_problem()
    if problem:
        logger.warning("%s %s", problem, _HINT)
