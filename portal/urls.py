from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from portal.views import dashboard, ops

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("healthz", ops.healthz, name="healthz"),
    path("operations/<int:pk>/", ops.operation_status, name="operation-status"),
    # --- login (portal/views/auth.py) ---
    path("accounts/", include("allauth.urls")),
    # --- the member's own account and SSH keys (portal/views/account.py) ---
    # --- admin pages (portal/views/members.py, portal/views/audit.py) ---
    path("django-admin/", admin.site.urls),
]
