"""Storage tests on a real BTRFS: a RAID10 over four loop devices made for the module, quotas
on, as on the server. Each test gets a storage root of its own on it, and everything it made
there is deleted afterwards."""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostops import btrfs
from tests.loopfs import MIB, LoopFs, loop_btrfs


@pytest.fixture(scope="module")
def storage_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopFs]:
    with loop_btrfs(tmp_path_factory.mktemp("storage"), count=4, profile="raid10") as made:
        btrfs.quota_enable(made.mount)
        btrfs.quota_rescan(made.mount, wait=True, timeout=60)
        yield made


@pytest.fixture
def btrfs_root(settings, storage_fs: LoopFs) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """STORAGE_ROOT (and the homes, scratch and datasets below it) on the loop filesystem."""
    root = os.path.join(storage_fs.mount, f"srv-{uuid.uuid4().hex[:8]}")
    os.mkdir(root)
    point_settings_at(settings, root)
    yield root
    wipe(storage_fs.mount, root)


@pytest.fixture
def plain_root(settings, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """STORAGE_ROOT on a plain (non-BTRFS) folder, as under make run."""
    root = str(tmp_path / "srv")
    point_settings_at(settings, root)
    return root


def point_settings_at(settings, root: str) -> None:  # type: ignore[no-untyped-def]
    settings.STORAGE_ROOT = root
    settings.WORKSPACE_HOME_ROOT = f"{root}/homes"
    settings.WORKSPACE_SCRATCH_ROOT = f"{root}/scratch"
    settings.WORKSPACE_DATASETS_PATH = f"{root}/datasets"


def wipe(mount: str, root: str) -> None:
    """Delete every subvolume under ``root`` (deepest first) and the group qgroups."""
    relative = posixpath.relpath(root, mount)
    subs = [sub.path for sub in btrfs.subvolume_list(mount) if sub.path.startswith(relative + "/")]
    for sub in sorted(subs, key=lambda path: path.count("/"), reverse=True):
        btrfs.subvolume_delete(posixpath.join(mount, sub))
    btrfs.qgroup_clear_stale(mount, timeout=60)
    for group in btrfs.qgroup_show(mount):
        if not group.qgroupid.startswith("0/"):
            btrfs.qgroup_destroy_group(mount, group.qgroupid)


def write_random(path: str, size: int) -> None:
    """``size`` incompressible bytes, flushed to disk."""
    with open(path, "wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
        handle.flush()
        os.fsync(handle.fileno())
