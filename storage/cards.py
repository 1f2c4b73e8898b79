"""What storage adds to the shared pages (the dashboard card, the members' column)."""

from __future__ import annotations

from typing import Any

from portal.access import AuthedRequest
from portal.cards import request_quota
from portal.panels import Column, Panel


def storage_card(request: AuthedRequest) -> Panel:
    return Panel("portal/_storage_card.html", {"quota": request_quota(request)}, column="side")


def member_column(members: list[Any]) -> Column:
    return Column("Storage", "portal/_storage_card.html", {})


def member_section(request: AuthedRequest, member: Any) -> Panel | None:
    return None
