from __future__ import annotations

from django.apps import AppConfig


class GpusConfig(AppConfig):
    name = "gpus"
