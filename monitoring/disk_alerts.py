"""Admins are told when a disk's SMART counters get worse: its reallocated or pending sectors
or NVMe media errors grow. Judged against the same disk's previous minute (its newest row of
the last WINDOW), so each growth is told once, and a disk that stays bad is not told again
every minute. The verdict itself (FAILING) is the "SMART failure" alert rule's
(monitoring/rules.py), which fires once, resolves, and can be silenced. BTRFS device errors
are told by the storage app's usage pass (storage/usage.py), from the same counters."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.urls import reverse

from monitoring.models import Resolution, Sample
from portal.models import Notification
from portal.services import notify_admins

WINDOW = timedelta(hours=2)  # a previous reading older than this (the worker was down) is not compared
GROWING = {
    "reallocated_sectors": "reallocated sectors",
    "pending_sectors": "sectors pending reallocation",
    "media_errors": "NVMe media errors",
}


def _previous(names: list[str], at: datetime) -> dict[str, float]:
    rows = Sample.objects.filter(series__in=names, resolution=Resolution.RAW, at__lt=at, at__gte=at - WINDOW)
    return dict(rows.order_by("at").values_list("series", "value"))  # the newest of each wins


def _news(disk: str, now: dict[str, float], before: dict[str, float]) -> list[str]:
    found = []
    for field, words in GROWING.items():
        name = f"smart.{disk}.{field}"
        if name in now and name in before and now[name] > before[name]:
            found.append(f"{now[name] - before[name]:.0f} more {words} ({now[name]:.0f} in all)")
    return found


def smart_alerts(figures: dict[str, float], *, at: datetime) -> list[str]:
    """Tell admins (portal and Slack) of each disk whose health got worse since its previous
    reading; returns what was told. One query, none without SMART figures."""
    names = [name for name in figures if name.startswith("smart.")]
    if not names:
        return []
    before = _previous(names, at)
    disks = sorted({name.split(".")[1] for name in names})
    told = []
    for disk in disks:
        news = _news(disk, figures, before)
        if news:
            told.append(f"/dev/{disk}: {'; '.join(news)}")
    if told:
        notify_admins(
            title="A disk's health got worse",
            body=". ".join(told) + ". Copy what matters off it and replace it (smartctl -a shows the details).",
            url=reverse("monitoring:overview"),
            level=Notification.Level.ERROR,
        )
    return told
