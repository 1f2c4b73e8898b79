"""Restoring from the offsite tier: members browse and restore their own restic snapshots,
admins any, with tier 1's rules and tier 1's code (backups/restore.py) wherever the two agree.

Only the storage worker holds the repository's password file, so every read is the worker's:

* **Browsing** a folder is ``restic ls`` of ``<the row's path>/<folder>`` (the path restic stored:
  offsite_repo.mount_path of the source), asked through ``offsite_list_task`` with a reply key
  as tier 1 does, and kept in the cache for LISTING_SECONDS: ``ls`` on Drive takes seconds, and
  a snapshot never changes. restic's tree holds only what was backed up and ``ls`` never
  follows a link, so a link a member planted is an entry with its target, nothing more.
* **Restoring** is an Operation of tier 1's kind: restic restores the chosen paths, verified,
  into a fresh staging folder ``<STORAGE_ROOT>/.restore-staging/<operation id>/`` (root's, 0700,
  outside every member's reach: restic runs as root and writes by path, so it must never write
  where a member could put a link), then tier 1's copy (hostops.safetree, no link followed,
  folders it made itself) takes them into the member's ``restored/<time>/`` or an admin's
  target, and the staging folder goes, however the job ends.
* **Downloading** one file is ``restic dump`` piped through the cache like tier 1's download,
  after ``ls`` said the path is a plain file no bigger than BACKUP_DOWNLOAD_MAX_BYTES.

No repo_lock(): that advisory lock is "one job on the repository at a time", and a restore
holding it would make the night's backup skip its run (or a member wait hours for it to end)
while restic itself lets both read at once. restic's own lock is the guard that matters: a
restore holds a shared lock for as long as it reads, so forget and prune (which need the
exclusive lock) cannot remove the snapshot under it; a restore that finds forget or prune
holding the lock waits up to RESTORE_LOCK_WAIT for it. No pin either: ResticSnapshot rows have
none, and restic's lock does that job while the restore runs (a snapshot forgotten between the
request and the start fails the restore with words).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import posixpath
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet

from backups import offsite_repo, restore
from backups import restore_pipe as pipe
from backups.models import ResticSnapshot
from backups.restore import RestoreError
from hostops import restic, safetree
from hostops.errors import HostOpsError
from portal.audit import AuditContext, audit_record
from portal.env import format_size
from portal.models import Host, Operation, User
from portal.operations import operation_create, operation_enqueue, operation_progress

logger = logging.getLogger(__name__)

RESTORE_TASK = "backups.restore_tasks.offsite_restore_task"
LIST_TASK = "backups.restore_tasks.offsite_list_task"
DOWNLOAD_TASK = "backups.restore_tasks.offsite_download_task"
STAGING_FOLDER = ".restore-staging"
LISTING_SECONDS = 300
RESTORE_LOCK_WAIT = 600  # seconds a restore waits for forget or prune to let go of the repository
FETCHED = 80  # percent of the job that is restic's part; the copy into place is the rest
PROGRESS_FPS = 0.5  # restic's status lines a second: one row update every two seconds
_LS_LIMIT = 100_000
_KINDS = {"dir": "dir", "file": "file", "symlink": "link"}
_GLOB = str.maketrans({char: f"\\{char}" for char in "\\*?["})


# --- what the pages read --------------------------------------------------------------------------


def member_offsite_snapshots(user: User) -> QuerySet[ResticSnapshot]:
    """The member's own home snapshots in the offsite repository that restic still keeps."""
    return ResticSnapshot.objects.filter(owner=user, source=f"homes/{user.username}", forgotten_at=None).order_by(
        "-taken_at"
    )


def snapshot_root(row: ResticSnapshot) -> str:
    """The path restic stored the source under, checked: absolute, plain, ending in the source."""
    path = row.path.rstrip("/")
    source = row.source
    if (
        not path.startswith("/")
        or posixpath.normpath(path) != path
        or not path.endswith(f"/{source}")
        or ".." in source.split("/")
    ):
        raise RestoreError(f"The offsite snapshot's recorded path {row.path} does not name its source {source}.")
    return path


def _inside(row: ResticSnapshot, relative: str) -> str:
    """The absolute path inside the restic snapshot of a checked relative path."""
    root = snapshot_root(row)
    return posixpath.join(root, relative) if relative else root


