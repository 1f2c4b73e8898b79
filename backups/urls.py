"""The Backups pages (admins); backups/views.py."""

from __future__ import annotations

from django.urls import path

from backups import views

app_name = "backups"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("policies/<slug:tier>/", views.policy_edit, name="policy-edit"),
    path("policies/<slug:tier>/preview/", views.preview, name="preview"),
    path("simulator/", views.simulator, name="simulator"),
]
