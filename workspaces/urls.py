from __future__ import annotations

from django.urls import path

from workspaces import views

app_name = "workspaces"

urlpatterns = [
    path("", views.workspace_admin_list, name="admin-list"),
    path("new/", views.workspace_create, name="create"),
    path("files/", views.workspace_files, name="files"),
    path("members/<int:pk>/server/", views.member_host, name="member-host"),
    path("<int:pk>/", views.workspace_card, name="card"),
    path("<int:pk>/connect/", views.workspace_connect, name="connect"),
    path("<int:pk>/x2go/", views.workspace_x2go, name="x2go"),
    path("<int:pk>/desktop/", views.workspace_desktop, name="desktop"),
    path("<int:pk>/keep-running/", views.workspace_keep_running, name="keep-running"),
    path("<int:pk>/remove/", views.workspace_remove, name="remove"),
    path("<int:pk>/<slug:action>/", views.workspace_act, name="act"),
]