def _repository() -> restic.Repository:
    try:
        return offsite_repo.repository()
    except offsite_repo.OffsiteNotConfigured as exc:
        raise RestoreError(str(exc)) from None


def _read_words(exc: HostOpsError) -> str:
    return f"The offsite copy could not be read now: {exc}"


# --- browsing -------------------------------------------------------------------------------------


def listing_of(row: ResticSnapshot, path: str) -> dict[str, Any]:
    """The worker side of browsing: the folder ``path`` of the restic snapshot as plain data
    (tier 1's shape), or an error in words."""
    try:
        folder = _inside(row, restore.checked_relative(path))
        nodes = restic.ls(_repository(), row.snapshot_id, folder, limit=_LS_LIMIT)
    except RestoreError as exc:
        return {"error": str(exc)}
    except HostOpsError as exc:
        return {"error": _read_words(exc)}
    itself = next((node for node in nodes if node.path.rstrip("/") == folder), None)
    if itself is None:
        if path:
            return {"error": "That folder is not in the offsite snapshot."}
        return {"error": f"The offsite snapshot holds nothing at {folder}; choose another snapshot."}
    if itself.type != "dir":
        return {"error": "That is not a folder of the snapshot (a file or a link); links are never followed."}
    children = sorted(
        (node for node in nodes if posixpath.dirname(node.path) == folder and node is not itself),
        key=lambda node: (node.type != "dir", node.name),
    )
    entries = [_entry(node) for node in children[: safetree.LIST_LIMIT]]
    return {"entries": entries, "truncated": max(0, len(children) - safetree.LIST_LIMIT)}


def _entry(node: restic.Node) -> dict[str, Any]:
    return {
        "name": node.name,
        "kind": _KINDS.get(node.type, "other"),
        "size": node.size or 0,
        "mtime": node.mtime.timestamp() if node.mtime else None,
        "link": node.link_target,
        # restic's JSON put U+FFFD where the name's bytes were not UTF-8: not its real name.
        "odd": "\ufffd" in node.name,
    }


def listing_reply(row_id: int, path: str, reply_key: str) -> None:
    """The listing task: answer the waiting view through the cache."""
    row = ResticSnapshot.objects.filter(pk=row_id, forgotten_at=None).first()
    answer = listing_of(row, path) if row is not None else {"error": "That offsite snapshot is gone."}
    cache.set(reply_key, answer, 60)


def _listing_key(row: ResticSnapshot, path: str) -> str:
    digest = hashlib.sha256(f"{row.snapshot_id}\0{path}".encode("utf-8", "surrogateescape")).hexdigest()
    return f"backups:offsite-ls:{digest}"


def offsite_browse(*, row: ResticSnapshot, path: str) -> restore.Browse:
    """The folder ``path`` of the restic snapshot, from the cache, else read by the worker (or
    here with BACKUP_BROWSE_LOCAL); an error in words when it can't be read."""
    try:
        path = restore.checked_relative(path)
    except RestoreError as exc:
        return restore.Browse(error=str(exc))
    key = _listing_key(row, path)
    answer = cache.get(key)
    if answer is None:
        if settings.BACKUP_BROWSE_LOCAL:
            answer = listing_of(row, path)
        else:
            reply = f"backups:browse:{os.urandom(16).hex()}"
            answer = pipe.ask_worker(LIST_TASK, [row.pk, path, reply], reply_key=reply)
        if not answer.get("error"):  # errors (a busy repository) are asked again next time
            cache.set(key, answer, LISTING_SECONDS)
    return restore.browse_of(answer, path)


# --- downloading ----------------------------------------------------------------------------------


def _file_size(repo: restic.Repository, row: ResticSnapshot, path: str) -> int:
    """The size of the plain file ``path`` of the snapshot; RestoreError for anything else."""
    full = _inside(row, path)
    try:
        nodes = restic.ls(repo, row.snapshot_id, full, limit=10)
    except HostOpsError as exc:
        raise RestoreError(_read_words(exc)) from exc
    node = next((node for node in nodes if node.path == full), None)
    if node is None:
        raise RestoreError("That file is not in the snapshot.")
    if node.type != "file":
        raise RestoreError("Only plain files can be downloaded, and links are never followed.")
    size = node.size or 0
    if size > settings.BACKUP_DOWNLOAD_MAX_BYTES:
        raise RestoreError(
            f"That file is {format_size(size)}, more than the {format_size(settings.BACKUP_DOWNLOAD_MAX_BYTES)} "
            "a download may be: restore it into your home instead."
        )
    return size


