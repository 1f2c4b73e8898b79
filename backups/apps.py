from __future__ import annotations

from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"

    def ready(self) -> None:
        # The restic version check (manage.py's system checks, and the worker's start).
        from backups import checks  # noqa: F401
