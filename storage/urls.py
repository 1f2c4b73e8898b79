from __future__ import annotations

from django.urls import path

from storage import disk_views, views

app_name = "storage"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("members/<int:pk>/delete/", views.member_storage_delete, name="member-delete"),
    # scrub: storage/scrub_views.py
    # ingestion: storage/ingestion_views.py
    # disk planning: storage/disk_views.py
    path("disks/", disk_views.disks_plan, name="disks"),
    path("disks/apply/", disk_views.disks_apply, name="disks-apply"),
    path("disks/scan/", disk_views.disks_scan, name="disks-scan"),
]
