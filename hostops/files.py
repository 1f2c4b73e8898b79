"""Folders on the host (members' homes and scratch), through argv lists with timeouts.

The worker runs as root beside the Docker engine; these are the only host filesystem changes
the portal makes outside Docker itself.
"""

from __future__ import annotations

import os

from hostops.errors import CommandFailed
from hostops.run import run

_TIMEOUT = 30
_DELETE_TIMEOUT = 3600  # a large home takes a while to delete


def ensure_dir(path: str) -> None:
    """Create ``path`` and its parents if missing (owned by root); an existing one is left."""
    run(["mkdir", "-p", "--", path], timeout=_TIMEOUT)


def ensure_private_dir(path: str, *, uid: int, gid: int) -> bool:
    """Create ``path`` (mode 0750, owned by uid:gid) unless it exists; True if it was created.
    An existing folder is never touched, so its owner's permissions and files stay as they are."""
    # mkdir without -p fails on an existing folder: only a new one is chowned.
    made = run(["mkdir", "-m", "0750", "--", path], timeout=_TIMEOUT, check=False, env={"LC_ALL": "C"})
    if made.returncode == 0:
        run(["chown", f"{uid}:{gid}", "--", path], timeout=_TIMEOUT)
        return True
    if "File exists" not in made.stderr:
        raise CommandFailed(made.argv, made.returncode, made.stdout, made.stderr)
    return False


def remove_tree(path: str) -> None:
    """Delete ``path`` and everything below it, never crossing into another mounted filesystem."""
    run(["rm", "-rf", "--one-file-system", "--", path], timeout=_DELETE_TIMEOUT)


def set_owner(path: str, *, uid: int, gid: int, mode: str = "0750") -> None:
    """Give ``path`` (a folder just made, such as a new subvolume) to uid:gid with ``mode``."""
    run(["chown", f"{uid}:{gid}", "--", path], timeout=_TIMEOUT)
    run(["chmod", mode, "--", path], timeout=_TIMEOUT)


def rename(source: str, target: str) -> None:
    """Move ``source`` to ``target`` on the same filesystem; refused if ``target`` exists."""
    run(["mv", "--no-clobber", "--no-target-directory", "--", source, target], timeout=_TIMEOUT)
    if not os.path.lexists(target) or os.path.lexists(source):
        raise CommandFailed(["mv", source, target], 1, "", f"{target} exists already; {source} was not moved")


def copy_tree(source: str, target: str, *, timeout: float = _DELETE_TIMEOUT) -> None:
    """Copy the contents of folder ``source`` into the existing folder ``target`` with owners,
    modes, times, links and extended attributes; on BTRFS the data is shared (reflinks), so
    even a large folder copies in seconds and takes no more space."""
    run(["cp", "-a", "--reflink=auto", "--no-target-directory", "--", source, target], timeout=timeout)
