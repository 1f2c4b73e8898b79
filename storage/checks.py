"""Django system checks of the storage app: a bad RCLONE_REMOTES shows at startup (manage.py
check, runserver, the worker), not first in a failed night's ingestion."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from storage.remotes import remote_problems


@register()
def rclone_remotes_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(problem, hint="Fix the RCLONE_REMOTES environment variable.", id="storage.E001")
        for problem in remote_problems()
    ]
