"""The GPU pages under /gpus/."""

from __future__ import annotations

from django.urls import path

from gpus import usage_views

app_name = "gpus"

urlpatterns = [
    path("usage/", usage_views.usage, name="usage"),
]
