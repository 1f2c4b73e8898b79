"""hostops.safetree on a plain folder (tmp_path, not BTRFS: the copy falls back from reflinks
to copying bytes): paths are checked, links are never followed, a copy never writes through
anything already there."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hostops import safetree
from hostops.errors import NotFound


@pytest.mark.parametrize("bad", ["/etc", "../x", "a/../b", "a//b", "./a", "a/./b", "a\0b", "a\nb", "x" * 4001])
def test_paths_that_could_leave_the_folder_are_refused(bad: str) -> None:
    with pytest.raises(safetree.UnsafePath):
        safetree.checked_parts(bad)


def test_good_paths_split_into_components() -> None:
    assert safetree.checked_parts("") == []
    assert safetree.checked_parts("a/b c/d.txt") == ["a", "b c", "d.txt"]
    assert safetree.checked_parts("a/b/") == ["a", "b"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "snap"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "file.txt").write_bytes(b"hello")
    (root / "zz.txt").write_bytes(b"z" * 10)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (root / "out").symlink_to(outside)
    (root / "secret-link").symlink_to(outside / "secret")
    os.mkfifo(root / "pipe")
    return root


def test_a_listing_has_folders_first_and_shows_links_without_following(tree: Path) -> None:
    listing = safetree.list_dir(str(tree), "")
    assert [(e.name, e.kind) for e in listing.entries] == [
        ("dir", "dir"),
        ("out", "link"),
        ("pipe", "other"),
        ("secret-link", "link"),
        ("zz.txt", "file"),
    ]
    assert next(e for e in listing.entries if e.name == "out").link_target.endswith("/outside")
    with pytest.raises(safetree.UnsafePath):
        safetree.list_dir(str(tree), "out")
    with pytest.raises(NotFound):
        safetree.list_dir(str(tree), "nope")


def test_a_listing_is_capped(tree: Path) -> None:
    listing = safetree.list_dir(str(tree), "", limit=2)
    assert len(listing.entries) == 2
    assert listing.truncated == 3


def test_only_plain_files_open_and_links_never(tree: Path) -> None:
    fd, size = safetree.open_file(str(tree), "dir/file.txt")
    try:
        assert (os.read(fd, 100), size) == (b"hello", 5)
    finally:
        os.close(fd)
    for path in ("secret-link", "out/secret", "dir", "pipe"):
        with pytest.raises(safetree.UnsafePath):
            safetree.open_file(str(tree), path)


def test_a_copy_keeps_links_as_links_skips_pipes_drops_set_id_bits(tree: Path, tmp_path: Path) -> None:
    os.chmod(tree / "zz.txt", 0o4755)  # noqa: S103 (the copy must drop it)
    target = tmp_path / "target"
    target.mkdir()
    src = safetree.open_root(str(tree.parent))
    dst = safetree.open_root(str(target))
    try:
        report = safetree.copy_entry(src, "snap", dst, "copy", owner=(1234, 1234))
    finally:
        os.close(src)
        os.close(dst)
    copy = target / "copy"
    assert (copy / "dir" / "file.txt").read_bytes() == b"hello"
    assert os.readlink(copy / "out") == str(tree.parent / "outside")
    assert not (copy / "pipe").exists()
    assert report.skipped == ["pipe"]
    assert stat.S_IMODE(os.lstat(copy / "zz.txt").st_mode) == 0o755
    assert {os.lstat(path).st_uid for path in [copy, copy / "dir", copy / "out", copy / "zz.txt"]} == {1234}
    assert (report.files, report.links, report.folders) == (2, 2, 3)


def test_a_copy_never_writes_over_or_through_what_is_there(tree: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (target / "zz.txt").symlink_to(victim)
    src = safetree.open_root(str(tree))
    dst = safetree.open_root(str(target))
    try:
        with pytest.raises(FileExistsError):
            safetree.copy_entry(src, "zz.txt", dst, "zz.txt", owner=None)
        assert victim.read_bytes() == b"keep"
        safetree.copy_entry(src, "zz.txt", dst, "zz.txt", owner=None, overwrite=True)  # the link is replaced
    finally:
        os.close(src)
        os.close(dst)
    assert victim.read_bytes() == b"keep"
    assert not (target / "zz.txt").is_symlink()
    assert (target / "zz.txt").read_bytes() == b"z" * 10


def test_a_folder_named_like_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "restored").symlink_to(tmp_path / "elsewhere")
    fd = safetree.open_root(str(tmp_path))
    try:
        with pytest.raises(safetree.UnsafePath):
            safetree.ensure_dir_at(fd, "restored", uid=0, gid=0)
    finally:
        os.close(fd)
