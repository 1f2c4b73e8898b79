"""How an app adds to the pages every app shares: the dashboard, the members list, a
member's page and the navigation.

Each of those pages reads one list in settings (PORTAL_DASHBOARD_CARDS, PORTAL_MEMBER_COLUMNS,
PORTAL_MEMBER_SECTIONS, PORTAL_POLICY_SECTIONS, PORTAL_NAVIGATION) naming, in order, the functions that contribute
to it. So the core never imports a feature app, and grep for a function's dotted path finds
where it is shown. ARCHITECTURE.md walks through adding a card.

- a dashboard card: ``card(request) -> Panel | None`` (None: nothing to show this member);
- a member section: ``section(request, member) -> Panel | None``;
- a section of the Policies page: ``section(request) -> Panel | None``;
- a members-list column: ``column(members) -> Column``, one query for the whole page;
- a column of the Servers page: ``column(hosts) -> Column`` (PORTAL_HOST_COLUMNS), cells by host id.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Panel:
    """A template and its context; ``column`` is the dashboard column ("main" or "side")."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    column: str = "main"


@dataclass(frozen=True)
class Column:
    """A column of the members list (or the Servers page): its header and, per member id (host
    id), the cell's context."""

    header: str
    template: str
    cells: dict[int, dict[str, Any]]

    def cell(self, member_id: int) -> dict[str, Any] | None:
        return self.cells.get(member_id)


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: bool
    staff: bool = False  # an admin page: shown in the menu's Admin group


@functools.cache
def _providers(setting: str) -> tuple[Callable[..., Any], ...]:
    return tuple(import_string(path) for path in getattr(settings, setting))


def providers_reset() -> None:
    """Forget the loaded providers (tests that change the settings lists call this)."""
    _providers.cache_clear()


def dashboard_cards(request: HttpRequest) -> list[Panel]:
    return [panel for card in _providers("PORTAL_DASHBOARD_CARDS") if (panel := card(request)) is not None]


def member_sections(request: HttpRequest, member: Any) -> list[Panel]:
    return [panel for section in _providers("PORTAL_MEMBER_SECTIONS") if (panel := section(request, member))]


def policy_sections(request: HttpRequest) -> list[Panel]:
    return [panel for section in _providers("PORTAL_POLICY_SECTIONS") if (panel := section(request))]


def member_columns(members: Iterable[Any]) -> list[Column]:
    listed = list(members)
    return [column(listed) for column in _providers("PORTAL_MEMBER_COLUMNS")]


def host_columns(hosts: Iterable[Any]) -> list[Column]:
    listed = list(hosts)
    return [column(listed) for column in _providers("PORTAL_HOST_COLUMNS")]


def navigation(request: HttpRequest) -> list[NavItem]:
    """The main menu. Each entry of PORTAL_NAVIGATION is (label, URL name, who sees it:
    "member" or "staff", and the prefix of the view names that mark it current)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    match = getattr(request, "resolver_match", None)
    here = match.view_name if match else ""
    items = []
    for label, url_name, audience, prefix in settings.PORTAL_NAVIGATION:
        if audience == "staff" and not user.is_staff:
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        items.append(NavItem(label, url, bool(here) and here.startswith(prefix), staff=audience == "staff"))
    return items
