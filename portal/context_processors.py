from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from portal.panels import navigation


def portal(request: HttpRequest) -> dict[str, Any]:
    """Site-wide template values. The unread count is one indexed COUNT per page."""
    user = getattr(request, "user", None)
    unread = 0
    if user is not None and user.is_authenticated:
        unread = user.notifications.filter(read_at=None).count()
    return {
        "site_domain": settings.PORTAL_DOMAIN,
        "site_name": settings.PORTAL_SITE_NAME,
        "team_links": settings.TEAM_LINKS,
        "unread_notifications": unread,
        "navigation": navigation(request),
    }
