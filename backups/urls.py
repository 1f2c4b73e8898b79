"""The backups' pages, under /backups/: the overview, policies and their preview, the prune
simulator (backups/views.py), the history of runs (backups/history_views.py), the offsite
repository (backups/offsite_views.py), and restoring from snapshots (backups/restore_views.py)."""

from __future__ import annotations

from django.urls import path

from backups import history_views, offsite_views, restore_views, views

app_name = "backups"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("policies/<slug:tier>/", views.policy_edit, name="policy-edit"),
    path("policies/<slug:tier>/preview/", views.preview, name="preview"),
    path("simulator/", views.simulator, name="simulator"),
    path("snapshot-now/", views.snapshot_now, name="snapshot-now"),
    path("offsite-now/", views.offsite_now, name="offsite-now"),
    path("drill-now/", views.drill_now, name="drill-now"),
    path("drill-schedule/", views.drill_schedule_edit, name="drill-schedule"),
    path("history/", history_views.history, name="history"),
    path("history/<int:pk>/", history_views.history_run, name="history-run"),
    # The offsite repository (backups/offsite_views.py): its state, create, stale locks, the Drive token.
    path("offsite/", offsite_views.offsite, name="offsite"),
    path("offsite/check/", offsite_views.offsite_check, name="offsite-check"),
    path("offsite/create/", offsite_views.offsite_create, name="offsite-create"),
    path("offsite/unlock/", offsite_views.offsite_unlock, name="offsite-unlock"),
    path("offsite/token/", offsite_views.offsite_token, name="offsite-token"),
    path("offsite/token/remove/", offsite_views.offsite_token_remove, name="offsite-token-remove"),
    # Members: their own snapshots, browsing one, restoring and downloading from it.
    path("my-snapshots/", restore_views.my_snapshots, name="my-snapshots"),
    path("my-snapshots/<int:pk>/", restore_views.my_snapshot, name="my-snapshot"),
    path("my-snapshots/<int:pk>/restore/", restore_views.my_restore, name="my-restore"),
    path("my-snapshots/<int:pk>/download/", restore_views.my_download, name="my-download"),
    # The same for their snapshots in the offsite (restic) repository.
    path("my-snapshots/offsite/<int:pk>/", restore_views.my_offsite, name="my-offsite"),
    path("my-snapshots/offsite/<int:pk>/restore/", restore_views.my_offsite_restore, name="my-offsite-restore"),
    path("my-snapshots/offsite/<int:pk>/download/", restore_views.my_offsite_download, name="my-offsite-download"),
    # Admins: any path of any snapshot to a new place (or over live data, confirmed).
    path("restore/", restore_views.admin_restore, name="admin-restore"),
]
