from __future__ import annotations

from django.urls import path

from storage import disk_views, ingestion_views, scrub_views, views

app_name = "storage"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("members/<int:pk>/delete/", views.member_storage_delete, name="member-delete"),
    # scrub: storage/scrub_views.py
    path("scrub/start/", scrub_views.scrub_start, name="scrub-start"),
    path("scrub/cancel/", scrub_views.scrub_cancel, name="scrub-cancel"),
    path("scrub/schedule/", scrub_views.scrub_schedule, name="scrub-schedule"),
    # ingestion: storage/ingestion_views.py
    path("ingestion/", ingestion_views.ingestion_list, name="ingestion"),
    path("ingestion/new/", ingestion_views.ingestion_new, name="ingestion-new"),
    path("ingestion/<int:pk>/", ingestion_views.ingestion_edit, name="ingestion-edit"),
    path("ingestion/<int:pk>/delete/", ingestion_views.ingestion_delete, name="ingestion-delete"),
    path("ingestion/<int:pk>/run/", ingestion_views.ingestion_run, name="ingestion-run"),
    path("ingestion/runs/<int:pk>/", ingestion_views.ingestion_run_detail, name="ingestion-run-detail"),
    # disk planning: storage/disk_views.py
    path("disks/", disk_views.disks_plan, name="disks"),
    path("disks/apply/", disk_views.disks_apply, name="disks-apply"),
    path("disks/scan/", disk_views.disks_scan, name="disks-scan"),
]
