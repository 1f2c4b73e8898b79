"""The site's URLs: the home dashboard here, then each app's own urls module."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from project import views
from workspaces import gate_views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    # Step 2 of the gate in front of members' services (workspaces/gate.py redirects here).
    path("gate/start/", gate_views.gate_start, name="gate-start"),
    path("workspaces/", include("workspaces.urls")),
    path("gpus/", include("gpus.urls")),
    path("storage/", include("storage.urls")),
    path("backups/", include("backups.urls")),
    path("", include("monitoring.root_urls")),  # /metrics, and the pages under /monitoring/
    path("django-admin/", admin.site.urls),
    path("", include("portal.urls")),
]
