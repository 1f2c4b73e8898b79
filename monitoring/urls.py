from __future__ import annotations

from django.urls import path

from monitoring import alert_views, views

app_name = "monitoring"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("workspaces/<int:pk>/figures/", views.workspace_figures, name="workspace-figures"),
    path("checks/run/", views.doctor_run_now, name="doctor-run"),
    path("cost/", views.cost, name="cost"),
    path("alerts/", alert_views.alerts, name="alerts"),
    path("alerts/rules/", alert_views.rules, name="alert-rules"),
    path("alerts/rules/<int:pk>/", alert_views.rule_edit, name="alert-rule-edit"),
    path("alerts/rules/<int:pk>/silence/", alert_views.rule_silence, name="alert-rule-silence"),
    path("alerts/<int:pk>/silence/", alert_views.silence_new, name="alert-silence"),
    path("alerts/silences/", alert_views.silences, name="alert-silences"),
    path("alerts/silences/<int:pk>/end/", alert_views.silence_stop, name="alert-silence-end"),
    path("alerts/history/", alert_views.history, name="alert-history"),
]
