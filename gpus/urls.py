"""The GPU booking URLs under /gpus/: the member's tokens, the JSON API, the calendar feeds and
the Slack slash command. The API, the feeds and the command authenticate by their own secret
(a Bearer token, the feed address, Slack's signature), not by the login session."""

from __future__ import annotations

from django.urls import path

from gpus import api, feeds, slack_command, token_views

app_name = "gpus"

urlpatterns = [
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
