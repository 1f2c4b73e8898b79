from __future__ import annotations

from django.urls import path

from gpus import views

app_name = "gpus"

urlpatterns = [
    path("", views.calendar, name="calendar"),
    path("calendar/book/", views.calendar_book, name="calendar-book"),
    path("calendar/events/", views.calendar_events, name="calendar-events"),
    path("calendar/bookings/", views.calendar_create, name="calendar-create"),
    path("calendar/bookings/<int:pk>/change/", views.calendar_change, name="calendar-change"),
    path("calendar/bookings/<int:pk>/release/", views.calendar_release, name="calendar-release"),
    path("calendar/bookings/<int:pk>/cancel/", views.calendar_cancel, name="calendar-cancel"),
    path("calendar/bookings/<int:pk>/extend/", views.calendar_extend, name="calendar-extend"),
    path("policy/", views.policy, name="policy"),
]
