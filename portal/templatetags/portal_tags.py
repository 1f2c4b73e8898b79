from __future__ import annotations

from django import template

from portal.env import format_size
from portal.panels import Panel

register = template.Library()


@register.filter
def size(num_bytes: int | None) -> str:
    """Bytes as the form shows them: 34359738368 -> '32G'."""
    return format_size(num_bytes)


@register.filter
def kind_label(kind: str) -> str:
    """An Operation's kind in words: "storage.member_delete" is "Member delete", "start" "Start"."""
    return kind.rsplit(".", 1)[-1].replace("_", " ").capitalize()


@register.filter
def percent_of(part: int | None, whole: int | None) -> int:
    if not part or not whole:
        return 0
    return min(100, round(100 * part / whole))


@register.filter
def cpuset_label(cpuset: str) -> str:
    """A member's CPU set in words: '0-7' -> '8 cores (0-7)', '3' -> '1 core (CPU 3)'."""
    if not cpuset:
        return "all cores"
    count = 0
    for part in filter(None, cpuset.split(",")):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    where = f"CPU {cpuset}" if cpuset.isdigit() else cpuset
    return f"{count} core{'' if count == 1 else 's'} ({where})"


@register.simple_tag(takes_context=True)
def panel(context: template.Context, item: Panel) -> str:
    """Render a contributed card or section (portal/panels.py) with its own context on top
    of the page's."""
    with context.push(**item.context):
        return context.template.engine.get_template(item.template).render(context)  # type: ignore[union-attr]
