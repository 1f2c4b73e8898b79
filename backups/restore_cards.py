"""What restoring adds to the shared pages: a dashboard card with the member's newest snapshot
and the way to their files (the menu is full at 1280px, so a card rather than a menu entry),
and the member's snapshots of both tiers on their admin page. One query a tier."""

from __future__ import annotations

from typing import Any

from backups import offsite_restore, restore
from portal.access import AuthedRequest
from portal.panels import Panel

MEMBER_SNAPSHOTS = 5


def snapshots_card(request: AuthedRequest) -> Panel | None:
    """The newest of the member's home snapshots; without one, whether there can be any here."""
    newest = list(restore.member_snapshots(request.user).values_list("taken_at", flat=True)[:1])
    context = {
        "newest_snapshot": newest[0] if newest else None,
        "unavailable": "" if newest else restore.snapshots_unavailable(),
    }
    return Panel("backups/_snapshots_card.html", context, column="side")


def member_section(request: AuthedRequest, member: Any) -> Panel:
    """A member's newest home snapshots of both tiers on their admin page, each to browse or
    restore from."""
    snapshots = list(restore.member_snapshots(member)[:MEMBER_SNAPSHOTS])
    offsite = list(offsite_restore.member_offsite_snapshots(member)[:MEMBER_SNAPSHOTS])
    context = {"member": member, "member_snapshots": snapshots, "member_offsite": offsite}
    return Panel("backups/_member_snapshots.html", context)
