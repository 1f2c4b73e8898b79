"""Reading inside a snapshot and copying out of it without ever following a symlink.

A member's home is theirs to fill with anything, symlinks to /etc or to another member's home
included, and a snapshot keeps those links. Everything here walks from a folder opened once,
one component at a time, with ``O_NOFOLLOW`` relative to the previous folder's descriptor
(``openat``), so a link is an entry to show or copy as a link, never a way out. The copy
writes through descriptors too, into folders it made itself (``O_EXCL``), so a member
renaming folders in their live home while a restore runs cannot redirect root's writes.

The copy is ``cp -a --reflink=auto`` done with descriptors: data shared with the snapshot
(FICLONE) where the filesystem allows, modes and times kept, links copied as links, devices,
FIFOs and sockets skipped, owners set to the given uid:gid (or kept).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from hostops.errors import HostOpsError, NotFound

_FICLONE = 0x40049409  # linux/fs.h: share the source's extents (a reflink)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 8 * 1024 * 1024
LIST_LIMIT = 5000  # entries of one folder a page may show; more are counted, not listed


class UnsafePath(HostOpsError):
    """A relative path that would leave its folder, or a component that is not a real folder."""


def checked_parts(relative: str) -> list[str]:
    """The components of ``relative`` (a path inside a folder); UnsafePath for an absolute path,
    ``..`` or ``.``, an empty component, NUL or a line break. "" is the folder itself."""
    if not isinstance(relative, str):
        raise UnsafePath("a path inside the snapshot is text")
    if relative in ("", "."):
        return []
    if relative.startswith("/"):
        raise UnsafePath(f"{relative!r} is absolute; give a path inside the snapshot")
    if "\0" in relative or "\n" in relative or "\r" in relative or len(relative) > 4000:
        raise UnsafePath("the path holds a NUL or a line break, or is too long")
    parts = relative.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePath(f"{relative!r} has an empty, '.' or '..' component")
    return parts


def open_root(path: str) -> int:
    """A descriptor of the folder ``path`` (itself not a symlink); NotFound if it is missing."""
    try:
        return os.open(path, _DIR_FLAGS)
    except FileNotFoundError as exc:
        raise NotFound(f"{path} does not exist") from exc
    except OSError as exc:
        raise HostOpsError(f"{path} is not a folder that can be opened: {exc.strerror}") from exc


def open_dir_at(dir_fd: int, parts: Sequence[str]) -> int:
    """Walk ``parts`` down from ``dir_fd``, each a real folder (a symlink stops the walk)."""
    current = os.dup(dir_fd)
    try:
        for part in parts:
            try:
                following = os.open(part, _DIR_FLAGS, dir_fd=current)
            except FileNotFoundError as exc:
                raise NotFound(f"{'/'.join(parts)} does not exist in the snapshot") from exc
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(f"{part!r} in {'/'.join(parts)} is not a folder (a file or a link)") from exc
                raise HostOpsError(f"cannot open {'/'.join(parts)}: {exc.strerror}") from exc
            os.close(current)
            current = following
    except BaseException:
        os.close(current)
        raise
    return current


@contextmanager
def opened_dir(root: str, parts: Sequence[str]) -> Iterator[int]:
    """``root``/``parts`` opened without following links, closed afterwards."""
    top = open_root(root)
    try:
        fd = open_dir_at(top, parts)
    finally:
        os.close(top)
    try:
        yield fd
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Entry:
    """One entry of a folder as lstat sees it. ``name`` is the filesystem's bytes decoded with
    surrogateescape (os.fsdecode), so names that are not UTF-8 survive the trip."""

    name: str
    kind: str  # "dir", "file", "link" or "other"
    size: int
    mtime: float
    link_target: str = ""


@dataclass(frozen=True)
class Listing:
    entries: list[Entry] = field(default_factory=list)
    truncated: int = 0  # entries past LIST_LIMIT, not listed


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def list_dir(root: str, relative: str, *, limit: int = LIST_LIMIT) -> Listing:
    """The entries of ``root``/``relative``, folders first then by name, links not followed."""
    entries: list[Entry] = []
    seen = 0
    with opened_dir(root, checked_parts(relative)) as fd, os.scandir(fd) as scan:
        for item in scan:
            seen += 1
            if len(entries) >= limit:
                continue
            info = item.stat(follow_symlinks=False)
            kind = _kind(info.st_mode)
            target = os.readlink(item.name, dir_fd=fd) if kind == "link" else ""
            entries.append(Entry(item.name, kind, info.st_size, info.st_mtime, target))
    entries.sort(key=lambda entry: (entry.kind != "dir", entry.name))
    return Listing(entries, max(0, seen - limit))


def open_file(root: str, relative: str) -> tuple[int, int]:
    """A read descriptor of the regular file ``root``/``relative`` and its size; UnsafePath for
    a link or anything else that is not a plain file."""
    parts = checked_parts(relative)
    if not parts:
        raise UnsafePath("that is the snapshot itself, not a file")
    with opened_dir(root, parts[:-1]) as parent:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent)
        except FileNotFoundError as exc:
            raise NotFound(f"{relative} does not exist in the snapshot") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"{relative} is a link; links are not followed") from exc
            raise HostOpsError(f"cannot open {relative}: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafePath(f"{relative} is not a plain file")
    os.set_blocking(fd, True)
    return fd, info.st_size


# --- copying -----------------------------------------------------------------------------------


@dataclass
class CopyReport:
    files: int = 0
    folders: int = 0
    links: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # devices, FIFOs, sockets


def make_dir_at(dir_fd: int, name: str, *, mode: int = 0o700) -> int:
    """A new folder ``name`` in ``dir_fd`` (refused if anything has that name), opened."""
    os.mkdir(name, mode, dir_fd=dir_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def ensure_dir_at(dir_fd: int, name: str, *, uid: int, gid: int, mode: int = 0o750) -> int:
    """The folder ``name`` in ``dir_fd``, made for uid:gid if missing; UnsafePath if that name
    is a link or a file (a member may have planted one)."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        pass
    else:
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        os.chmod(name, mode, dir_fd=dir_fd)  # a folder, just made: chmod follows nothing here
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise UnsafePath(f"{name!r} exists and is not a folder (a file or a link)") from exc


