"""What storage adds to the shared pages: the dashboard's storage card, the members list's
Storage column and the storage section of a member's page. Each reads what the usage pass
stored (never the host), in a fixed number of queries."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from portal.access import AuthedRequest
from portal.cards import request_quota
from portal.models import Quota, User
from portal.panels import Column, Panel
from storage.forms import MemberStorageDeleteForm
from storage.models import MemberStorage


def usage_figures(row: MemberStorage | None, quota: Quota | None) -> dict[str, Any]:
    """What every storage view shows of one member: use, limits, shares for the bars."""
    used = row.referenced if row is not None else None
    soft = quota.storage_soft if quota else None
    hard = row.hard_limit_applied if row is not None and row.hard_limit_applied else None
    scale = max(value for value in (used or 0, soft or 0, hard or 0, 1))
    return {
        "row": row,
        "quota": quota,
        "used": used,
        "soft": soft,
        "hard": hard or (quota.storage_hard if quota else None),
        "hard_applied": hard is not None,
        "measured": used is not None,
        "over_soft": bool(used is not None and soft and used >= soft),
        "near_hard": bool(used is not None and hard and used * 100 >= hard * settings.STORAGE_HARD_WARN_PERCENT),
        "used_share": round(100 * (used or 0) / scale, 1),
        "home_share": round(100 * ((row.home_referenced or 0) if row else 0) / scale, 1),
        "scratch_share": round(100 * ((row.scratch_referenced or 0) if row else 0) / scale, 1),
        "soft_share": round(100 * soft / scale, 1) if soft else None,
        "hard_share": round(100 * hard / scale, 1) if hard else None,
    }


def storage_card(request: AuthedRequest) -> Panel:
    row = MemberStorage.objects.filter(user=request.user).first()
    return Panel("storage/_storage_card.html", usage_figures(row, request_quota(request)), column="side")


def member_column(members: list[Any]) -> Column:
    """Each listed member's use against their soft limit, in one query (quotas come with the
    page's members)."""
    rows = {row.user_id: row for row in MemberStorage.objects.filter(user_id__in=[member.pk for member in members])}
    cells = {member.pk: usage_figures(rows.get(member.pk), _quota_of(member)) for member in members}
    return Column("Storage", "storage/_member_cell.html", cells)


def _quota_of(member: User) -> Quota | None:
    try:
        return member.quota  # type: ignore[no-any-return]
    except Quota.DoesNotExist:
        return None


def member_section(request: AuthedRequest, member: Any) -> Panel:
    """A member's storage on their admin page, with the deletion once they have left."""
    row = MemberStorage.objects.filter(user=member).first()
    context = usage_figures(row, _quota_of(member))
    context["member"] = member
    context["delete_form"] = MemberStorageDeleteForm(member=member)
    return Panel("storage/_member_section.html", context)
