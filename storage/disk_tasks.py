"""Celery tasks of the storage app's disk area, on the local host's worker (root, with /dev):
reading the disks for the planning page, and applying a disk plan."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from storage import planning


# No retries: a plan that failed half-way needs an admin's look (lsblk, btrfs filesystem show),
# not a second run of mkfs. The parameters travel on the Operation row; the message's are ignored.
@shared_task(acks_late=True, ignore_result=True)
def disk_plan_apply_task(operation_id: int, **_params: Any) -> None:
    planning.disk_plan_run(operation_id)


# No retries either: the admin reads the failure on the page and presses the button again.
@shared_task(acks_late=True, ignore_result=True)
def disk_scan_task(operation_id: int, **_params: Any) -> None:
    planning.disk_scan_run(operation_id)