def download_feed(row_id: int, path: str, key: str) -> None:
    """The download task: ``restic dump`` of one plain file into the cache, a window at a time
    (restore_pipe.ChunkFeed)."""
    row = ResticSnapshot.objects.filter(pk=row_id, forgotten_at=None).first()
    try:
        if row is None:
            raise RestoreError("That offsite snapshot is gone.")
        path = restore.checked_relative(path)
        repo = _repository()
        size = _file_size(repo, row, path)
    except RestoreError as exc:
        pipe.download_refuse(key, str(exc))
        return
    feed = pipe.ChunkFeed(key, size)
    try:
        restic.dump(repo, row.snapshot_id, _inside(row, path), feed, max_bytes=size)  # type: ignore[arg-type]
        feed.close()
    except (pipe.FeedAbandoned, HostOpsError) as exc:
        logger.warning("offsite download %s stopped: %s", key, exc)


def offsite_download_open(*, row: ResticSnapshot, path: str, actor: User, context: AuditContext) -> pipe.Download:
    """One plain file of the restic snapshot as chunks for the web process to stream: dumped
    here into a private temporary file with BACKUP_BROWSE_LOCAL, else piped from the worker."""
    path = restore.checked_relative(path)
    if not path:
        raise RestoreError("Choose a file to download.")
    if settings.BACKUP_BROWSE_LOCAL:
        size, chunks = _dump_here(row, path)
    else:
        try:
            size, chunks = pipe.download_via_worker(DOWNLOAD_TASK, [row.pk, path])
        except pipe.WorkerRefused as exc:
            raise RestoreError(str(exc)) from exc
    audit_record(action="backups.download", actor=actor, target=row, context=context, path=path, size=size)
    return pipe.Download(size, posixpath.basename(path), chunks)


def _dump_here(row: ResticSnapshot, path: str) -> tuple[int, Iterator[bytes]]:
    repo = _repository()
    size = _file_size(repo, row, path)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the stream, which closes it
    try:
        restic.dump(repo, row.snapshot_id, _inside(row, path), spool, max_bytes=size)
    except HostOpsError as exc:
        spool.close()
        raise RestoreError(_read_words(exc)) from exc
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        with spool:
            while chunk := spool.read(pipe.DOWNLOAD_CHUNK):
                yield chunk

    return size, chunks()


# --- restoring: the services ----------------------------------------------------------------------


def offsite_restore(*, row: ResticSnapshot, paths: list[str], actor: User, context: AuditContext) -> Operation:
    """Restore ``paths`` of a member's restic home snapshot into ``restored/<time>/`` of that
    member's home, as an Operation on the storage host's worker."""
    owner = row.owner
    if owner is None or row.source != f"homes/{owner.username}":
        raise RestoreError("Only snapshots of a member's home are restored into a home.")
    params = {"paths": restore.checked_paths(paths), "mode": "home"}
    return _start(row, actor=actor, owner=owner, context=context, params=params)


def offsite_restore_admin(
    *, row: ResticSnapshot, path: str, target: str, overwrite: bool, actor: User, context: AuditContext
) -> Operation:
    """An admin's restore of ``path`` of any restic snapshot to ``target`` under the storage
    root, by tier 1's rules (a new path, or over what is there with ``overwrite``)."""
    params = {
        "paths": [restore.checked_relative(path)],
        "mode": "target",
        "target": restore.checked_target(target),
        "overwrite": overwrite,
    }
    return _start(row, actor=actor, owner=row.owner or actor, context=context, params=params)


