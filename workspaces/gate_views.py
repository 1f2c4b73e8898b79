"""Step 2 of the gate (workspaces/gate.py): the logged-in portal hands out a ticket for one host."""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_GET

from portal.access import AuthedRequest, refuse
from workspaces import gate


@require_GET
def gate_start(request: AuthedRequest) -> HttpResponse:
    user = request.user
    target = request.GET.get("rd", "")
    url = gate.ticket_url(user_id=user.pk, is_staff=user.is_staff, version=user.session_version, target=target)
    if url is None:
        raise refuse(request, "gate.denied", rd=target[:300])
    return HttpResponseRedirect(url)
