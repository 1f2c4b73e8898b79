"""Celery tasks of the restore area, on the storage host's queue (where the root is mounted).
Thin: the restore Operations (both tiers), and the listings and downloads a page waits for."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from backups import offsite_restore, restore


@shared_task(acks_late=True, ignore_result=True)
def restore_task(operation_id: int, **_params: Any) -> None:
    """Copy what Operation ``operation_id`` names out of its snapshot (backups/restore.py)."""
    restore.restore_execute(operation_id)


@shared_task(ignore_result=True, expires=30)
def snapshot_list_task(snapshot_id: int, path: str, reply_key: str) -> None:
    """List one folder of a snapshot for a page waiting on ``reply_key`` (a late answer only
    expires in the cache: nobody is waiting for it any more)."""
    restore.listing_reply(snapshot_id, path, reply_key)


@shared_task(ignore_result=True, expires=30)
def snapshot_download_task(snapshot_id: int, path: str, key: str) -> None:
    """Feed one file of a snapshot to a download waiting on ``key`` (backups/restore.py)."""
    restore.download_feed(snapshot_id, path, key)


@shared_task(acks_late=True, ignore_result=True)
def offsite_restore_task(operation_id: int, **_params: Any) -> None:
    """Restore what Operation ``operation_id`` names from an offsite snapshot
    (backups/offsite_restore.py)."""
    offsite_restore.offsite_restore_execute(operation_id)


@shared_task(ignore_result=True, expires=30)
def offsite_list_task(row_id: int, path: str, reply_key: str) -> None:
    """List one folder of an offsite snapshot for a page waiting on ``reply_key``."""
    offsite_restore.listing_reply(row_id, path, reply_key)


@shared_task(ignore_result=True, expires=30)
def offsite_download_task(row_id: int, path: str, key: str) -> None:
    """Feed one file of an offsite snapshot to a download waiting on ``key``."""
    offsite_restore.download_feed(row_id, path, key)
