"""The backups' pages, under /backups/: the overview, policies and their preview, the prune
simulator (backups/views.py), the history of runs (backups/history_views.py), and restoring
from snapshots (backups/restore_views.py)."""

from __future__ import annotations

from django.urls import path

from backups import history_views, restore_views, views

app_name = "backups"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("policies/<slug:tier>/", views.policy_edit, name="policy-edit"),
    path("policies/<slug:tier>/preview/", views.preview, name="preview"),
    path("simulator/", views.simulator, name="simulator"),
    path("snapshot-now/", views.snapshot_now, name="snapshot-now"),
    path("drill-now/", views.drill_now, name="drill-now"),
    path("drill-schedule/", views.drill_schedule_edit, name="drill-schedule"),
    path("history/", history_views.history, name="history"),
    path("history/<int:pk>/", history_views.history_run, name="history-run"),
    # Members: their own snapshots, browsing one, restoring and downloading from it.
    path("my-snapshots/", restore_views.my_snapshots, name="my-snapshots"),
    path("my-snapshots/<int:pk>/", restore_views.my_snapshot, name="my-snapshot"),
    path("my-snapshots/<int:pk>/restore/", restore_views.my_restore, name="my-restore"),
    path("my-snapshots/<int:pk>/download/", restore_views.my_download, name="my-download"),
    # Admins: any path of any snapshot to a new place (or over live data, confirmed).
    path("restore/", restore_views.admin_restore, name="admin-restore"),
]
