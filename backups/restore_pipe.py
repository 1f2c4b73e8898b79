"""The web process asks the storage worker and waits for its answer through the cache (Redis),
since Celery keeps no results here (CELERY_TASK_IGNORE_RESULT): a folder's listing under a
one-time reply key, and a download as its size and then its chunks, the worker waiting while
DOWNLOAD_WINDOW chunks are unread so that one download holds at most that much in Redis. Both
restore tiers use it (backups/restore.py, backups/offsite_restore.py)."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from portal.models import Host

logger = logging.getLogger(__name__)

DOWNLOAD_CHUNK = 4 * 1024 * 1024
DOWNLOAD_WINDOW = 8  # chunks of one download in the cache at once: 32 MiB
DOWNLOAD_STALL_SECONDS = 60
REPLY_SECONDS = 60


class WorkerRefused(Exception):
    """The worker's answer was an error, in words for the person asking."""


def ask_worker(task: str, args: list[Any], *, reply_key: str) -> dict[str, Any]:
    """Send ``task`` to the storage host's worker and wait for its answer at ``reply_key``."""
    from celery import current_app

    try:
        current_app.send_task(task, args=args, queue=Host.local().queue, retry=True, retry_policy=_SEND_RETRY)
    except Exception as exc:  # the broker's error, whichever transport
        logger.warning("could not send %s: %s", task, exc)
        return {"error": "The job queue is not answering, so the snapshot can't be read now. Try again in a minute."}
    answer = _wait_for(reply_key, settings.BACKUP_BROWSE_TIMEOUT)
    if answer is None:
        return {"error": "The storage worker did not answer in time, so the snapshot can't be read now. Try again."}
    cache.delete(reply_key)
    return answer  # type: ignore[no-any-return]


_SEND_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}


@dataclass(frozen=True)
class Download:
    size: int
    filename: str
    chunks: Iterator[bytes]


def read_chunks(fd: int) -> Iterator[bytes]:
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(DOWNLOAD_CHUNK):
            yield chunk


def download_via_worker(task: str, args: list[Any]) -> tuple[int, Iterator[bytes]]:
    """Ask the worker to feed a file (``task`` with ``args`` and a fresh key); its size and its
    chunks as they come through the cache, or WorkerRefused with the worker's words."""
    key = f"backups:download:{secrets.token_hex(16)}"
    answer = ask_worker(task, [*args, key], reply_key=f"{key}:meta")
    if answer.get("error"):
        raise WorkerRefused(answer["error"])
    size, count = int(answer["size"]), int(answer["chunks"])

    def chunks() -> Iterator[bytes]:
        for index in range(count):
            chunk = _wait_for(f"{key}:{index}", DOWNLOAD_STALL_SECONDS)
            if chunk is None:  # the worker stopped: end short, and the browser says it failed
                logger.warning("download %s stopped at chunk %s of %s", key, index, count)
                return
            cache.delete(f"{key}:{index}")
            yield chunk

    return size, chunks()


def download_refuse(key: str, words: str) -> None:
    """Tell the waiting page why there is no download."""
    cache.set(f"{key}:meta", {"error": words}, REPLY_SECONDS)


class FeedAbandoned(Exception):
    """The page stopped reading a download (its visitor left)."""


class ChunkFeed:
    """The worker's end of a download: announces the size, then takes bytes as a file would
    (``write``, so restic's dump can write into it) and puts them in the cache in chunks of
    DOWNLOAD_CHUNK. It waits while DOWNLOAD_WINDOW chunks are unread, so a download holds at
    most that much in Redis, and raises FeedAbandoned when the reader stops for
    DOWNLOAD_STALL_SECONDS."""

    def __init__(self, key: str, size: int) -> None:
        self.key, self.count, self.index = key, -(-size // DOWNLOAD_CHUNK), 0
        self.pending = bytearray()
        cache.set(f"{key}:meta", {"size": size, "chunks": self.count}, REPLY_SECONDS)

    def write(self, data: bytes) -> int:
        self.pending += data
        while len(self.pending) >= DOWNLOAD_CHUNK:
            self._put(bytes(self.pending[:DOWNLOAD_CHUNK]))
            del self.pending[:DOWNLOAD_CHUNK]
        return len(data)

    def close(self) -> None:
        if self.pending:
            self._put(bytes(self.pending))
            self.pending.clear()

    def _put(self, chunk: bytes) -> None:
        index = self.index
        if index >= DOWNLOAD_WINDOW and not _wait_gone(f"{self.key}:{index - DOWNLOAD_WINDOW}"):
            raise FeedAbandoned(f"abandoned by its reader at chunk {index} of {self.count}")
        cache.set(f"{self.key}:{index}", chunk, 2 * DOWNLOAD_STALL_SECONDS)
        self.index += 1


def _wait_for(key: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = cache.get(key)
        if value is not None:
            return value
        time.sleep(0.05)
    return None


def _wait_gone(key: str) -> bool:
    deadline = time.monotonic() + DOWNLOAD_STALL_SECONDS
    while time.monotonic() < deadline:
        if cache.get(key) is None:
            return True
        time.sleep(0.05)
    return False
