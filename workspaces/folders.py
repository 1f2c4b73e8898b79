"""The host folders a workspace mounts. Docker refuses to bind a folder that does not exist,
so the worker makes the member's home and scratch (owned by them, 0750) before the first
start; an existing folder is never touched, so a member's own permissions and files stay as
they left them. Runs on the host's worker, which sees the same paths as its Docker engine.

The folders are plain directories here; when the storage app manages BTRFS subvolumes with
quotas it creates them first, and these steps find them present.
"""

from __future__ import annotations

import posixpath

from hostops import files
from hostops.types import ContainerSpec


def _member_folders(spec: ContainerSpec) -> list[str]:
    """The writable bind sources (home, scratch); build_spec has vetted every path."""
    return [mount.source for mount in spec.mounts if mount.kind == "bind" and not mount.read_only]


def prepare_folders(*, spec: ContainerSpec, uid: int) -> list[str]:
    """Create the missing folders of ``spec``; returns the ones created."""
    created = []
    for mount in spec.mounts:
        if mount.kind != "bind":
            continue
        files.ensure_dir(posixpath.dirname(mount.source))
        if mount.read_only:
            files.ensure_dir(mount.source)  # the shared datasets, root's
        elif files.ensure_private_dir(mount.source, uid=uid, gid=uid):
            created.append(mount.source)
    return created


def delete_member_data(*, spec: ContainerSpec) -> list[str]:
    """Delete the member's home and scratch (never the shared datasets). Irreversible."""
    folders = _member_folders(spec)
    for folder in folders:
        files.remove_tree(folder)
    return folders
