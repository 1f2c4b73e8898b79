from __future__ import annotations

from django import template

from portal.env import format_size

register = template.Library()


@register.filter
def size(num_bytes: int | None) -> str:
    """Bytes as the form shows them: 34359738368 -> '32G'."""
    return format_size(num_bytes)


@register.filter
def percent_of(part: int | None, whole: int | None) -> int:
    if not part or not whole:
        return 0
    return min(100, round(100 * part / whole))
