"""Restoring from tier-1 snapshots: members browse and restore their own, admins any.

Where the files are read. In production only the worker mounts the storage root (the web
container has an empty /srv), so the web process never opens a snapshot itself:

* **Browsing** is a question to the storage host's worker: the view sends
  ``backups.restore_tasks.snapshot_list_task`` by name with a one-time reply key and waits (at
  most BACKUP_BROWSE_TIMEOUT seconds) for the listing the worker puts in the cache (Redis),
  since Celery keeps no results here (CELERY_TASK_IGNORE_RESULT). With BACKUP_BROWSE_LOCAL on
  (``make run``, a single-host install whose web process sees the root) the view lists the
  snapshot itself instead, with the same code.
* **Restoring** is an Operation (kind ``backups.restore``) on that worker: a member's files go
  to ``restored/<YYYY-MM-DD_HHMMSS>/`` in their own home, owned by them; an admin's to a new
  path under the root, or over live data only after typing that path.
* **Downloading** one file (up to BACKUP_DOWNLOAD_MAX_BYTES) is piped the same way: the
  worker puts the file's size, then its chunks, in the cache and the view streams them,
  deleting each as it goes; the worker waits while DOWNLOAD_WINDOW chunks are unread, so one
  download holds at most that much in Redis. With BACKUP_BROWSE_LOCAL the view reads the file.

The asking and streaming through the cache is backups/restore_pipe.py, shared with the offsite
tier (backups/offsite_restore.py), which restores through the same copy below.

Every read walks the snapshot with ``hostops.safetree`` (``openat`` with O_NOFOLLOW), so a
symlink a member planted before the snapshot is shown and copied as a link, never followed.
A snapshot being restored from is pinned (``Snapshot.pinned``), so the retention keeps it.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from backups import restore_pipe as pipe
from backups.models import Snapshot
from hostops import safetree
from hostops.errors import HostOpsError, NotFound
from portal.audit import AuditContext, audit_record
from portal.env import format_size
from portal.locks import advisory_lock
from portal.models import Host, Operation, User
from portal.operations import (
    operation_claim,
    operation_create,
    operation_enqueue,
    operation_fail,
    operation_progress,
    operation_succeed,
    operation_takeover,
)
from portal.services import notify_member
from storage.layout import Layout
from storage.models import FilesystemState

logger = logging.getLogger(__name__)

RESTORE_KIND = "backups.restore"
RESTORE_TASK = "backups.restore_tasks.restore_task"
LIST_TASK = "backups.restore_tasks.snapshot_list_task"
DOWNLOAD_TASK = "backups.restore_tasks.snapshot_download_task"
RESTORED_FOLDER = "restored"
SNAPSHOTS_FOLDER = ".snapshots"
MAX_ITEMS = 200  # entries one restore may name
_PIN = "restore #{}"
_SNAPSHOT_NAME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z")
LOCK_NAMESPACE = 0x5253  # "RS": restores' advisory locks, apart from ingestion's and the workspaces'
NOT_BTRFS = "Snapshots are not available: the storage root {root} is not on BTRFS, so no snapshots are taken."


class RestoreError(Exception):
    """A refused request or a failed read, in words for the person asking."""


# --- names and paths ----------------------------------------------------------------------------


def shown(name: str) -> str:
    """A name as the page shows it: bytes that are not UTF-8 as \\xNN, control characters
    (a newline in a name) as escapes, so any name the filesystem holds renders on one line."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def checked_relative(path: str) -> str:
    """A path inside a snapshot from a form or URL, normalised ("" is the snapshot itself);
    RestoreError for an absolute path, ``..``, NUL, control characters or bytes that are not
    UTF-8 (such names are listed, and restored with their folder, but never addressed alone)."""
    if path.startswith("/"):
        raise RestoreError("Give a path inside the snapshot, not an absolute one.")
    path = path.rstrip("/")
    if any(not char.isprintable() for char in path) or any(0xD800 <= ord(char) <= 0xDFFF for char in path):
        raise RestoreError("The path holds control characters or bytes that are not text.")
    try:
        return "/".join(safetree.checked_parts(path))
    except safetree.UnsafePath as exc:
        raise RestoreError(f"That path is not inside the snapshot: {exc}") from exc


