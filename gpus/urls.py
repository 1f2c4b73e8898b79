"""The GPU booking pages, the JSON API, calendar feeds and the Slack command (under /gpus/)."""

from __future__ import annotations

from django.urls import URLPattern, path  # noqa: F401

app_name = "gpus"

urlpatterns: list[URLPattern] = []
