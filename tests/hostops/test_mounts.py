"""hostops.mounts on the real kernel: read-only bind mounts at a fixed path (needs root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostops import mounts
from hostops.errors import HostOpsError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


@pytest.fixture
def point(tmp_path: Path):  # type: ignore[no-untyped-def]
    target = tmp_path / "fixed" / "homes" / "alice"
    yield target
    while mounts.is_mounted(str(target)):
        mounts.unmount(str(target), lazy=True)


def test_bind_shows_the_source_read_only_at_the_fixed_path(tmp_path: Path, point: Path) -> None:
    first, second = tmp_path / "snap1", tmp_path / "snap2"
    first.mkdir()
    second.mkdir()
    (first / "a.txt").write_text("one")
    (second / "a.txt").write_text("two")

    mounts.bind_readonly(str(first), str(point))
    assert mounts.is_mounted(str(point))
    assert (point / "a.txt").read_text() == "one"
    with pytest.raises(OSError, match="Read-only"):
        (point / "new.txt").write_text("x")
    assert oct(point.parent.stat().st_mode & 0o777) == "0o700"

    # A second bind over a leftover one replaces it: the target shows only the new source.
    mounts.bind_readonly(str(second), str(point))
    assert (point / "a.txt").read_text() == "two"
    assert mounts.mount_points().count(str(point)) == 1

    assert mounts.unmount(str(point)) is True
    assert not mounts.is_mounted(str(point))
    assert list(point.iterdir()) == []
    assert mounts.unmount(str(point)) is False


@pytest.mark.parametrize("bad", ["relative/path", "/a/../etc", "/", "/a b", "/a\nb", ""])
def test_bad_paths_are_refused_before_mount_runs(tmp_path: Path, bad: str) -> None:
    with pytest.raises(HostOpsError, match="not a plain absolute path"):
        mounts.bind_readonly(bad, str(tmp_path / "t"))
    with pytest.raises(HostOpsError, match="not a plain absolute path"):
        mounts.bind_readonly(str(tmp_path), bad)


def test_a_missing_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HostOpsError, match="not a folder"):
        mounts.bind_readonly(str(tmp_path / "gone"), str(tmp_path / "t"))
    assert not (tmp_path / "t").exists()