def snapshot_dir(snapshot: Snapshot) -> str:
    """The snapshot's folder, checked against the agreed layout
    (``<root>/.snapshots/<source>/<YYYY-MM-DDTHHMMSSZ>``) before anything opens it."""
    base = posixpath.join(settings.STORAGE_ROOT, SNAPSHOTS_FOLDER, snapshot.source)
    parent, name = posixpath.split(snapshot.path)
    if parent != base or not _SNAPSHOT_NAME.fullmatch(name) or ".." in snapshot.source.split("/"):
        raise RestoreError(f"The snapshot's recorded path {snapshot.path} is not where snapshots are kept.")
    return snapshot.path


# --- what the pages read --------------------------------------------------------------------------


def member_snapshots(user: User) -> QuerySet[Snapshot]:
    """The member's own home snapshots that still exist, newest first."""
    return Snapshot.objects.filter(owner=user, source=f"homes/{user.username}", deleted_at=None).order_by("-taken_at")


def snapshots_unavailable() -> str:
    """Why there are no snapshots here ("" when the worker last found the root on BTRFS, or
    has not looked yet)."""
    state = FilesystemState.objects.filter(root=settings.STORAGE_ROOT).first()
    if state is not None and not state.on_btrfs:
        return NOT_BTRFS.format(root=settings.STORAGE_ROOT)
    return ""


@dataclass(frozen=True)
class Item:
    """One entry of a listing as the page shows it."""

    name: str  # as the filesystem has it (surrogate-escaped)
    label: str  # escaped for the page
    path: str  # relative to the snapshot; "" when the name can't be addressed alone
    kind: str
    size: int
    mtime: datetime | None
    link_target: str = ""


@dataclass(frozen=True)
class Browse:
    items: list[Item] = field(default_factory=list)
    truncated: int = 0
    error: str = ""


def listing_of(snapshot: Snapshot, path: str) -> dict[str, Any]:
    """The worker side of browsing: the folder ``path`` of the snapshot as plain data (what
    the cache carries back), or an error in words."""
    try:
        listing = safetree.list_dir(snapshot_dir(snapshot), checked_relative(path))
    except RestoreError as exc:
        return {"error": str(exc)}
    except safetree.UnsafePath as exc:
        return {"error": f"That is not a folder of the snapshot ({exc}); links are never followed."}
    except NotFound:
        if not path:
            return {"error": "This snapshot's folder is gone from the disk; choose another snapshot."}
        return {"error": "That folder is not in the snapshot."}
    except HostOpsError as exc:
        return {"error": f"The snapshot could not be read: {exc}"}
    entries = [
        {"name": e.name, "kind": e.kind, "size": e.size, "mtime": e.mtime, "link": e.link_target}
        for e in listing.entries
    ]
    return {"entries": entries, "truncated": listing.truncated}


def listing_reply(snapshot_id: int, path: str, reply_key: str) -> None:
    """The listing task: answer the waiting view through the cache."""
    snapshot = Snapshot.objects.filter(pk=snapshot_id, deleted_at=None).first()
    answer = listing_of(snapshot, path) if snapshot is not None else {"error": "That snapshot is gone."}
    cache.set(reply_key, answer, pipe.REPLY_SECONDS)


def snapshot_browse(*, snapshot: Snapshot, path: str) -> Browse:
    """The folder ``path`` of ``snapshot``, read by the worker (or here with
    BACKUP_BROWSE_LOCAL); an error in words when it can't be read or the worker doesn't answer."""
    try:
        path = checked_relative(path)
    except RestoreError as exc:
        return Browse(error=str(exc))
    if settings.BACKUP_BROWSE_LOCAL:
        answer = listing_of(snapshot, path)
    else:
        key = f"backups:browse:{secrets.token_hex(16)}"
        answer = pipe.ask_worker(LIST_TASK, [snapshot.pk, path, key], reply_key=key)
    return browse_of(answer, path)


