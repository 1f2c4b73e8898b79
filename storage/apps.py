from __future__ import annotations

from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "storage"

    def ready(self) -> None:
        # The system check of RCLONE_REMOTES; new members' folders and quota changes.
        from storage import checks, signals  # noqa: F401
