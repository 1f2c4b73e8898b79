"""The Django admin stays available to superusers; the portal's own pages are the daily UI."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest

from portal.models import AccessRequest, AuditEvent, Host, Notification, Operation, Quota, SSHKey, User
from portal.views.auth import admin_login

# The admin has no password form of its own: its login is the rate-limited, audited break-glass page.
admin.site.login = admin_login  # type: ignore[method-assign]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "status", "uid", "is_staff", "can_sudo", "can_docker")
    list_filter = ("status", "is_staff", "can_sudo", "can_docker")
    readonly_fields = ("uid", "session_version")
    fieldsets = (
        *BaseUserAdmin.fieldsets,  # type: ignore[misc]
        ("Linux identity", {"fields": ("status", "uid", "can_sudo", "can_docker", "session_version")}),
    )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created", "actor_label", "action", "outcome", "target_label", "ip")
    list_filter = ("outcome", "action")
    search_fields = ("actor_label", "target_label", "action")

    # The audit log is append-only: rows come from portal.audit only. Viewing stays (the
    # permission checks below override even a superuser's); the bulk delete action goes with
    # the delete permission.

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ("created", "kind", "target_label", "state", "percent", "actor")
    list_filter = ("state", "kind")


admin.site.register(Quota)
admin.site.register(SSHKey)
admin.site.register(Host)
admin.site.register(Notification)
admin.site.register(AccessRequest)
