"""The GPU booking pages, the admin GPUs page, the JSON API, calendar feeds and the Slack command
(under /gpus/)."""

from __future__ import annotations

from django.urls import path

from gpus import admin_views, api, feeds, slack_command, token_views, usage_views, views

app_name = "gpus"

urlpatterns = [
    path("admin/", admin_views.gpu_admin, name="admin-gpus"),
    path("admin/hosts/<int:pk>/enforcement/", admin_views.gpu_host_enforcement, name="admin-enforcement"),
    path("admin/hosts/<int:pk>/refresh/", admin_views.gpu_host_refresh, name="admin-refresh"),
    path("usage/", usage_views.usage, name="usage"),
    path("", views.calendar, name="calendar"),
    path("calendar/book/", views.calendar_book, name="calendar-book"),
    path("calendar/events/", views.calendar_events, name="calendar-events"),
    path("calendar/bookings/", views.calendar_create, name="calendar-create"),
    path("calendar/bookings/<int:pk>/change/", views.calendar_change, name="calendar-change"),
    path("calendar/bookings/<int:pk>/release/", views.calendar_release, name="calendar-release"),
    path("calendar/bookings/<int:pk>/cancel/", views.calendar_cancel, name="calendar-cancel"),
    path("calendar/bookings/<int:pk>/extend/", views.calendar_extend, name="calendar-extend"),
    path("policy/", views.policy, name="policy"),
    # --- the member's tokens (gpus/token_views.py) ---
    path("tokens/", token_views.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", token_views.token_revoke_view, name="token-revoke"),
    # --- the JSON API (gpus/api.py) ---
    path("api/v1/gpus", api.gpus, name="api-gpus"),
    path("api/v1/bookings", api.bookings, name="api-bookings"),
    path("api/v1/bookings/<int:pk>", api.booking, name="api-booking"),
    path("api/v1/bookings/<int:pk>/extend", api.booking_extend_view, name="api-booking-extend"),
    path("api/v1/bookings/<int:pk>/release", api.booking_release_view, name="api-booking-release"),
    # --- calendar feeds (gpus/feeds.py) and the /gpu command (gpus/slack_command.py) ---
    path("feeds/<str:secret>.ics", feeds.feed, name="feed"),
    path("slack/command", slack_command.slack_command, name="slack-command"),
]