def remove_at(dir_fd: int, name: str) -> None:
    """Delete ``name`` in ``dir_fd`` and, for a folder, all below it, never through a link."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def copy_entry(
    src_dir_fd: int,
    name: str,
    dst_dir_fd: int,
    dst_name: str,
    *,
    owner: tuple[int, int] | None,
    overwrite: bool = False,
    report: CopyReport | None = None,
) -> CopyReport:
    """Copy the entry ``name`` of ``src_dir_fd`` to ``dst_name`` in ``dst_dir_fd``: folders
    recursively, files with shared extents where possible, links as links. ``owner`` (uid, gid)
    owns everything made; None keeps the source's owners. Without ``overwrite`` an existing
    destination entry is an error (FileExistsError); with it, folders merge and anything else
    there is replaced."""
    report = report if report is not None else CopyReport()
    info = os.stat(name, dir_fd=src_dir_fd, follow_symlinks=False)
    uid, gid = owner if owner is not None else (info.st_uid, info.st_gid)
    kind = _kind(info.st_mode)
    if kind == "other":
        report.skipped.append(name)
        return report
    if overwrite:
        _clear_for(dst_dir_fd, dst_name, keep_dir=kind == "dir")
    if kind == "link":
        os.symlink(os.readlink(name, dir_fd=src_dir_fd), dst_name, dir_fd=dst_dir_fd)
        os.chown(dst_name, uid, gid, dir_fd=dst_dir_fd, follow_symlinks=False)
        os.utime(dst_name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=dst_dir_fd, follow_symlinks=False)
        report.links += 1
    elif kind == "file":
        _copy_file(src_dir_fd, name, dst_dir_fd, dst_name, info, uid, gid)
        report.files += 1
        report.bytes += info.st_size
    else:
        _copy_dir(src_dir_fd, name, dst_dir_fd, dst_name, info, uid, gid, owner, overwrite, report)
    return report


def _clear_for(dir_fd: int, name: str, *, keep_dir: bool) -> None:
    """Make room for ``name``: a folder stays when a folder comes (they merge)."""
    try:
        there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(there.st_mode):
        if not keep_dir:
            shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _copy_file(
    src_dir_fd: int, name: str, dst_dir_fd: int, dst_name: str, info: os.stat_result, uid: int, gid: int
) -> None:
    source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir_fd)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        target = os.open(dst_name, flags, 0o600, dir_fd=dst_dir_fd)
        try:
            try:
                fcntl.ioctl(target, _FICLONE, source)
            except OSError:  # another filesystem, or one without reflinks: copy the bytes
                while os.copy_file_range(source, target, _CHUNK):
                    pass
            os.fchown(target, uid, gid)
            os.fchmod(target, stat.S_IMODE(info.st_mode) & 0o1777)  # no set-id bits on a copy
            os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(target)
    finally:
        os.close(source)


def _copy_dir(
    src_dir_fd: int,
    name: str,
    dst_dir_fd: int,
    dst_name: str,
    info: os.stat_result,
    uid: int,
    gid: int,
    owner: tuple[int, int] | None,
    overwrite: bool,
    report: CopyReport,
) -> None:
    source = os.open(name, _DIR_FLAGS, dir_fd=src_dir_fd)
    try:
        if overwrite and _exists_at(dst_dir_fd, dst_name):  # a folder: _clear_for left only that
            target = os.open(dst_name, _DIR_FLAGS, dir_fd=dst_dir_fd)
        else:
            target = make_dir_at(dst_dir_fd, dst_name)  # 0700 root's until its contents are in
        try:
            with os.scandir(source) as scan:
                children = [item.name for item in scan]
            for child in children:
                copy_entry(source, child, target, child, owner=owner, overwrite=overwrite, report=report)
            os.fchown(target, uid, gid)
            os.fchmod(target, stat.S_IMODE(info.st_mode) & 0o1777)
            os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
            report.folders += 1
        finally:
            os.close(target)
    finally:
        os.close(source)