def _start(
    row: ResticSnapshot, *, actor: User, owner: User, context: AuditContext, params: dict[str, Any]
) -> Operation:
    with transaction.atomic():
        locked = ResticSnapshot.objects.select_for_update().filter(pk=row.pk, forgotten_at=None).first()
        if locked is None:
            raise RestoreError("That offsite snapshot has been forgotten meanwhile.")
        params = {"restic_id": locked.pk, **params}
        op = operation_create(
            kind=restore.RESTORE_KIND,
            actor=actor,
            owner=owner,
            target=locked,
            params=params,
            message="Waiting for the worker",
        )
        audit_record(
            action="backups.restore",
            actor=actor,
            target=locked,
            context=context,
            paths=params["paths"],
            to=params.get("target") or f"~{owner.username}/{restore.RESTORED_FOLDER}/",
            overwrite=bool(params.get("overwrite")),
            offsite=locked.short_id,
        )
        operation_enqueue(op, task=RESTORE_TASK, queue=Host.local().queue)
    return op


# --- restoring: the worker side -------------------------------------------------------------------


def offsite_restore_execute(operation_id: int) -> None:
    """Run the offsite restore of this Operation, once (tier 1's claim and takeover): a
    takeover starts from a fresh staging folder, and the half-made restored folder goes."""
    restore.job_execute(operation_id, _run)


def _run(operation_id: int, retaken: bool) -> None:
    op = Operation.objects.get(pk=operation_id)
    restore.job_finish(op, lambda: _restore(op, retaken=retaken))


def _restore(op: Operation, *, retaken: bool) -> str:
    row = ResticSnapshot.objects.select_related("owner").filter(pk=op.params["restic_id"], forgotten_at=None).first()
    if row is None:
        raise RestoreError("The offsite snapshot was forgotten before the restore could start.")
    home = op.params.get("mode") == "home"
    if home and row.owner is None:
        raise RestoreError("The snapshot's member is gone.")
    repo = dataclasses.replace(_repository(), retry_lock_s=RESTORE_LOCK_WAIT)
    with staging_folder(op.pk) as staging:
        tree = posixpath.join(staging, "tree")
        _fetch(op, repo, row, tree)
        if home:
            return restore.copy_into_home(op, row.owner, tree, retaken=retaken, percent_from=FETCHED)  # type: ignore[arg-type]
        return restore.copy_to_target(op, tree, percent_from=FETCHED)


def _fetch(op: Operation, repo: restic.Repository, row: ResticSnapshot, tree: str) -> None:
    """restic restore of the Operation's paths (all of the snapshot for "") into ``tree``,
    every file read back and compared (``--verify``); progress into the Operation."""
    paths = [path for path in op.params["paths"] if path]
    include = ["/" + path.translate(_GLOB) for path in paths]  # restic's includes are patterns
    operation_progress(op.pk, message=f"Fetching from the offsite snapshot {row.short_id}")

    def progress(status: restic.Progress) -> None:
        done = f"{format_size(status.bytes_done) or '0'} of {format_size(status.total_bytes) or '0'}"
        operation_progress(op.pk, percent=round(FETCHED * status.percent / 100), message=f"Fetching: {done}")

    summary = restic.restore(
        repo, row.snapshot_id, tree, subdir=snapshot_root(row), include=include, verify=True,
        on_progress=progress, progress_fps=PROGRESS_FPS,
    )  # fmt: skip
    if summary.errors:
        raise RestoreError(f"restic could not restore everything: {summary.errors[-1]}")
    operation_progress(op.pk, log=f"fetched {summary.files_restored} entries ({format_size(summary.total_bytes)})")


@contextmanager
def staging_folder(operation_id: int) -> Iterator[str]:
    """``<STORAGE_ROOT>/.restore-staging/<operation id>``, made fresh (what a dead worker left
    there goes first), root's and 0700 all the way, removed afterwards whatever happens."""
    root = safetree.open_root(settings.STORAGE_ROOT)
    try:
        parent = safetree.ensure_dir_at(root, STAGING_FOLDER, uid=0, gid=0, mode=0o700)
    finally:
        os.close(root)
    name = str(operation_id)
    try:
        os.fchown(parent, 0, 0)
        os.fchmod(parent, 0o700)
        safetree.remove_at(parent, name)
        os.close(safetree.make_dir_at(parent, name))
        try:
            yield posixpath.join(settings.STORAGE_ROOT, STAGING_FOLDER, name)
        finally:
            safetree.remove_at(parent, name)
    finally:
        os.close(parent)
