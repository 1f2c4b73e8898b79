"""The storage page (admins): the filesystem, its devices, each member's usage, the scrubs."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from portal.access import AuthedRequest, staff_required
from storage.scrub import scrub_section_context


def overview_page(request: AuthedRequest, *, scrub_form: Any = None, status: int = 200) -> HttpResponse:
    """The page, also with a form that failed (shown again with its messages, status 400)."""
    return render(request, "storage/overview.html", scrub_section_context(form=scrub_form), status=status)


@staff_required
@require_GET
def overview(request: AuthedRequest) -> HttpResponse:
    return overview_page(request)


@staff_required
@require_POST
def member_storage_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    raise NotImplementedError