def browse_of(answer: dict[str, Any], path: str) -> Browse:
    """A listing as the worker sent it (either tier's), as the page shows it. An entry marked
    ``odd`` (restic's listing put U+FFFD where the name's bytes were not UTF-8) is shown but
    can't be addressed alone, like a name that isn't plain text."""
    if answer.get("error"):
        return Browse(error=answer["error"])
    items = []
    zone = timezone.get_current_timezone()
    for entry in answer["entries"]:
        name = entry["name"]
        addressable = shown(name) == name and not entry.get("odd")
        mtime = entry["mtime"]
        items.append(
            Item(
                name=name,
                label=shown(name),
                path=posixpath.join(path, name) if addressable else "",
                kind=entry["kind"],
                size=entry["size"],
                mtime=datetime.fromtimestamp(mtime, tz=zone) if mtime is not None else None,
                link_target=shown(entry["link"]),
            )
        )
    return Browse(items=items, truncated=answer.get("truncated", 0))


def _open_for_download(snapshot: Snapshot, path: str) -> tuple[int, int]:
    """The file's descriptor and size, or RestoreError in words (on whichever side reads)."""
    try:
        fd, size = safetree.open_file(snapshot_dir(snapshot), checked_relative(path))
    except safetree.UnsafePath as exc:
        raise RestoreError(f"Only plain files can be downloaded, and links are never followed: {exc}") from exc
    except NotFound as exc:
        raise RestoreError("That file is not in the snapshot.") from exc
    except HostOpsError as exc:
        raise RestoreError(f"The snapshot could not be read: {exc}") from exc
    if size > settings.BACKUP_DOWNLOAD_MAX_BYTES:
        os.close(fd)
        raise RestoreError(
            f"That file is {format_size(size)}, more than the {format_size(settings.BACKUP_DOWNLOAD_MAX_BYTES)} "
            "a download may be: restore it into your home instead."
        )
    return fd, size


def snapshot_download_open(*, snapshot: Snapshot, path: str, actor: User, context: AuditContext) -> pipe.Download:
    """One plain file of the snapshot as chunks for the web process to stream: read here with
    BACKUP_BROWSE_LOCAL, else piped from the worker through the cache, at most
    DOWNLOAD_WINDOW chunks in it at a time. RestoreError for a link, a folder, a big file."""
    path = checked_relative(path)
    if not path:
        raise RestoreError("Choose a file to download.")
    if settings.BACKUP_BROWSE_LOCAL:
        fd, size = _open_for_download(snapshot, path)
        chunks = pipe.read_chunks(fd)
    else:
        size, chunks = _download_from_worker(snapshot, path)
    audit_record(action="backups.download", actor=actor, target=snapshot, context=context, path=path, size=size)
    return pipe.Download(size, posixpath.basename(path), chunks)


def _download_from_worker(snapshot: Snapshot, path: str) -> tuple[int, Iterator[bytes]]:
    try:
        return pipe.download_via_worker(DOWNLOAD_TASK, [snapshot.pk, path])
    except pipe.WorkerRefused as exc:
        raise RestoreError(str(exc)) from exc


def download_feed(snapshot_id: int, path: str, key: str) -> None:
    """The download task: the file's size, then its chunks, into the cache for the web process
    to stream (see restore_pipe.ChunkFeed)."""
    snapshot = Snapshot.objects.filter(pk=snapshot_id, deleted_at=None).first()
    try:
        if snapshot is None:
            raise RestoreError("That snapshot is gone.")
        fd, size = _open_for_download(snapshot, path)
    except RestoreError as exc:
        pipe.download_refuse(key, str(exc))
        return
    feed = pipe.ChunkFeed(key, size)
    try:
        for chunk in pipe.read_chunks(fd):
            feed.write(chunk)
        feed.close()
    except pipe.FeedAbandoned as exc:
        logger.info("download %s: %s", key, exc)


