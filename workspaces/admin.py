"""Django admin views of workspaces (superusers' escape hatch; the portal's pages are the UI)."""

from __future__ import annotations

from django.contrib import admin

from workspaces.models import OrphanContainer, Workspace


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "host", "state", "desired_state", "ssh_port", "last_activity_at")
    list_filter = ("state", "desired_state", "host")
    search_fields = ("owner__username", "name", "slug", "container_id")
    # State is moved by tasks and the reconciler only; editing it here would lie.
    readonly_fields = (
        "slug",
        "state",
        "state_reason",
        "container_id",
        "started_at",
        "observed_at",
        "cpu_percent",
        "mem_usage",
        "stats_at",
    )


@admin.register(OrphanContainer)
class OrphanContainerAdmin(admin.ModelAdmin):
    list_display = ("name", "host", "status", "first_seen", "last_seen")
    list_filter = ("host",)
