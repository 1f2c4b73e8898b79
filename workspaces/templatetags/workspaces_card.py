"""What the workspace card asks about a workspace beyond its row (workspaces/cards.py)."""

from __future__ import annotations

from django import template

from workspaces import cards

register = template.Library()


@register.simple_tag
def workspace_reach() -> cards.Reach:
    """``{% workspace_reach as reach %}``: web routes, desktop sign-in, the image's state."""
    return cards.reach()
