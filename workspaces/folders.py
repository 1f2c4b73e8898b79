"""The host folders a workspace mounts. Docker refuses to bind a folder that does not exist,
so the worker makes the member's home and scratch (owned by them, 0750) before the first
start; an existing folder is never touched, so a member's own permissions and files stay as
they left them. Runs on the host's worker, which sees the same paths as its Docker engine.

The folders are plain directories here; when the storage app manages BTRFS subvolumes with
quotas it creates them first, and these steps find them present.
"""

from __future__ import annotations

import posixpath

from hostops.errors import CommandFailed
from hostops.run import run
from hostops.types import ContainerSpec

_TIMEOUT = 30
_DELETE_TIMEOUT = 3600  # a large home takes a while to delete


def _member_folders(spec: ContainerSpec) -> list[str]:
    """The writable bind sources (home, scratch); build_spec has vetted every path."""
    return [mount.source for mount in spec.mounts if mount.kind == "bind" and not mount.read_only]


def prepare_folders(*, spec: ContainerSpec, uid: int) -> list[str]:
    """Create the missing folders of ``spec``; returns the ones created."""
    created = []
    for mount in spec.mounts:
        if mount.kind != "bind":
            continue
        run(["mkdir", "-p", "--", posixpath.dirname(mount.source)], timeout=_TIMEOUT)
        if mount.read_only:
            run(["mkdir", "-p", "--", mount.source], timeout=_TIMEOUT)  # the shared datasets, root's
            continue
        # mkdir without -p fails on an existing folder: only a new one is chowned.
        made = run(["mkdir", "-m", "0750", "--", mount.source], timeout=_TIMEOUT, check=False, env={"LC_ALL": "C"})
        if made.returncode == 0:
            run(["chown", f"{uid}:{uid}", "--", mount.source], timeout=_TIMEOUT)
            created.append(mount.source)
        elif "File exists" not in made.stderr:
            raise CommandFailed(made.argv, made.returncode, made.stdout, made.stderr)
    return created


def delete_member_data(*, spec: ContainerSpec) -> list[str]:
    """Delete the member's home and scratch (never the shared datasets). Irreversible."""
    folders = _member_folders(spec)
    for folder in folders:
        # --one-file-system: never follow into something mounted below the home.
        run(["rm", "-rf", "--one-file-system", "--", folder], timeout=_DELETE_TIMEOUT)
    return folders