# --- restoring: the services ----------------------------------------------------------------------


def snapshot_restore(*, snapshot: Snapshot, paths: list[str], actor: User, context: AuditContext) -> Operation:
    """Restore ``paths`` of a member's home snapshot into ``restored/<time>/`` of that member's
    home, as an Operation on the storage host's worker. The snapshot is pinned from now until
    the job ends, so the retention can't delete it under the copy."""
    owner = snapshot.owner
    if owner is None or snapshot.source != f"homes/{owner.username}":
        raise RestoreError("Only snapshots of a member's home are restored into a home.")
    cleaned = checked_paths(paths)
    return _start(snapshot, actor=actor, owner=owner, context=context, params={"paths": cleaned, "mode": "home"})


def snapshot_restore_admin(
    *, snapshot: Snapshot, path: str, target: str, overwrite: bool, actor: User, context: AuditContext
) -> Operation:
    """An admin's restore of ``path`` of any snapshot to ``target`` under the storage root: a
    path that must not exist yet, or, with ``overwrite`` (the admin typed the path), over what
    is there (folders merge, files are replaced)."""
    cleaned = checked_relative(path)
    target = checked_target(target)
    params = {"paths": [cleaned], "mode": "target", "target": target, "overwrite": overwrite}
    return _start(snapshot, actor=actor, owner=snapshot.owner or actor, context=context, params=params)


def checked_target(target: str) -> str:
    """An absolute path below the storage root, outside its snapshots; RestoreError otherwise."""
    root = settings.STORAGE_ROOT.rstrip("/")
    target = target.strip()
    if not target.startswith("/"):
        raise RestoreError("The target is an absolute path under the storage root.")
    if any(not char.isprintable() for char in target) or ".." in target.split("/"):
        raise RestoreError("The target holds '..' or characters that are not plain text.")
    target = posixpath.normpath(target)
    if not target.startswith(root + "/"):
        raise RestoreError(f"The target must be under the storage root {root}/.")
    first = target[len(root) + 1 :].split("/")[0]
    if first == SNAPSHOTS_FOLDER:
        raise RestoreError("Snapshots are read-only: restore somewhere outside .snapshots/.")
    return target


def checked_paths(paths: list[str]) -> list[str]:
    """A member's chosen entries, checked: some, not too many, none the whole snapshot, no two
    with the same name (they land side by side); RestoreError otherwise."""
    if not paths:
        raise RestoreError("Choose at least one file or folder to restore.")
    if len(paths) > MAX_ITEMS:
        raise RestoreError(f"At most {MAX_ITEMS} entries at once; restore their folder instead.")
    cleaned = sorted({checked_relative(path) for path in paths})
    if "" in cleaned:
        raise RestoreError("Choose files or folders inside the snapshot, not the whole snapshot.")
    names = [posixpath.basename(path) for path in cleaned]
    if len(set(names)) != len(names):
        raise RestoreError("Two of the chosen entries have the same name; restore them one at a time.")
    return cleaned


def _start(snapshot: Snapshot, *, actor: User, owner: User, context: AuditContext, params: dict[str, Any]) -> Operation:
    restore_pins_release()
    with transaction.atomic():
        locked = Snapshot.objects.select_for_update().filter(pk=snapshot.pk, deleted_at=None).first()
        if locked is None:
            raise RestoreError("That snapshot has been deleted meanwhile.")
        params = {"snapshot_id": locked.pk, **params}
        op = operation_create(
            kind=RESTORE_KIND, actor=actor, owner=owner, target=locked, params=params, message="Waiting for the worker"
        )
        if not locked.pinned:
            Snapshot.objects.filter(pk=locked.pk).update(pinned=_PIN.format(op.pk))
        audit_record(
            action="backups.restore",
            actor=actor,
            target=locked,
            context=context,
            paths=params["paths"],
            to=params.get("target") or f"~{owner.username}/{RESTORED_FOLDER}/",
            overwrite=bool(params.get("overwrite")),
        )

        def unsent() -> None:
            _unpin(locked.pk, op.pk)

        operation_enqueue(op, task=RESTORE_TASK, queue=Host.local().queue, on_unsent=unsent)
    return op


