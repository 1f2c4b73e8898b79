"""Members' usage from the qgroups, their hard limits set on the host, and the warnings.

The pass (storage.tasks.storage_usage_task, every 10 minutes on the storage host's worker)
reads every qgroup with one command, stores each member's figures, sets the hard limits that
changed, and warns:

- over the soft limit (the seed's 1 TB; a qgroup limit would be hard, so this is a warning
  only): the member and the admins, in the portal and on Slack;
- at 90% of the hard limit (a qgroup limit on the member's group ``1/<uid>``), before writes
  start failing.

Each warning goes once per crossing: it is re-armed only when usage has fallen below 95% of the
threshold, so hovering around a limit doesn't send one a pass. Every btrfs command has a
timeout; a rescan is started in the background, never waited for.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from hostops import btrfs
from hostops.errors import HostOpsError, QuotasDisabled
from portal.env import format_size
from portal.models import Notification
from portal.services import notify_admins, notify_member
from storage.layout import Layout, apply_hard_limit, shared_folders
from storage.models import FilesystemState, MemberStorage

logger = logging.getLogger(__name__)

REARM_SHARE = 0.95  # a warning is sent again only after usage fell below 95% of its threshold


@dataclass
class UsageReport:
    """What one pass did, for the log and the tests."""

    measured: int = 0
    approximate: bool = False  # a rescan is running: figures may be low until it ends
    warnings: list[str] = field(default_factory=list)
    limits_set: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: str = ""  # why nothing was measured


def usage_pass(*, now: datetime | None = None) -> UsageReport:
    """Measure every member's storage, apply changed hard limits, send due warnings."""
    now = now or timezone.now()
    report = UsageReport()
    layout = Layout.from_settings()
    on_btrfs = layout.on_btrfs()
    state = filesystem_read(layout, on_btrfs=on_btrfs, now=now)
    if not on_btrfs:
        report.skipped = f"{layout.root} is not on BTRFS: plain folders, usage not measured"
        return report
    timeout = settings.STORAGE_COMMAND_TIMEOUT
    try:
        groups, inconsistent = btrfs.qgroup_report(layout.root, timeout=timeout)
    except QuotasDisabled:
        btrfs.quota_enable(layout.root)
        btrfs.quota_rescan(layout.root, wait=False)
        report.skipped = "quotas were off: turned on, the kernel is counting (figures at the next pass)"
        return report
    if inconsistent:
        btrfs.quota_rescan(layout.root, wait=False)
    report.approximate = inconsistent or btrfs.quota_rescan_status(layout.root).running
    if state.quotas_approximate != report.approximate:
        state.quotas_approximate = report.approximate
        state.save(update_fields=["quotas_approximate"])
    if any(group.stale for group in groups):
        _clear_stale(layout.root, report)
    by_id = {group.qgroupid: group for group in groups}
    rows = MemberStorage.objects.filter(kind=MemberStorage.Kind.SUBVOLUME, state=MemberStorage.State.PRESENT)
    for row in rows.select_related("user", "user__quota"):
        try:
            _measure(row, by_id, now=now)
        except HostOpsError as exc:
            report.problems.append(f"{row.user}: {exc}")
            continue
        report.measured += 1
        if apply_hard_limit(row):
            report.limits_set.append(f"{row.user}: {_limit_words(row.hard_limit_applied)}")
        report.warnings.extend(_warn(row))
    return report


def filesystem_read(layout: Layout, *, on_btrfs: bool, now: datetime) -> FilesystemState:
    """Record the root's filesystem (size, profile, devices and their error counters) for the
    storage page; counters that grew since the last read are told to the admins."""
    state, _ = FilesystemState.objects.get_or_create(root=layout.root)
    previous = {device.get("path") or f"devid:{device.get('devid')}": device for device in state.devices}
    was_missing = state.missing_devices
    state.on_btrfs, state.measured_at, state.problems = on_btrfs, now, []
    state.folders = [
        {"name": name, "path": path, "subvolume": subvolume} for name, path, subvolume in shared_folders(layout)
    ]
    if not on_btrfs:
        state.devices, state.size, state.used, state.free = [], None, None, None
        _, total, free = _statvfs(layout.root)
        state.size, state.free, state.used = total, free, total - free
        state.save()
        return state
    try:
        usage, shown = btrfs.filesystem_usage(layout.root), btrfs.filesystem_show(layout.root)
        stats = {stat.device: stat for stat in btrfs.device_stats(layout.root)}
    except HostOpsError as exc:
        state.problems = [str(exc)]
        state.save()
        return state
    state.label, state.uuid = shown.label or "", shown.uuid
    state.size, state.used, state.free = usage.size, usage.used, usage.free_estimated
    state.data_profile, state.metadata_profile = usage.data_profile, usage.metadata_profile
    state.missing_devices = shown.missing or usage.missing > 0
    state.devices = [_device_row(device, stats) for device in shown.devices]
    state.save()
    _tell_new_errors(state, previous, was_missing=was_missing)
    return state


def _statvfs(path: str) -> tuple[int, int, int]:
    info = os.statvfs(path)
    return info.f_frsize, info.f_blocks * info.f_frsize, info.f_bavail * info.f_frsize


_COUNTERS = ("write_io_errs", "read_io_errs", "flush_io_errs", "corruption_errs", "generation_errs")


