"""The GPU booking pages, the admin GPUs page, the JSON API, calendar feeds and the Slack command
(under /gpus/)."""

from __future__ import annotations

from django.urls import path

from gpus import admin_views, usage_views

app_name = "gpus"

urlpatterns = [
    path("admin/", admin_views.gpu_admin, name="admin-gpus"),
    path("admin/hosts/<int:pk>/enforcement/", admin_views.gpu_host_enforcement, name="admin-enforcement"),
    path("admin/hosts/<int:pk>/refresh/", admin_views.gpu_host_refresh, name="admin-refresh"),
    path("usage/", usage_views.usage, name="usage"),
]
