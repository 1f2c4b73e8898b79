"""hostops.files against the real filesystem (the tests run as root, like the worker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostops import files
from hostops.errors import CommandFailed


def test_a_new_private_folder_belongs_to_the_member_with_mode_0750(tmp_path: Path) -> None:
    home = tmp_path / "homes" / "alice"
    files.ensure_dir(str(home.parent))
    assert files.ensure_private_dir(str(home), uid=1234, gid=1235) is True
    info = home.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (1234, 1235, 0o750)


def test_an_existing_folder_is_left_exactly_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    home.mkdir(mode=0o700)
    os.chown(home, 2000, 2000)
    (home / "notes.txt").write_text("mine")
    assert files.ensure_private_dir(str(home), uid=1234, gid=1234) is False
    info = home.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (2000, 0o700)
    assert (home / "notes.txt").read_text() == "mine"


def test_a_folder_whose_parent_is_missing_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed, match="mkdir"):
        files.ensure_private_dir(str(tmp_path / "missing" / "alice"), uid=1234, gid=1234)


def test_remove_tree_deletes_everything_below(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    (home / "deep" / "er").mkdir(parents=True)
    (home / "deep" / "er" / "f").write_text("x")
    files.remove_tree(str(home))
    assert not home.exists()