def _device_row(device: btrfs.Device, stats: dict[str, btrfs.DeviceStats]) -> dict[str, object]:
    stat = stats.get(device.path) or stats.get(f"devid:{device.devid}")
    errors = {name: getattr(stat, name) for name in _COUNTERS} if stat else {}
    return {"devid": device.devid, "path": device.path, "size": device.size, "used": device.used, "errors": errors}


def _tell_new_errors(state: FilesystemState, previous: dict[str, dict[str, Any]], *, was_missing: bool) -> None:
    """One admin notice when error counters grew or a device went missing since the last read."""
    found = []
    for device in state.devices:
        before = previous.get(device["path"] or f"devid:{device['devid']}", {}).get("errors") or {}
        grown = {name: count - before.get(name, 0) for name, count in device["errors"].items()}
        words = [
            f"{more} new {name.removesuffix('_errs').replace('_', ' ')} error(s)"
            for name, more in grown.items()
            if more > 0
        ]
        if words:
            found.append(f"{device['path'] or 'a missing device'}: {', '.join(words)}")
    if state.missing_devices and not was_missing:
        found.append("a device of the filesystem is missing, so it runs degraded")
    if found:
        notify_admins(
            title=f"Storage errors on {state.root}",
            body="; ".join(found) + ". Check the disks (btrfs device stats, smartctl -a) and run a scrub.",
            url=reverse("storage:overview"),
            level=Notification.Level.ERROR,
        )


def _clear_stale(root: str, report: UsageReport) -> None:
    """Qgroups left by deleted subvolumes (snapshots, members' deleted homes) go, as the btrfs
    manual advises; the cleaner is waited for at most the command timeout."""
    try:
        cleared = btrfs.qgroup_clear_stale(root, timeout=settings.STORAGE_COMMAND_TIMEOUT)
    except HostOpsError as exc:
        report.problems.append(f"stale qgroups stay for now: {exc}")
    else:
        logger.info("cleared stale qgroups %s", ", ".join(cleared))


def _measure(row: MemberStorage, by_id: dict[str, btrfs.Qgroup], *, now: datetime) -> None:
    group = by_id.get(row.qgroup)
    if group is None:
        raise HostOpsError(f"no qgroup {row.qgroup}: the next workspace start or preparation makes it")
    parts = []
    for path in (row.home_path, row.scratch_path):
        sub = by_id.get(btrfs.subvolume_qgroup(path)) if os.path.isdir(path) else None
        parts.append(sub.referenced if sub else None)
    row.referenced, row.exclusive = group.referenced, group.exclusive
    row.home_referenced, row.scratch_referenced = parts
    row.measured_at = now
    row.save(update_fields=["referenced", "exclusive", "home_referenced", "scratch_referenced", "measured_at"])


def _limit_words(size: int | None) -> str:
    return format_size(size) if size else "none"


def _crossed(used: int, threshold: int | None, was_over: bool) -> tuple[bool, bool]:
    """(over now, newly over): over at the threshold, back under only below REARM_SHARE of it."""
    if not threshold:
        return False, False
    if was_over:
        return used >= threshold * REARM_SHARE, False
    return used >= threshold, used >= threshold


def _warn(row: MemberStorage) -> list[str]:
    """Send the warnings due for ``row``'s latest figures; returns what was sent."""
    quota = getattr(row.user, "quota", None)
    used = row.referenced or 0
    sent = []
    soft = quota.storage_soft if quota else None
    near_at = row.hard_limit_applied * settings.STORAGE_HARD_WARN_PERCENT // 100 if row.hard_limit_applied else None
    over_soft, new_soft = _crossed(used, soft, row.over_soft)
    near_hard, new_hard = _crossed(used, near_at, row.near_hard)
    with transaction.atomic():
        if new_soft and soft:
            sent.append(_send(row, used, soft, hard=False))
        if new_hard and row.hard_limit_applied:
            sent.append(_send(row, used, row.hard_limit_applied, hard=True))
        if (over_soft, near_hard) != (row.over_soft, row.near_hard):
            row.over_soft, row.near_hard = over_soft, near_hard
            row.save(update_fields=["over_soft", "near_hard"])
    return sent


def _send(row: MemberStorage, used: int, limit: int, *, hard: bool) -> str:
    member, percent = row.user, used * 100 // limit
    if hard:
        title = f"Your storage is at {percent}% of its hard limit"
        body = (
            f"You use {format_size(used)} of your {format_size(limit)} hard limit (home and scratch together). "
            "Past it, writes fail with 'Disk quota exceeded': delete what you no longer need, "
            "starting with scratch, or ask an admin for more."
        )
        admin_title = f"{member} is at {percent}% of their storage hard limit"
    else:
        title = "Your storage is over its soft limit"
        body = (
            f"You use {format_size(used)}; the team's soft limit is {format_size(limit)} "
            "(home and scratch together). Nothing stops you yet: please tidy up, starting with scratch."
        )
        admin_title = f"{member} is over their storage soft limit ({format_size(used)} of {format_size(limit)})"
    level = Notification.Level.ERROR if hard else Notification.Level.WARNING
    url = reverse("dashboard")
    # One Slack message (the admins' copy names the member); the member's own is in the portal.
    notify_member(user=member, title=title, body=body, url=url, level=level, slack=False)
    notify_admins(title=admin_title, body=body, url=reverse("storage:overview"), level=level)
    logger.info("storage warning: %s", admin_title)
    return admin_title
