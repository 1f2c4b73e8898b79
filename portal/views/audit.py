"""The audit log page: every admin action and refused request, filterable, for admins only."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.access import AuthedRequest, staff_required
from portal.env import format_size
from portal.forms.members import AuditFilterForm
from portal.models import AuditEvent, Quota

EVENTS_PER_PAGE = 50
# Quota fields kept in bytes: the log shows them as the quota form does ("32G").
_SIZE_FIELDS = frozenset(
    field.name for field in Quota._meta.concrete_fields if field.get_internal_type() == "PositiveBigIntegerField"
)


@require_GET
@staff_required
def audit_list(request: AuthedRequest) -> HttpResponse:
    filters = AuditFilterForm(request.GET or None)
    page = Paginator(filters.apply(AuditEvent.objects.all()), EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(event, describe_detail(event.detail)) for event in page]
    return render(request, "portal/audit_list.html", {"filters": filters, "page": page, "rows": rows})


def describe_detail(detail: Any) -> list[str]:
    """The event's detail as short lines: "mem_limit: 100G → 128G", "reason: left the team"."""
    if not isinstance(detail, dict):
        return [str(detail)] if detail else []
    lines: list[str] = []
    for key, value in detail.items():
        if key == "changes" and isinstance(value, dict):
            lines.extend(_describe_change(field, change) for field, change in value.items())
        else:
            lines.append(f"{key}: {value}")
    return lines


def _describe_change(field: str, change: Any) -> str:
    if not (isinstance(change, list) and len(change) == 2):
        return f"{field}: {change}"
    old, new = (_show(field, value) for value in change)
    return f"{field}: {old} → {new}"


def _show(field: str, value: Any) -> str:
    if field == "cpuset" and value == "":
        return "all CPUs"
    if value is None or value == "":
        return "none"
    if field in _SIZE_FIELDS and isinstance(value, int):
        return format_size(value)
    return str(value)