def _unpin(snapshot_id: int, operation_id: int, *, force: bool = False) -> None:
    """Hand the pin to another restore of the same snapshot still under way, or drop it when it
    is this restore's; a pin someone else set (tonight's offsite backup) is left alone."""
    with transaction.atomic():
        row = Snapshot.objects.select_for_update().filter(pk=snapshot_id).first()
        if row is None or (row.pinned != _PIN.format(operation_id) and not force):
            return
        other = (
            Operation.objects.filter(kind=RESTORE_KIND, target_type="snapshot", target_id=str(snapshot_id))
            .in_progress()
            .exclude(pk=operation_id)
            .order_by("created")
            .first()
        )
        Snapshot.objects.filter(pk=snapshot_id).update(pinned=_PIN.format(other.pk) if other else "")


# --- restoring: the worker side -----------------------------------------------------------------


def restore_execute(operation_id: int) -> None:
    """Run the restore of this Operation. A second delivery finds the row claimed, final or
    locked by the worker on it and does nothing; a delivery after that worker died (the row
    running, its lock free) takes the job over: the half-made folder goes and the copy starts
    again. The pin is released however it ends."""
    job_execute(operation_id, _run)


def job_execute(operation_id: int, run: Callable[[int, bool], None]) -> None:
    """Claim a restore Operation (either tier's) and ``run(operation_id, retaken)`` it, once:
    under the job's advisory lock, taking over a row whose worker died."""
    with _job_lock(operation_id) as mine:
        if not mine:
            return
        if operation_claim(operation_id):
            retaken = False
        elif _takeover(operation_id):
            retaken = True
        else:
            return
        run(operation_id, retaken)


def _takeover(operation_id: int) -> bool:
    state = Operation.objects.filter(pk=operation_id).values_list("state", flat=True).first()
    if state == Operation.State.RUNNING and operation_takeover(operation_id):
        operation_progress(operation_id, log="The previous worker stopped mid-restore; starting again.")
        return True
    return False


def _job_lock(operation_id: int) -> AbstractContextManager[bool]:
    """Try to become the one worker on this restore; the lock dies with the connection."""
    return advisory_lock(LOCK_NAMESPACE, operation_id)


def _run(operation_id: int, retaken: bool) -> None:
    op = Operation.objects.get(pk=operation_id)
    snapshot_id = int(op.params["snapshot_id"])

    def work() -> str:
        snapshot = Snapshot.objects.select_related("owner").filter(pk=snapshot_id, deleted_at=None).first()
        if snapshot is None:
            raise RestoreError("The snapshot was deleted before the restore could start.")
        if not snapshot.pinned:
            Snapshot.objects.filter(pk=snapshot_id, pinned="").update(pinned=_PIN.format(operation_id))
        if op.params.get("mode") == "home":
            return _restore_home(op, snapshot, retaken=retaken)
        return copy_to_target(op, snapshot_dir(snapshot))

    try:
        job_finish(op, work)
    finally:
        _unpin(snapshot_id, operation_id)


def job_finish(op: Operation, work: Callable[[], str]) -> None:
    """Run a claimed restore's ``work`` and end its Operation: failed with its words, or
    succeeded, telling the member when an admin restored into their home."""
    try:
        words = work()
    except (RestoreError, HostOpsError, OSError) as exc:
        message = str(exc) if isinstance(exc, RestoreError | HostOpsError) else f"{exc.strerror}: {exc.filename}"
        logger.warning("restore %s failed: %s", op.pk, message)
        operation_fail(op.pk, message=f"Not restored: {message}"[:300], error=message)
        return
    operation_succeed(op.pk, message=words)
    if op.params.get("mode") == "home" and op.owner_id and op.actor_id != op.owner_id:
        # An admin restored into a member's home: the member finds a folder they didn't make.
        notify_member(
            user=op.owner,  # type: ignore[arg-type]
            title="An admin restored files into your home",
            body=words,
            url=reverse("backups:my-snapshots"),
            slack=False,
        )


