"""The member's home page."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.access import AuthedRequest
from portal.models import Operation, Quota
from workspaces.models import Workspace


@require_GET
def dashboard(request: AuthedRequest) -> HttpResponse:
    user = request.user
    quota = Quota.objects.filter(user=user).first()
    # A workspace job still under way is shown (and polled) by its card, not a second time here.
    in_progress = [state for state in Operation.State if state not in Operation.FINAL_STATES]
    recent = Operation.objects.filter(owner=user).exclude(target_type="workspace", state__in=in_progress)
    recent_ops = list(recent.order_by("-created")[:5])
    context = {
        "quota": quota,
        "key_count": user.ssh_keys.count(),
        "recent_ops": recent_ops,
        "workspaces": Workspace.objects.filter(owner=user).for_cards(),  # two queries, any number
    }
    return render(request, "portal/dashboard.html", context)
