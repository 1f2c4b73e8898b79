"""hostops.restic.walk against the real restic 0.18: every entry below a path handed over one at a
time (the restore drill samples a dataset of millions of files this way), on a local repository
and the same through rclone's local backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostops import restic
from hostops.errors import HostOpsError
from tests.hostops.test_restic import _use_tested_binary, needs_restic, repo, tree

__all__ = ["_use_tested_binary", "repo", "tree"]  # the fixtures, shared with test_restic.py


@needs_restic
def test_walk_hands_over_every_entry_below_the_path(repo: restic.Repository, tree: Path) -> None:
    summary = restic.backup(repo, [str(tree)])
    seen: list[restic.Node] = []

    count = restic.walk(repo, summary.snapshot_id, str(tree), seen.append)

    assert count == len(seen)
    assert seen == restic.ls(repo, summary.snapshot_id, str(tree), recursive=True)
    assert seen[0].path == str(tree)  # the folder itself first
    assert sum(node.type == "file" for node in seen) == 15
    assert restic.walk(repo, summary.snapshot_id, "/not/there", seen.append) == 0


def test_walk_refuses_what_is_not_a_snapshot_or_a_path(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x\n")
    repository = restic.Repository(location=str(tmp_path / "r"), password_file=str(tmp_path / "pw"))
    with pytest.raises(HostOpsError, match="is not a snapshot id"):
        restic.walk(repository, "nope", "/", print)
    with pytest.raises(HostOpsError, match="must start with /"):
        restic.walk(repository, "latest", "relative", print)
