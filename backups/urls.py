"""The backups' pages, under /backups/."""

from __future__ import annotations

from django.urls import path

from backups import history_views

app_name = "backups"

urlpatterns = [
    path("history/", history_views.history, name="history"),
    path("history/<int:pk>/", history_views.history_run, name="history-run"),
]
