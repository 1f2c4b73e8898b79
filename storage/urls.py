from __future__ import annotations

from django.urls import path

from storage import views

app_name = "storage"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("members/<int:pk>/delete/", views.member_storage_delete, name="member-delete"),
    # scrub: storage/scrub_views.py
    # ingestion: storage/ingestion_views.py
    # disk planning: storage/disk_views.py
]