def restore_pins_release() -> int:
    """Drop restore pins whose job has ended without releasing them (its worker died and the
    reaper failed the row); returns how many. Each new restore calls it first, and the snapshot
    tier may call it before its retention."""
    released = 0
    for row in Snapshot.objects.filter(pinned__startswith="restore #").values("pk", "pinned"):
        ident = row["pinned"].removeprefix("restore #")
        live = ident.isdigit() and Operation.objects.filter(pk=int(ident)).in_progress().exists()
        if not live:
            _unpin(row["pk"], int(ident) if ident.isdigit() else 0, force=True)
            released += 1
    return released


def restore_folder_name(now: datetime) -> str:
    return timezone.localtime(now).strftime("%Y-%m-%d_%H%M%S")


def _restore_home(op: Operation, snapshot: Snapshot, *, retaken: bool = False) -> str:
    if snapshot.owner is None:
        raise RestoreError("The snapshot's member is gone.")
    return copy_into_home(op, snapshot.owner, snapshot_dir(snapshot), retaken=retaken)


def copy_into_home(op: Operation, owner: User, tree: str, *, retaken: bool = False, percent_from: int = 0) -> str:
    """Copy the Operation's ``paths`` of the read-only ``tree`` (a snapshot, or the folder an
    offsite copy was restored into) into a new ``restored/<time>/`` of ``owner``'s home, owned
    by them; all or nothing. Returns what was restored, in words."""
    home = Layout.from_settings().home_of(owner.username)
    uid = gid = owner.uid
    source = safetree.open_root(tree)
    try:
        home_fd = safetree.open_root(home)
    except NotFound as exc:
        os.close(source)
        raise RestoreError(f"{owner.username}'s home {home} does not exist.") from exc
    report = safetree.CopyReport()
    try:
        for path in op.params["paths"]:  # all of them there before anything is made
            _check_source(source, path)
        restored = safetree.ensure_dir_at(home_fd, RESTORED_FOLDER, uid=uid, gid=gid)
        try:
            if retaken and op.params.get("folder"):
                _drop_partial(restored, op.params["folder"])
            name, folder = _new_folder(restored, restore_folder_name(op.created))
            Operation.objects.filter(pk=op.pk).update(params={**op.params, "folder": name})
            try:
                operation_progress(op.pk, message=f"Restoring into ~/{RESTORED_FOLDER}/{name}/")
                _copy_items(
                    op, source, op.params["paths"], folder, owner=(uid, gid), report=report, percent_from=percent_from
                )
                os.fchown(folder, uid, gid)
                os.fchmod(folder, 0o750)
            except BaseException:
                safetree.remove_at(restored, name)  # nothing half-restored is left behind
                raise
            finally:
                os.close(folder)
        finally:
            os.close(restored)
    finally:
        os.close(home_fd)
        os.close(source)
    return f"Restored {_report_words(report)} into ~/{RESTORED_FOLDER}/{name}/"


def _drop_partial(restored: int, name: str) -> None:
    """The folder a dead worker was filling: still root's (a finished one is the member's), so a
    folder the member made under that name meanwhile is never touched."""
    try:
        info = os.stat(name, dir_fd=restored, follow_symlinks=False)
    except (FileNotFoundError, ValueError):
        return
    if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and "/" not in name:
        safetree.remove_at(restored, name)


