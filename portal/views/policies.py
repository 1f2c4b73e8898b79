"""The Policies page: team-wide settings, for admins only: the core's idle policy, then the
sections apps contribute (settings.PORTAL_POLICY_SECTIONS, each with a form posting to its app)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal import services
from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from portal.forms.policies import IdlePolicyForm
from portal.models import SitePolicy
from portal.panels import policy_sections


@require_http_methods(["GET", "POST"])
@staff_required
def site_policies(request: AuthedRequest) -> HttpResponse:
    policy = SitePolicy.current()
    form = IdlePolicyForm(request.POST if request.method == "POST" else None, policy=policy)
    if form.is_valid():
        services.site_policy_update(actor=request.user, values=form.cleaned_data, context=AuditContext.of(request))
        messages.success(request, "Saved the idle policy. The next idle check applies it to running workspaces.")
        return redirect("site-policies")
    context = {
        "policy": policy,
        "form": form,
        "check_minutes": settings.WORKSPACE_IDLE_CHECK_SECONDS // 60,
        "busy_cpu_percent": settings.WORKSPACE_BUSY_CPU_PERCENT,
        "policy_sections": policy_sections(request),
    }
    return render(request, "portal/site_policies.html", context, status=400 if form.errors else 200)
