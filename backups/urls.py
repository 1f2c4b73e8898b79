"""The backups app's URLs (namespace "backups")."""

from __future__ import annotations

from django.urls import path

from backups import restore_views

app_name = "backups"

urlpatterns = [
    # Members: their own snapshots, browsing one, restoring and downloading from it.
    path("my-snapshots/", restore_views.my_snapshots, name="my-snapshots"),
    path("my-snapshots/<int:pk>/", restore_views.my_snapshot, name="my-snapshot"),
    path("my-snapshots/<int:pk>/restore/", restore_views.my_restore, name="my-restore"),
    path("my-snapshots/<int:pk>/download/", restore_views.my_download, name="my-download"),
    # Admins: any path of any snapshot to a new place (or over live data, confirmed).
    path("restore/", restore_views.admin_restore, name="admin-restore"),
]