def _new_folder(parent: int, name: str) -> tuple[str, int]:
    """A new folder in ``parent`` (root's, 0700, until it is filled): ``name``, or ``name-2``…"""
    for attempt in range(1, 100):
        candidate = name if attempt == 1 else f"{name}-{attempt}"
        try:
            return candidate, safetree.make_dir_at(parent, candidate)
        except FileExistsError:
            continue
    raise RestoreError(f"Too many restores named {name} already.")


def _copy_items(
    op: Operation,
    source: int,
    paths: list[str],
    folder: int,
    *,
    owner: tuple[int, int] | None,
    report: safetree.CopyReport,
    rename_to: str = "",
    overwrite: bool = False,
    percent_from: int = 0,
) -> None:
    for index, path in enumerate(paths, start=1):
        parts = safetree.checked_parts(path)
        parent = safetree.open_dir_at(source, parts[:-1])
        try:
            _entry_kind(parent, parts[-1], path)
            safetree.copy_entry(
                parent, parts[-1], folder, rename_to or parts[-1], owner=owner, overwrite=overwrite, report=report
            )
        finally:
            os.close(parent)
        percent = percent_from + round((95 - percent_from) * index / len(paths))
        operation_progress(op.pk, percent=percent, log=f"restored {path}")


def _entry_kind(parent: int, name: str, path: str) -> None:
    try:
        os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError as exc:
        raise RestoreError(f"{path} is not in the snapshot.") from exc


def _check_source(source: int, path: str) -> None:
    """``path`` is in the snapshot, below real folders only (a link on the way is refused)."""
    parts = safetree.checked_parts(path)
    try:
        parent = safetree.open_dir_at(source, parts[:-1])
    except NotFound as exc:
        raise RestoreError(f"{path} is not in the snapshot.") from exc
    except safetree.UnsafePath as exc:
        raise RestoreError(f"{path} is not inside a folder of the snapshot ({exc}); links are not followed.") from exc
    try:
        _entry_kind(parent, parts[-1], path)
    finally:
        os.close(parent)


def copy_to_target(op: Operation, tree: str, *, percent_from: int = 0) -> str:
    """An admin's restore: the Operation's one path of the read-only ``tree`` ("" for all of it)
    to its target under the storage root, owners kept; over what is there only with the
    Operation's ``overwrite``."""
    target = checked_target(op.params["target"])
    overwrite = bool(op.params.get("overwrite"))
    path = op.params["paths"][0]
    root = settings.STORAGE_ROOT.rstrip("/")
    parent_parts = target[len(root) + 1 :].split("/")
    name = parent_parts.pop()
    try:
        with safetree.opened_dir(root, parent_parts) as opened:
            parent = os.dup(opened)
    except (NotFound, safetree.UnsafePath) as exc:
        raise RestoreError(f"The folder that would hold {target} does not exist or is a link: {exc}") from exc
    report = safetree.CopyReport()
    try:
        exists = _exists(parent, name)
        if exists and not overwrite:
            raise RestoreError(f"{target} exists already: choose a new path, or type it to confirm overwriting.")
        # The whole tree is copied as its folder, from the folder that holds it.
        holder, item = (tree, path) if path else (posixpath.dirname(tree), posixpath.basename(tree))
        source = safetree.open_root(holder)
        try:
            _copy_items(
                op, source, [item], parent, owner=None, report=report, rename_to=name, overwrite=exists,
                percent_from=percent_from,
            )  # fmt: skip
        finally:
            os.close(source)
    finally:
        os.close(parent)
    over = " over what was there" if exists else ""
    return f"Restored {_report_words(report)} to {target}{over}"


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _report_words(report: safetree.CopyReport) -> str:
    parts = [f"{report.files} file{'s' if report.files != 1 else ''} ({format_size(report.bytes) or '0'})"]
    if report.folders:
        parts.append(f"{report.folders} folder{'s' if report.folders != 1 else ''}")
    if report.links:
        parts.append(f"{report.links} link{'s' if report.links != 1 else ''}")
    words = ", ".join(parts)
    if report.skipped:
        words += f"; skipped {len(report.skipped)} device or pipe entries"
    return words
