"""The core app's pages: login, the member's account, and the admin pages for members,
the audit log, policies and the GPU servers."""

from __future__ import annotations

from django.urls import include, path

from portal.views import account, audit, auth, hosts, members, ops, policies

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("operations/<int:pk>/", ops.operation_status, name="operation-status"),
    path("operations/recent/", ops.recent_jobs, name="recent-jobs"),
    # --- login (portal/views/auth.py) ---
    path("login/", auth.login_page, name="login"),
    path("login/admin/", auth.breakglass_login, name="breakglass-login"),
    path("logout/", auth.logout_view, name="logout"),
    path("accounts/", include("allauth.urls")),
    # --- the member's own account and SSH keys (portal/views/account.py) ---
    path("account/", account.account_page, name="account"),
    path("account/keys/<int:pk>/delete/", account.sshkey_delete, name="sshkey-delete"),
    path("notifications/", account.notification_list, name="notifications"),
    path("notifications/read/", account.notifications_mark_read, name="notifications-read"),
    # --- admin pages (portal/views/members.py, portal/views/audit.py, portal/views/policies.py) ---
    path("members/", members.member_list, name="member-list"),
    path("members/invite/", members.member_invite, name="member-invite"),
    path("members/<int:pk>/", members.member_detail, name="member-detail"),
    path("members/<int:pk>/quota/", members.member_quota, name="member-quota"),
    path("members/<int:pk>/capabilities/", members.member_capabilities, name="member-capabilities"),
    path("members/<int:pk>/suspend/", members.member_suspend, name="member-suspend"),
    path("members/<int:pk>/reactivate/", members.member_reactivate, name="member-reactivate"),
    path("members/requests/<int:pk>/dismiss/", members.access_request_dismiss, name="access-request-dismiss"),
    path("audit/", audit.audit_list, name="audit-list"),
    path("policies/", policies.site_policies, name="site-policies"),
    # --- the GPU servers (portal/views/hosts.py) ---
    path("servers/", hosts.host_list, name="host-list"),
    path("servers/add/", hosts.host_add, name="host-add"),
    path("servers/<int:pk>/", hosts.host_detail, name="host-detail"),
    path("servers/<int:pk>/delete/", hosts.host_delete, name="host-delete"),
]
