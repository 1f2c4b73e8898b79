from __future__ import annotations

from django.apps import AppConfig


class GpusConfig(AppConfig):
    name = "gpus"

    def ready(self) -> None:
        from gpus import signals  # noqa: F401  (connects the worker-start inventory read)
