from __future__ import annotations

from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "storage"

    def ready(self) -> None:
        from storage import signals  # noqa: F401  (new members' folders, quota changes)
        from storage import checks  # noqa: F401  (registers the system checks)
