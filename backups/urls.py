"""The backups' pages, under /backups/: the overview, policies and their preview, the prune
simulator (backups/views.py) and the history of runs (backups/history_views.py)."""

from __future__ import annotations

from django.urls import path

from backups import history_views, views

app_name = "backups"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("policies/<slug:tier>/", views.policy_edit, name="policy-edit"),
    path("policies/<slug:tier>/preview/", views.preview, name="preview"),
    path("simulator/", views.simulator, name="simulator"),
    path("history/", history_views.history, name="history"),
    path("history/<int:pk>/", history_views.history_run, name="history-run"),
]
