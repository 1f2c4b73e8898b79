"""The restore drill's sample (backups/drill.py): a uniform random pick of files from each
source's restic snapshot, read as restic lists them, each source getting an equal share."""

from __future__ import annotations

import random
from dataclasses import dataclass

from backups import offsite_repo
from backups.models import ResticSnapshot
from hostops import restic

# A sampled file is read three times (restore, verify, hash): a huge checkpoint would make the
# drill a download of the repository. Larger files are left out of the sample, and counted.
MAX_FILE_BYTES = 256 * 1024 * 1024
# restic's --include takes patterns: a name with a pattern character, or one restic could only
# write with U+FFFD in place of its bytes, can't be named exactly, so it is not sampled.
_UNNAMEABLE = frozenset("*?[]\\\ufffd")


@dataclass(frozen=True)
class Candidate:
    """A regular file of a restic snapshot that the drill may sample: its absolute path in the
    restic snapshot and its path relative to the source's mount point (so in the local one)."""

    snapshot: ResticSnapshot
    path: str
    relative: str
    size: int


class Reservoir:
    """A uniform random pick of at most ``size`` regular files of one restic snapshot, kept as
    restic lists them (reservoir sampling), so a dataset of millions of files is read in
    constant memory."""

    def __init__(self, row: ResticSnapshot, size: int, rng: random.Random) -> None:
        self.row, self.size, self.rng = row, size, rng
        self.top = offsite_repo.mount_path(row.source)
        self.kept: list[Candidate] = []
        self.files = self.too_large = 0

    def offer(self, node: restic.Node) -> None:
        if node.type != "file" or not node.path.startswith(self.top + "/") or unnameable(node.path):
            return
        if (node.size or 0) > MAX_FILE_BYTES:
            self.too_large += 1
            return
        self.files += 1
        slot = len(self.kept) if len(self.kept) < self.size else self.rng.randrange(self.files)
        if slot < self.size:
            item = Candidate(self.row, node.path, node.path.removeprefix(self.top + "/"), node.size or 0)
            self.kept[slot : slot + 1] = [item]


def unnameable(path: str) -> bool:
    return any(char in _UNNAMEABLE or not char.isprintable() for char in path)


def pick_sample(candidates: dict[str, list[Candidate]], size: int, rng: random.Random) -> list[Candidate]:
    """``size`` files at random, each source getting an equal share (a source with fewer files
    gives the rest of its share to the others), so one large dataset does not crowd the homes out."""
    pools = {source: rng.sample(files_of, len(files_of)) for source, files_of in sorted(candidates.items())}
    sample: list[Candidate] = []
    while len(sample) < size and any(pools.values()):
        for pool in pools.values():
            if pool and len(sample) < size:
                sample.append(pool.pop())
    return sample
