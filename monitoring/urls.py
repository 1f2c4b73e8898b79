from __future__ import annotations

from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("workspaces/<int:pk>/figures/", views.workspace_figures, name="workspace-figures"),
    path("checks/run/", views.doctor_run_now, name="doctor-run"),
    path("cost/", views.cost, name="cost"),
]
