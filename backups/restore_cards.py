"""What restoring adds to the dashboard: a card with the member's newest snapshot and the way
to their files (the menu is full at 1280px, so a card rather than a menu entry)."""

from __future__ import annotations

from backups import restore
from portal.access import AuthedRequest
from portal.panels import Panel


def snapshots_card(request: AuthedRequest) -> Panel | None:
    """One query: the newest of the member's home snapshots, and how many there are."""
    snapshots = list(restore.member_snapshots(request.user).values_list("taken_at", flat=True)[:1])
    return Panel(
        "backups/_snapshots_card.html", {"newest_snapshot": snapshots[0] if snapshots else None}, column="side"
    )
