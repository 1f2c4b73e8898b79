"""What the workspace card asks about a workspace beyond its row (workspaces/cards.py)."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.urls import reverse

from workspaces import cards

register = template.Library()


@register.simple_tag
def workspace_reach() -> cards.Reach:
    """``{% workspace_reach as reach %}``: web routes, desktop sign-in, the image's state."""
    return cards.reach()


@register.simple_tag
def workspace_figures_url(workspace_id: int) -> str:
    """``{% workspace_figures_url ws.pk as url %}``: where the card fetches the workspace's
    figures over time (WORKSPACE_CARD_FIGURES, a URL name another app serves, since this app
    keeps no series); empty when none is named."""
    name = settings.WORKSPACE_CARD_FIGURES
    return reverse(name, args=[workspace_id]) if name else ""
