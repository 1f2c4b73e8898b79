"""Read-only bind mounts: how the offsite backup sees the hour's snapshot of a subvolume at one
fixed path (``/run/portal-backup/homes/alice``), whatever the snapshot's own name. restic looks
for a parent snapshot by host and absolute paths, so a path that changed every night would make
it read every file again; at a fixed path it reads only what changed since the parent.

The target folder is made here (root-only, 0700 parents) and the mount is read-only from the
first moment (util-linux 2.27+ remounts a bind ``ro`` as part of the same call). Needs
CAP_SYS_ADMIN: the storage worker's container has it (docker-compose.yml).
"""

from __future__ import annotations

import os
import re

from hostops.errors import HostOpsError
from hostops.run import run

_TIMEOUT = 60.0
_ENV = {"LC_ALL": "C"}
_PATH = re.compile(r"/[A-Za-z0-9._@+/-]{0,4000}")


def _checked(path: str, what: str) -> str:
    if not isinstance(path, str) or not _PATH.fullmatch(path) or ".." in path.split("/") or path == "/":
        raise HostOpsError(f"{what} {path!r} is not a plain absolute path.")
    return path.rstrip("/")


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)


def mount_points() -> list[str]:
    """Every mount point of this process's namespace, as /proc/self/mountinfo lists them."""
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        return [_unescape(line.split()[4]) for line in mountinfo if len(line.split()) > 4]


def is_mounted(path: str) -> bool:
    """Whether something is mounted exactly at ``path``."""
    return os.path.realpath(_checked(path, "A mount point")) in set(mount_points())


def bind_readonly(source: str, target: str) -> None:
    """Mount folder ``source`` read-only at ``target`` (made if missing). A mount already at
    ``target`` (left by a worker that died) is taken off first, so the target always shows
    ``source`` afterwards."""
    source = _checked(source, "The folder to mount")
    target = _checked(target, "The mount point")
    if not os.path.isdir(source):
        raise HostOpsError(f"{source} is not a folder, so it cannot be mounted.")
    _make_private(target)
    while is_mounted(target):
        unmount(target)
    argv = ["mount", "--bind", "-o", "ro", "--", source, target]
    result = run(argv, timeout=_TIMEOUT, check=False, env=_ENV)
    if result.returncode != 0:
        raise HostOpsError(f"cannot mount {source} at {target}: {result.stderr.strip() or 'mount failed'}")
    if not is_mounted(target):
        raise HostOpsError(f"mount said it mounted {source} at {target}, but nothing is mounted there.")


def _make_private(target: str) -> None:
    # os.makedirs gives only the last folder its mode; the ones above it get 0755.
    missing = []
    path = target
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        os.mkdir(folder, 0o700)


def unmount(target: str, *, lazy: bool = False) -> bool:
    """Take the mount at ``target`` off; False when nothing was mounted there. ``lazy``
    detaches it even while a process still has files open in it (they keep reading)."""
    target = _checked(target, "The mount point")
    if not is_mounted(target):
        return False
    argv = ["umount", *(["--lazy"] if lazy else []), "--", target]
    result = run(argv, timeout=_TIMEOUT, check=False, env=_ENV)
    if result.returncode != 0:
        raise HostOpsError(f"cannot unmount {target}: {result.stderr.strip() or 'umount failed'}")
    return True
