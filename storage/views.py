"""The storage page (admins): the filesystem, its devices, each member's usage, the scrubs."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from portal.access import AuthedRequest, staff_required


@staff_required
@require_GET
def overview(request: AuthedRequest) -> HttpResponse:
    return render(request, "storage/overview.html", {})


@staff_required
@require_POST
def member_storage_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    raise NotImplementedError
