from __future__ import annotations

from django.urls import path

from storage import scrub_views, views

app_name = "storage"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("members/<int:pk>/delete/", views.member_storage_delete, name="member-delete"),
    # scrub: storage/scrub_views.py
    path("scrub/start/", scrub_views.scrub_start, name="scrub-start"),
    path("scrub/cancel/", scrub_views.scrub_cancel, name="scrub-cancel"),
    path("scrub/schedule/", scrub_views.scrub_schedule, name="scrub-schedule"),
    # ingestion: storage/ingestion_views.py
    # disk planning: storage/disk_views.py
]
