"""hostops.restic against the real restic 0.18 with repositories in tmp_path, a local one and the
same through rclone's local backend, plus its parsers on recorded output (restic_recorded.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hostops import rclone, restic
from hostops.errors import (
    CommandTimeout,
    DumpTooLarge,
    HostOpsError,
    HostOpsTransient,
    PartialForget,
    RepositoryExists,
    RepositoryLocked,
    RepositoryMissing,
    ResticFailed,
    ResticInterrupted,
    WrongPassword,
)
from hostops.run import run
from tests.hostops import restic_recorded as rec
from tests.restic_locks import hold_lock

# scripts/test-setup.sh puts Debian trixie's restic 0.18 here; RESTIC_BINARY overrides it.
INSTALLED_0_18 = "/usr/local/lib/portal-test/bin/restic"
PASSWORD = "marker-Pa55-9f1c2e"  # a marker: it must show up in no argv and no message


def _restic_binary() -> tuple[str | None, str]:
    """The restic 0.18 (or later) to test with, or None and why not."""
    candidate = os.environ.get(restic.BINARY_ENV) or INSTALLED_0_18
    try:
        out = subprocess.run([candidate, "version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, f"no restic at {candidate}: scripts/test-setup.sh installs Debian trixie's 0.18 there"
    parts = out.split()[1].split(".") if len(out.split()) > 1 else []
    if len(parts) < 2 or (int(parts[0]), int(parts[1])) < (0, 18):
        return None, f"{candidate} is {out.strip()!r}; these tests need restic 0.18 (scripts/test-setup.sh)"
    return candidate, ""


BINARY, WHY_NOT = _restic_binary()
needs_restic = pytest.mark.skipif(BINARY is None, reason=WHY_NOT)


@pytest.fixture(autouse=True)
def _use_tested_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    if BINARY is not None:
        monkeypatch.setenv(restic.BINARY_ENV, BINARY)


# --- fixtures --------------------------------------------------------------------------------


def _password_file(directory: Path, password: str = PASSWORD) -> str:
    path = directory / "password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture(params=["local", "rclone"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> restic.Repository:
    """An initialised repository: a local folder, or the same through rclone's local backend."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    common = {"password_file": _password_file(secrets), "cache_dir": str(tmp_path / "cache")}
    if request.param == "local":
        repository = restic.Repository(location=str(tmp_path / "repo"), **common)
    else:
        config = rclone.write_config([rclone.RemoteConfig(name="vault", type="local")], secrets)
        repository = restic.Repository(location=f"rclone:vault:{tmp_path}/rrepo", rclone_config=config, **common)
    if BINARY is not None:
        restic.init(repository)
    return repository


@pytest.fixture
def local_repo(tmp_path: Path) -> restic.Repository:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    repository = restic.Repository(
        location=str(tmp_path / "repo"), password_file=_password_file(secrets), cache_dir=str(tmp_path / "cache")
    )
    if BINARY is not None:
        restic.init(repository)
    return repository


ODD_NAME = b"odd-\xff\xfe-bytes"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A generated tree: 12 random files in two levels, a name with a newline, one with bytes
    that are not UTF-8, an empty file."""
    root = tmp_path / "src"
    (root / "deep" / "er").mkdir(parents=True)
    for index in range(12):
        folder = root if index < 4 else root / "deep" if index < 8 else root / "deep" / "er"
        (folder / f"file{index:02}.bin").write_bytes(os.urandom(20_000 + index * 1000))
    (root / "deep" / "new\nline.txt").write_text("a name with a newline\n")
    with open(os.path.join(os.fsencode(root / "deep"), ODD_NAME), "wb") as handle:
        handle.write(b"odd bytes in the name\n")
    (root / "empty").write_bytes(b"")
    return root


def _files(root: Path) -> dict[bytes, str]:
    """relative path (bytes) -> sha256 of every file under root."""
    found = {}
    for folder, _dirs, names in os.walk(os.fsencode(root)):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, os.fsencode(root))] = hashlib.sha256(handle.read()).hexdigest()
    return found


# --- the real thing --------------------------------------------------------------------------


@needs_restic
def test_version_is_0_18() -> None:
    assert restic.version().startswith("0.18.")


@needs_restic
def test_backup_twice_list_ls_restore_dump(repo: restic.Repository, tree: Path, tmp_path: Path) -> None:
    seen: list[restic.Progress] = []
    when = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    # restic prints no status line for a backup that ends before its first tick: 12 MiB to read
    # makes sure there are some, however fast the machine.
    (tree / "weights.bin").write_bytes(os.urandom(12 << 20))
    first = restic.backup(
        repo, [str(tree)], time=when, tags=["home", "member-7"], host="gpu1", on_progress=seen.append, progress_fps=200
    )
    assert seen, "no status line reached on_progress"
    # restic prints status lines while it works (not always a last one at 100%)
    assert all(0 <= p.percent <= 100 and p.files_done <= p.total_files <= 16 for p in seen)
    assert [p.bytes_done for p in seen] == sorted(p.bytes_done for p in seen)
    assert max(p.total_bytes for p in seen) <= sum(f.stat().st_size for f in tree.rglob("*") if f.is_file())
    assert (first.files_new, first.files_changed, first.files_unmodified) == (16, 0, 0)
    assert first.total_files_processed == 16
    assert first.data_added > 0
    assert first.duration > 0
    assert not first.partial
    assert len(first.snapshot_id) == 64

    second = restic.backup(repo, [str(tree)], time=when + timedelta(hours=1), tags=["home", "member-7"], host="gpu1")
    assert (second.files_new, second.files_changed, second.files_unmodified) == (0, 0, 16)
    assert second.data_added < 2000  # folder metadata (atimes) at most; no file data again

    listed = restic.snapshots(repo, tags=["home"])
    assert [s.id for s in listed] == [first.snapshot_id, second.snapshot_id]
    assert listed[0].time == when
    assert listed[1].parent == first.snapshot_id
    assert listed[0].tags == ("home", "member-7")
    assert listed[0].hostname == "gpu1"
    assert listed[0].paths == (str(tree),)
    assert restic.snapshots(repo, tags=["other"]) == []
    assert [s.id for s in restic.snapshots(repo, paths=[str(tree)], host="gpu1")] == [
        first.snapshot_id,
        second.snapshot_id,
    ]

    # restic keeps the absolute path of what it backed up as the tree's structure
    top = restic.ls(repo, second.snapshot_id, "/")
    assert [(n.name, n.type) for n in top] == [(tree.parts[1], "dir")]
    deep = restic.ls(repo, second.snapshot_id, f"{tree}/deep")
    names = {node.name: node for node in deep}
    assert names["deep"].type == "dir"
    assert names["new\nline.txt"].size == len("a name with a newline\n")
    assert names["new\nline.txt"].path == f"{tree}/deep/new\nline.txt"
    odd = next(node for node in deep if node.name.startswith("odd-"))
    assert odd.name == "odd-\ufffd\ufffd-bytes"  # restic's JSON replaces the bytes; listed, not crashed
    assert odd.mtime is not None
    assert odd.mode & 0o777 == 0o644
    everything = restic.ls(repo, second.snapshot_id, str(tree), recursive=True)
    assert sum(node.type == "file" for node in everything) == 16
    assert restic.ls(repo, second.snapshot_id, "/not/there") == []
    with pytest.raises(HostOpsError, match="more than 3 entries"):
        restic.ls(repo, second.snapshot_id, str(tree), recursive=True, limit=3)

    restored = tmp_path / "restored"
    summary = restic.restore(repo, second.snapshot_id, str(restored), subdir=str(tree), verify=True)
    assert summary.verified
    assert summary.files_restored == summary.total_files == 18  # restic counts the two folders too
    assert _files(restored) == _files(tree)  # bytes identical, odd names included

    one = tmp_path / "one"
    partial = restic.restore(repo, "latest", str(one), subdir=f"{tree}/deep", include=["/new\nline.txt"], verify=True)
    assert partial.files_restored >= 1
    assert (one / "new\nline.txt").read_text() == "a name with a newline\n"
    assert not (one / "file04.bin").exists()
    (one / "new\nline.txt").write_text("changed here\n")
    kept = restic.restore(
        repo, "latest", str(one), subdir=f"{tree}/deep", include=["/new\nline.txt"], overwrite="never"
    )
    assert kept.files_skipped >= 1
    assert (one / "new\nline.txt").read_text() == "changed here\n"

    out = io.BytesIO()
    written = restic.dump(repo, first.snapshot_id, f"{tree}/deep/er/file11.bin", out, max_bytes=10**6)
    assert out.getvalue() == (tree / "deep" / "er" / "file11.bin").read_bytes()
    assert written == len(out.getvalue()) == 31_000
    with pytest.raises(DumpTooLarge, match="larger than 1000 bytes"):
        restic.dump(repo, first.snapshot_id, f"{tree}/deep/er/file11.bin", io.BytesIO(), max_bytes=1000)
    with pytest.raises(ResticFailed, match="not found in snapshot"):
        restic.dump(repo, first.snapshot_id, f"{tree}/nothing", io.BytesIO(), max_bytes=1000)


@needs_restic
def test_backup_time_keeps_its_zone(local_repo: restic.Repository, tree: Path) -> None:
    """restic reads --time in its local zone and stores the offset (the wall clock forget's daily
    buckets use): an IANA zone is kept, as Berlin's +01:00 in winter."""
    when = datetime(2024, 1, 15, 6, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    restic.backup(local_repo, [str(tree)], time=when, host="gpu1")
    (snapshot,) = restic.snapshots(local_repo)
    assert snapshot.time == when
    assert snapshot.time.utcoffset() == timedelta(hours=1)


@needs_restic
def test_forget_dry_run_reasons_then_forget(local_repo: restic.Repository, tree: Path) -> None:
    day = datetime(2024, 3, 5, tzinfo=UTC)
    ids = [
        restic.backup(local_repo, [str(tree)], time=day.replace(hour=hour), host="gpu1", tags=["home"]).snapshot_id
        for hour in (10, 11, 12)
    ]
    (group,) = restic.forget(local_repo, {"keep_daily": 7}, group_by="host,tags", dry_run=True)
    assert (group.host, group.tags) == ("gpu1", ("home",))
    assert [s.id for s in group.keep] == [ids[2], ids[0]]
    assert [s.id for s in group.remove] == [ids[1]]
    assert group.reason_for(ids[2]).matches == ("daily snapshot",)  # type: ignore[union-attr]
    assert group.reason_for(ids[0]).matches == ("oldest daily snapshot",)  # type: ignore[union-attr]
    assert len(restic.snapshots(local_repo)) == 3  # a dry run removes nothing

    restic.forget(local_repo, {"keep_daily": 7}, group_by="host,tags", prune=True)
    assert [s.id for s in restic.snapshots(local_repo)] == [ids[0], ids[2]]


@needs_restic
def test_forget_that_cannot_delete_a_snapshot_says_so(local_repo: restic.Repository, tree: Path) -> None:
    """An immutable snapshot file (chattr +i: even root cannot delete it) stands for a backend
    that refuses the deletion. restic 0.18.0 then says so on stderr but exits 0."""
    day = datetime(2024, 3, 5, tzinfo=UTC)
    old, new = (restic.backup(local_repo, [str(tree)], time=day.replace(hour=h), host="gpu1") for h in (10, 11))
    stuck = Path(local_repo.location) / "snapshots" / old.snapshot_id
    if run(["chattr", "+i", str(stuck)], timeout=30, check=False).returncode != 0:
        pytest.skip("chattr +i does not work on this filesystem")
    try:
        with pytest.raises(PartialForget) as caught:
            restic.forget(local_repo, {"keep_last": 1})
    finally:
        run(["chattr", "-i", str(stuck)], timeout=30)
    error = caught.value
    assert error.unremoved == (old.snapshot_id,)
    assert f"could not remove 1 snapshot ({old.snapshot_id[:8]})" in str(error)
    assert "operation not permitted" in str(error)
    (group,) = error.groups  # type: ignore[misc]
    assert [s.id for s in group.keep] == [new.snapshot_id]
    assert PASSWORD not in str(error)


@needs_restic
def test_backup_past_its_timeout_is_stopped_and_takes_its_lock_with_it(
    local_repo: restic.Repository, tree: Path
) -> None:
    """Past its timeout restic gets SIGINT (SIGKILL only if it does not stop in the grace period),
    so it stops as after Ctrl-C and removes its lock: a timed-out night needs no admin."""
    slow = restic.Repository(
        location=local_repo.location,
        password_file=local_repo.password_file,
        cache_dir=local_repo.cache_dir,
        limit_upload_kib=60,  # 300 kB at 60 KiB/s: about 5 s
    )
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match="ran past 1s and was stopped"):
        restic.backup(slow, [str(tree)], host="gpu1", timeout=1)
    assert time.monotonic() - started < 10  # well within the grace: restic stopped on SIGINT
    assert restic.snapshots(local_repo) == []
    assert restic.list_locks(local_repo) == []


def test_a_command_that_ignores_sigint_is_killed_after_the_grace(tmp_path: Path) -> None:
    from hostops.run import run_streaming

    script = tmp_path / "stubborn.sh"
    script.write_text("#!/bin/sh\ntrap '' INT\nwhile :; do sleep 0.1; done\n")
    script.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"ran past 0\.5s"):
        run_streaming([str(script)], lambda stream, line: None, timeout=0.5, interrupt_grace=1.0)
    assert 1.4 < time.monotonic() - started < 6


def _restic_child(location: str, command: str) -> int:
    """The pid of the running restic ``command`` on ``location``, found in /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--repo={location}".encode() in argv and command.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no restic {command} on {location} is running")


@needs_restic
def test_interrupted_backup_and_what_the_child_sees(local_repo: restic.Repository, tree: Path) -> None:
    """The running restic's own argv and environment (from /proc): the password file is named
    in its environment, the password is nowhere. A SIGINT ends it: restic 0.18.0 exits 1 with
    "context canceled" (not the documented 130), read as an interruption all the same."""
    slow = restic.Repository(
        location=local_repo.location,
        password_file=local_repo.password_file,
        cache_dir=local_repo.cache_dir,
        limit_upload_kib=100,
    )
    seen: dict[str, bytes] = {}

    def on_progress(progress: restic.Progress) -> None:
        if not seen:
            pid = _restic_child(slow.location, "backup")
            seen["cmdline"] = Path(f"/proc/{pid}/cmdline").read_bytes()
            seen["environ"] = Path(f"/proc/{pid}/environ").read_bytes()
            os.kill(pid, signal.SIGINT)

    with pytest.raises(ResticInterrupted) as caught:
        restic.backup(slow, [str(tree)], host="gpu1", on_progress=on_progress, progress_fps=20, timeout=60)
    assert isinstance(caught.value, HostOpsTransient)
    assert caught.value.exit_code in (1, 130)
    assert "was interrupted before it finished" in str(caught.value)
    assert PASSWORD.encode() not in seen["cmdline"]
    assert b"--limit-upload=100" in seen["cmdline"].split(b"\0")
    environ = seen["environ"].split(b"\0")
    assert f"RESTIC_PASSWORD_FILE={slow.password_file}".encode() in environ
    assert PASSWORD.encode() not in seen["environ"]


@needs_restic
def test_backup_of_nothing_that_exists_fails_in_restics_words(local_repo: restic.Repository, tmp_path: Path) -> None:
    with pytest.raises(ResticFailed, match="all source directories/files do not exist") as caught:
        restic.backup(local_repo, [str(tmp_path / "gone")])
    assert caught.value.exit_code == 1
    assert str(caught.value).startswith(f"restic backup on {local_repo.location} failed (exit 1): ")


@needs_restic
def test_check_reads_a_subset(repo: restic.Repository, tree: Path) -> None:
    restic.backup(repo, [str(tree)], host="gpu1")
    result = restic.check(repo, read_data_subset="1/12")
    assert result.ok
    assert (result.num_errors, result.broken_packs, result.suggest_prune) == (0, (), False)


@needs_restic
def test_stats_of_the_repository_and_of_a_restore(local_repo: restic.Repository, tree: Path) -> None:
    size = sum(f.stat().st_size for f in tree.rglob("*") if f.is_file())
    assert restic.stats(local_repo).snapshots_count == 0
    first = restic.backup(local_repo, [str(tree)], host="gpu1")
    stored = restic.stats(local_repo)
    assert stored.snapshots_count == 1
    assert 0.9 * size < stored.total_size < 1.1 * size  # random bytes do not compress
    assert stored.total_uncompressed_size is not None
    assert stored.total_uncompressed_size >= size
    restored = restic.stats(local_repo, first.snapshot_id, mode="restore-size")
    assert restored.total_size == size
    assert restored.total_file_count == 15 + len(tree.parts) - 1 + 2  # restic counts the folders too
    with pytest.raises(HostOpsError, match="not one of raw-data, restore-size"):
        restic.stats(local_repo, mode="files-by-contents")


@needs_restic
def test_check_finds_a_damaged_pack(local_repo: restic.Repository, tree: Path) -> None:
    restic.backup(local_repo, [str(tree)], host="gpu1")
    pack = max((Path(local_repo.location) / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    data = bytearray(pack.read_bytes())
    data[100] ^= 0xFF
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))
    result = restic.check(local_repo, read_data_subset="100%")
    assert not result.ok
    assert result.num_errors >= 1 or result.broken_packs


@needs_restic
def test_missing_repository_is_exit_10(tmp_path: Path) -> None:
    repository = restic.Repository(location=str(tmp_path / "nothing"), password_file=_password_file(tmp_path))
    with pytest.raises(RepositoryMissing) as caught:
        restic.snapshots(repository)
    assert caught.value.exit_code == 10
    assert (
        str(caught.value) == f"No repository at {tmp_path / 'nothing'}: an admin creates it with 'Create repository'."
    )
    assert PASSWORD not in str(caught.value)
    assert not (tmp_path / "nothing").exists()  # never created implicitly


@needs_restic
def test_missing_repository_through_rclone(tmp_path: Path) -> None:
    config = rclone.write_config([rclone.RemoteConfig(name="vault", type="local")], tmp_path)
    repository = restic.Repository(
        location=f"rclone:vault:{tmp_path}/none", password_file=_password_file(tmp_path), rclone_config=config
    )
    with pytest.raises(RepositoryMissing, match="an admin creates it"):
        restic.snapshots(repository)


@needs_restic
def test_init_twice_is_refused(local_repo: restic.Repository) -> None:
    with pytest.raises(RepositoryExists, match="already a repository"):
        restic.init(local_repo)


@needs_restic
def test_wrong_password_is_exit_12_and_never_shown(local_repo: restic.Repository, tmp_path: Path) -> None:
    wrong_dir = tmp_path / "wrong"
    wrong_dir.mkdir()
    wrong = restic.Repository(location=local_repo.location, password_file=_password_file(wrong_dir, "marker-wrong-77"))
    with pytest.raises(WrongPassword) as caught:
        restic.snapshots(wrong)
    assert caught.value.exit_code == 12
    assert "does not open the repository" in str(caught.value)
    for secret in ("marker-wrong-77", PASSWORD):
        assert secret not in str(caught.value)
        assert not any(secret in arg for arg in caught.value.argv)
    assert f"--repo={local_repo.location}" in caught.value.argv


@needs_restic
def test_missing_password_file(local_repo: restic.Repository, tmp_path: Path) -> None:
    gone = restic.Repository(location=local_repo.location, password_file=str(tmp_path / "no-such-file"))
    with pytest.raises(ResticFailed, match=r"password file .*no-such-file of the repository .* is missing"):
        restic.snapshots(gone)


@pytest.fixture
def holder(local_repo: restic.Repository) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        started.append(hold_lock(local_repo))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@needs_restic
def test_live_lock_blocks_forget_until_removed(
    local_repo: restic.Repository, tree: Path, holder: Callable[[], subprocess.Popen[bytes]]
) -> None:
    restic.backup(local_repo, [str(tree)], host="gpu1")
    proc = holder()
    time.sleep(1.1)
    with pytest.raises(RepositoryLocked) as caught:
        restic.forget(local_repo, {"keep_last": 1})
    error = caught.value
    assert isinstance(error, HostOpsTransient)
    assert error.exit_code == 11
    assert error.holder == f"PID {proc.pid} on {socket.gethostname()} by root"
    assert error.age_s is not None
    assert error.age_s >= 1
    assert f"locked by PID {proc.pid}" in str(error)
    assert PASSWORD not in str(error)
    assert PASSWORD not in Path(f"/proc/{proc.pid}/cmdline").read_text()  # the holder's argv, as ours

    (lock,) = restic.list_locks(local_repo)
    assert (lock.pid, lock.hostname, lock.username, lock.exclusive) == (proc.pid, socket.gethostname(), "root", False)
    assert lock.age_s >= 1
    assert abs((datetime.now(UTC) - lock.time).total_seconds() - lock.age_s) < 30

    assert restic.unlock(local_repo) == 0  # only stale locks: the holder is alive
    assert len(restic.list_locks(local_repo)) == 1
    assert restic.unlock(local_repo, remove_all=True) == 1
    assert restic.list_locks(local_repo) == []
    (group,) = restic.forget(local_repo, {"keep_last": 1})
    assert len(group.keep) == 1


@needs_restic
def test_retry_lock_waits_for_a_job_to_finish(
    local_repo: restic.Repository, tree: Path, holder: Callable[[], subprocess.Popen[bytes]]
) -> None:
    restic.backup(local_repo, [str(tree)], host="gpu1")
    proc = holder()
    patient = dataclasses.replace(local_repo, retry_lock_s=60)
    stdin = proc.stdin
    assert stdin is not None

    def end_holder() -> None:
        stdin.write(b"what the holder backs up\n")  # an empty stdin would be a partial backup (exit 3)
        stdin.close()

    finish = threading.Timer(2.0, end_holder)
    finish.start()
    started = time.monotonic()
    try:
        groups = restic.forget(patient, {"keep_last": 1}, group_by="host")
    finally:
        finish.cancel()
    assert time.monotonic() - started >= 1.5
    assert proc.wait(timeout=30) == 0  # the holder finished its own backup
    assert sorted(group.host for group in groups) == ["gpu1", "holder"]


@needs_restic
def test_lock_of_a_killed_backup_stays_until_unlock(
    local_repo: restic.Repository, holder: Callable[[], subprocess.Popen[bytes]]
) -> None:
    proc = holder()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (lock,) = restic.list_locks(local_repo)  # a killed job leaves its lock behind
    assert lock.pid == proc.pid
    with pytest.raises(RepositoryLocked, match=f"PID {proc.pid}"):
        restic.forget(local_repo, {"keep_last": 1})
    assert restic.unlock(local_repo) == 1  # its process is gone from this host: stale, so removed
    assert restic.list_locks(local_repo) == []
    assert restic.forget(local_repo, {"keep_last": 1}) == []


def _unreadable_kernel_file() -> str | None:
    """A write-only sysfs file (mode 0200, such as /sys/bus/pci/rescan): open for reading fails
    with EACCES even for root, so restic honestly reads only part of its source."""
    for folder, dirs, names in os.walk("/sys"):
        if folder.count("/") >= 4:
            dirs.clear()
        for name in names:
            path = os.path.join(folder, name)
            try:
                if os.lstat(path).st_mode & 0o777 != 0o200:
                    continue
                with open(path, "rb"):
                    pass
            except PermissionError:
                return path
            except OSError:
                continue
    return None


@needs_restic
def test_backup_reading_part_of_the_source_is_partial(local_repo: restic.Repository, tree: Path) -> None:
    unreadable = _unreadable_kernel_file()
    if unreadable is None:
        pytest.skip("no write-only kernel file here to make restic read only part of its source")
    summary = restic.backup(local_repo, [str(tree), unreadable], host="gpu1", one_file_system=False)
    assert summary.partial
    assert summary.snapshot_id  # the snapshot was written all the same
    assert summary.files_new == 15
    assert any(unreadable in error and "permission denied" in error for error in summary.errors)
    assert len(restic.snapshots(local_repo)) == 1


@needs_restic
def test_backup_arguments_are_validated_before_anything_runs(local_repo: restic.Repository, tree: Path) -> None:
    naive = datetime(2024, 1, 1, 6, 0)  # noqa: DTZ001 - the point of the test
    for bad, message in [
        ({"paths": []}, "non-empty list"),
        ({"paths": "relative"}, "non-empty list"),
        ({"paths": ["relative/path"]}, "absolute path"),
        ({"paths": ["--password=x"]}, "absolute path"),
        ({"paths": [str(tree)], "tags": ["a,b"]}, "not a tag"),
        ({"paths": [str(tree)], "host": "-h"}, "not a host name"),
        ({"paths": [str(tree)], "time": naive}, "aware datetime"),
        ({"paths": [str(tree)], "excludes": ["a\nb"]}, "not an exclude pattern"),
        ({"paths": [str(tree)], "progress_fps": 0}, "progress_fps"),
    ]:
        with pytest.raises(HostOpsError, match=message):
            restic.backup(local_repo, **bad)  # type: ignore[arg-type]
    assert restic.snapshots(local_repo) == []


@needs_restic
def test_backup_with_excludes(local_repo: restic.Repository, tree: Path, tmp_path: Path) -> None:
    exclude_file = tmp_path / "excludes"
    exclude_file.write_text("er\n")
    summary = restic.backup(local_repo, [str(tree)], excludes=["*.txt"], exclude_file=str(exclude_file))
    assert summary.files_new == 15 - 1 - 4  # the .txt and the four files of deep/er


# --- arguments and secrets (no restic needed) ------------------------------------------------


def test_repository_options_and_env_hold_no_secret(tmp_path: Path) -> None:
    repository = restic.Repository(
        location="rclone:gdrive:backups/gpu1",
        password_file=_password_file(tmp_path),
        rclone_config="/etc/portal/rclone/rclone.conf",
        rclone_program="/usr/bin/rclone",
        rclone_args="serve restic --stdio --drive-stop-on-upload-limit",
        limit_upload_kib=restic.limit_from_mbps(100),
        cache_dir="/var/cache/portal/restic",
    )
    argv = restic.command_argv(repository, "snapshots")
    assert argv[1:] == [
        "--json",
        "--repo=rclone:gdrive:backups/gpu1",
        "-o",
        "rclone.program=/usr/bin/rclone",
        "-o",
        "rclone.args=serve restic --stdio --drive-stop-on-upload-limit",
        "--limit-upload=12207",
        "--cache-dir=/var/cache/portal/restic",
        "snapshots",
    ]
    assert not any(PASSWORD in arg for arg in argv)
    env = repository.env()
    assert env["RESTIC_PASSWORD_FILE"] == str(tmp_path / "password")
    assert env["RCLONE_CONFIG"] == "/etc/portal/rclone/rclone.conf"
    assert env["RESTIC_PASSWORD"] == env["RESTIC_PASSWORD_COMMAND"] == env["RESTIC_REPOSITORY"] == ""
    assert PASSWORD not in json.dumps(env)


def test_binary_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(restic.BINARY_ENV, "/opt/restic-0.18/restic")
    assert restic.command_argv(None, "version")[0] == "/opt/restic-0.18/restic"
    monkeypatch.delenv(restic.BINARY_ENV)
    assert restic.binary() == "restic"


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("", "not empty"),
        ("relative/repo", "not a repository location"),
        ("s3:bucket/x", "not a repository location"),
        ("sftp:host:/x", "not a repository location"),
        ("rclone:gdrive", "lacks the remote's path"),
        ("rclone:-rf:/x", "not a remote name"),
        ("rclone:gdrive:a/../b", "climbs out"),
        ("/srv/backup/../etc", "climbs out"),
        ("/srv/backup\n--x", "control characters"),
    ],
)
def test_bad_locations_are_refused(location: str, message: str) -> None:
    with pytest.raises(HostOpsError, match=message):
        restic.Repository(location=location, password_file="/etc/portal/restic.pass")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"password_file": "relative"}, "password file must be an absolute path"),
        ({"rclone_config": "rclone.conf"}, "rclone config must be an absolute path"),
        ({"rclone_program": "rclone; rm -rf /"}, "not a program name"),
        ({"rclone_args": "serve\nrestic"}, "one non-empty line"),
        ({"limit_upload_kib": 0}, "whole number of KiB/s"),
        ({"cache_dir": "cache"}, "cache folder must be an absolute path"),
        ({"retry_lock_s": 0}, "retry_lock_s 0"),
        ({"retry_lock_s": True}, "retry_lock_s True"),
    ],
)
def test_bad_repository_options_are_refused(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"location": "/srv/backup", "password_file": "/etc/portal/restic.pass", **changes}
    with pytest.raises(HostOpsError, match=message):
        restic.Repository(**fields)  # type: ignore[arg-type]


def test_output_restic_no_longer_prints_is_a_clear_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restic whose JSON changed (a stand-in script: such a release does not exist here)."""
    stand_in = tmp_path / "restic"
    stand_in.write_text('#!/bin/sh\necho \'{"snapshots": "elsewhere"}\'\n')
    stand_in.chmod(0o755)
    monkeypatch.setenv(restic.BINARY_ENV, str(stand_in))
    repository = restic.Repository(location=str(tmp_path / "repo"), password_file=_password_file(tmp_path))
    with pytest.raises(ResticFailed, match="printed output this portal cannot read"):
        restic.snapshots(repository)
    with pytest.raises(ResticFailed, match="version gave no version"):
        restic.version()


def test_dump_past_its_timeout_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dump that hangs (a stand-in that writes a little, then sleeps) is killed, group and all."""
    stand_in = tmp_path / "restic"
    stand_in.write_text("#!/bin/sh\nprintf partial\nsleep 60\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv(restic.BINARY_ENV, str(stand_in))
    repository = restic.Repository(location=str(tmp_path / "repo"), password_file=_password_file(tmp_path))
    out = io.BytesIO()
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match="ran past 1s"):
        restic.dump(repository, "latest", "/a/file", out, max_bytes=1000, timeout=1)
    assert time.monotonic() - started < 10
    assert out.getvalue() == b"partial"


SAVE_GAVE_UP = "Save(<data/e7e27ef141>) failed: write /repo/data/e7/e7e27ef1-tmp-20: no space left on device"


def _backup_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr_line: str, *, on_int: str, ticks: int = 300
) -> None:
    """A restic that says ``stderr_line`` mid-backup, then goes on printing a status line every
    0.2 s (``ticks`` of them, a minute by default), as restic 0.18.0 was seen to after it gave up
    on a pack (a full target); SIGINT runs ``on_int``. It ends with a summary if nobody stops it."""
    status = """echo '{"message_type":"status","percent_done":1}'"""
    script = [
        "#!/bin/sh",
        f"trap '{on_int}' INT",
        """echo '{"message_type":"status","percent_done":0.5}'""",
        f"echo '{stderr_line}' >&2",
        f"for i in $(seq 1 {ticks}); do {status}; sleep 0.2; done",
        """echo '{"message_type":"summary","snapshot_id":"abc"}'""",
    ]
    stand_in = tmp_path / "restic"
    stand_in.write_text("\n".join(script) + "\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv(restic.BINARY_ENV, str(stand_in))


def test_a_backup_that_gave_up_saving_a_pack_is_stopped_at_once_with_restics_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupted = 'echo "signal interrupt received, cleaning up" >&2; exit 1'
    _backup_stand_in(tmp_path, monkeypatch, SAVE_GAVE_UP, on_int=interrupted)
    repository = restic.Repository(location=str(tmp_path / "repo"), password_file=_password_file(tmp_path))
    started = time.monotonic()
    with pytest.raises(ResticFailed) as failed:
        restic.backup(repository, [str(tmp_path)])
    assert time.monotonic() - started < 10  # not the minute it would have gone on for
    assert str(failed.value) == (
        f"restic backup on {tmp_path / 'repo'} could not write to the repository and was stopped: {SAVE_GAVE_UP}"
    )
    assert failed.value.exit_code == 1


def test_a_restic_that_ignores_the_interrupt_after_giving_up_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _backup_stand_in(tmp_path, monkeypatch, SAVE_GAVE_UP, on_int=":")
    monkeypatch.setattr(restic, "_STOP_GRACE", 1.0)
    repository = restic.Repository(location=str(tmp_path / "repo"), password_file=_password_file(tmp_path))
    started = time.monotonic()
    with pytest.raises(ResticFailed, match="could not write to the repository and was stopped"):
        restic.backup(repository, [str(tmp_path)])
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "line",
    [
        "Save(<data/e7e27ef141>) returned error, retrying after 1.2s: write /repo/data/e7/x: no space left on device",
        "Save(<lock/9fad3f38d4>) failed: write /repo/locks/9fad3f38d4-tmp: no space left on device",
        "Load(<data/3c88192929>, 0, 0) failed: circuit breaker open for file <data/3c88192929>",
    ],
)
def test_a_retry_or_a_lock_refresh_that_failed_does_not_stop_the_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    _backup_stand_in(tmp_path, monkeypatch, line, on_int="exit 1", ticks=5)
    repository = restic.Repository(location=str(tmp_path / "repo"), password_file=_password_file(tmp_path))
    assert restic.backup(repository, [str(tmp_path)]).snapshot_id == "abc"


def test_limit_from_mbps_is_kib_per_second() -> None:
    assert restic.limit_from_mbps(100) == 12207
    assert restic.limit_from_mbps(1000) == 122070
    assert restic.limit_from_mbps(0.5) == 61
    for bad in (0, -5, float("nan"), float("inf"), 0.001):
        with pytest.raises(HostOpsError):
            restic.limit_from_mbps(bad)


def test_policy_args() -> None:
    assert restic.policy_args({"keep_daily": 7, "keep_weekly": 52, "keep_within_daily": "1y6m"}) == [
        "--keep-daily=7",
        "--keep-weekly=52",
        "--keep-within-daily=1y6m",
    ]
    assert restic.policy_args({"keep_last": -1}) == ["--keep-last=-1"]
    for bad, message in [
        ({}, "empty one is refused"),
        ({"keep_daily": 0}, "whole number"),
        ({"keep_daily": True}, "whole number"),
        ({"keep_daily": "7"}, "whole number"),
        ({"keep_within": "7 days"}, "duration"),
        ({"keep_within": ""}, "duration"),
        ({"keep_tag": "x"}, "not a retention rule"),
        ({"prune": 1}, "not a retention rule"),
    ]:
        with pytest.raises(HostOpsError, match=message):
            restic.policy_args(bad)  # type: ignore[arg-type]


def test_forget_arguments_are_validated(tmp_path: Path) -> None:
    repository = restic.Repository(location=str(tmp_path / "repo"), password_file=_password_file(tmp_path))
    with pytest.raises(HostOpsError, match="not a grouping"):
        restic.forget(repository, {"keep_daily": 7}, group_by="host,user")
    with pytest.raises(HostOpsError, match="cannot prune"):
        restic.forget(repository, {"keep_daily": 7}, dry_run=True, prune=True)


@pytest.mark.parametrize("subset", ["1/12", "12/12", "5%", "2.5%", "100%", "50G", "500M"])
def test_good_subsets(subset: str) -> None:
    assert restic.validate_subset(subset) == subset


@pytest.mark.parametrize("subset", ["0/12", "13/12", "1/0", "x", "", "-1/12", "1/12 --read-data", "101%"])
def test_bad_subsets(subset: str) -> None:
    with pytest.raises(HostOpsError, match="not a data subset"):
        restic.validate_subset(subset)


def test_snapshot_ids_and_paths_are_validated(tmp_path: Path) -> None:
    repository = restic.Repository(location=str(tmp_path / "repo"), password_file=_password_file(tmp_path))
    for bad in ("--help", "abc", "LATEST", "latest:/x", "0123456z"):
        with pytest.raises(HostOpsError, match="not a snapshot id"):
            restic.ls(repository, bad)
    with pytest.raises(HostOpsError, match="must start with /"):
        restic.ls(repository, "latest", "relative")
    with pytest.raises(HostOpsError, match="must start with /"):
        restic.dump(repository, "latest", "--x", io.BytesIO(), max_bytes=10)
    with pytest.raises(HostOpsError, match="restore target must be an absolute path"):
        restic.restore(repository, "latest", "here")
    with pytest.raises(HostOpsError, match="overwrite 'sometimes'"):
        restic.restore(repository, "latest", "/tmp/x", overwrite="sometimes")
    with pytest.raises(HostOpsError, match="max_bytes"):
        restic.dump(repository, "latest", "/x", io.BytesIO(), max_bytes=-1)


# --- parsers on recorded output --------------------------------------------------------------


def _objects(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_parse_status_lines() -> None:
    mid, near, done = (restic.parse_status(data) for data in _objects(rec.BACKUP_STATUS))
    assert mid == restic.Progress(
        percent=25.0,
        files_done=0,
        total_files=8,
        bytes_done=2_000_000,
        total_bytes=8_000_000,
        seconds_remaining=None,
        current_files=("/big/f1", "/big/f4"),
        error_count=0,
    )
    assert (near.percent, near.files_done, near.bytes_done) == (90.0, 19, 1_800_002)
    assert (done.percent, done.files_done, done.total_files) == (100.0, 22, 22)
    restore_status = restic.parse_status(_objects(rec.RESTORE_OUTPUT)[0])
    assert (restore_status.total_files, restore_status.total_bytes, restore_status.files_done) == (9, 8_000_000, 0)
    eta = restic.parse_status({"message_type": "status", "percent_done": 0.5, "seconds_remaining": 42})
    assert eta.seconds_remaining == 42


def test_parse_backup_summaries() -> None:
    first = restic.parse_backup_summary(json.loads(rec.BACKUP_SUMMARY_FIRST))
    assert first.snapshot_id == "b2f2d9803e70315f6d3cd9729c92c21de93e95b40c0abfc7c1be9dae4b9b9b4e"
    assert (first.files_new, first.files_unmodified, first.dirs_new) == (22, 0, 3)
    assert (first.data_added, first.total_bytes_processed, first.total_files_processed) == (2_008_639, 2_000_002, 22)
    assert first.duration == pytest.approx(1.0243, abs=1e-4)
    assert not first.partial
    second = restic.parse_backup_summary(json.loads(rec.BACKUP_SUMMARY_SECOND))
    assert (second.files_new, second.files_changed, second.files_unmodified, second.data_added) == (0, 0, 22, 0)


def test_error_lines_and_exit_errors_in_words() -> None:
    error, exit_error = _objects(rec.BACKUP_PARTIAL_STDERR)
    assert restic.error_text(error) == "open /sys/class/zram-control/hot_remove: permission denied"
    assert restic.error_text({"message_type": "error", "error": {"message": "boom"}, "item": "/a/b"}) == "/a/b: boom"
    assert exit_error["code"] == 3


def _failure(command: str, code: int, stderr: str, repo: restic.Repository | None = None) -> ResticFailed:
    outcome = restic._Outcome(argv=["restic", "--json", command], returncode=code)
    for data in _objects(stderr):
        outcome.exit_error = str(data["message"])
    return restic.failure(command, outcome, repo)


def test_failure_mapping_on_recorded_exit_errors(tmp_path: Path) -> None:
    repository = restic.Repository(location="/srv/backup/gpu1", password_file=_password_file(tmp_path))
    locked = _failure("forget", 11, rec.EXIT_ERROR_LOCKED, repository)
    assert isinstance(locked, RepositoryLocked)
    assert isinstance(locked, HostOpsTransient)
    assert locked.holder == "PID 31948 on vm by root"
    assert locked.age_s == pytest.approx(2.05, abs=0.01)
    assert str(locked).startswith(
        "The repository at /srv/backup/gpu1 is locked by PID 31948 on vm by root (lock taken 2 s ago)"
    )
    missing = _failure("snapshots", 10, rec.EXIT_ERROR_MISSING, repository)
    assert isinstance(missing, RepositoryMissing)
    assert "No repository at /srv/backup/gpu1" in str(missing)
    wrong = _failure("snapshots", 12, rec.EXIT_ERROR_PASSWORD, repository)
    assert isinstance(wrong, WrongPassword)
    interrupted = restic.failure("backup", restic._Outcome(argv=["restic"], returncode=130), repository)
    assert isinstance(interrupted, HostOpsTransient)
    assert "interrupted" in str(interrupted)
    killed = restic.failure("backup", restic._Outcome(argv=["restic"], returncode=-9), repository)
    assert "killed by signal 9" in str(killed)
    odd = _failure("check", 42, '{"message_type":"exit_error","code":42,"message":"Fatal: odd"}', repository)
    assert type(odd) is ResticFailed
    assert str(odd) == "restic check on /srv/backup/gpu1 failed (exit 42, a status restic does not document): odd"


def test_an_interrupt_reported_as_exit_1_is_an_interruption(tmp_path: Path) -> None:
    repository = restic.Repository(location="/srv/backup/gpu1", password_file=_password_file(tmp_path))
    outcome = restic._Outcome(argv=["restic"], returncode=1)
    for line in rec.BACKUP_INTERRUPTED_STDERR.splitlines():
        data = json.loads(line) if line.startswith("{") else None
        if data is None:
            outcome.stderr_tail.append(line)
        else:
            outcome.exit_error = data["message"]
    error = restic.failure("backup", outcome, repository)
    assert isinstance(error, ResticInterrupted)
    assert str(error) == "restic backup on /srv/backup/gpu1 was interrupted before it finished."


def test_unremoved_snapshots_are_read_from_forgets_words() -> None:
    ids = [match[1] for match in map(restic._UNREMOVED.search, rec.FORGET_UNREMOVED_STDERR.splitlines()) if match]
    assert ids == ["277aff0a49dd5ddf14d83672d0dfd0b0c86409c034454ec9be365164369a05d2"]


def test_messages_never_carry_the_password(tmp_path: Path) -> None:
    repository = restic.Repository(location="/srv/backup/gpu1", password_file=_password_file(tmp_path))
    quoting = json.dumps({"message_type": "exit_error", "code": 1, "message": f"Fatal: bad key {PASSWORD} here"})
    error = _failure("snapshots", 1, quoting, repository)
    assert PASSWORD not in str(error)
    assert "bad key [password] here" in str(error)


def test_parse_forget_reasons() -> None:
    (group,) = restic.parse_forget(rec.FORGET_DRY_RUN + "\n")
    assert (group.host, group.tags, group.paths) == ("h1", ("t1",), ())
    assert [s.time.hour for s in group.keep] == [12, 10]
    assert [s.time.hour for s in group.remove] == [11]
    assert [r.matches for r in group.reasons] == [("daily snapshot",), ("oldest daily snapshot",)]
    assert group.reason_for(group.keep[1].id) == group.reasons[1]
    assert group.reason_for(group.remove[0].id) is None
    with_prune_text = rec.FORGET_DRY_RUN + "\nloading indexes...\n[0:00] 100.00%  4 / 4 snapshots\ndone\n"
    assert restic.parse_forget(with_prune_text) == [group]
    assert restic.parse_forget("") == []
    counted = json.loads(rec.FORGET_DRY_RUN)
    counted[0]["reasons"][0]["counters"] = {"daily": 6}
    assert restic.parse_forget(json.dumps(counted))[0].reasons[0].counters == {"daily": 6}


def test_parse_ls_nodes_with_odd_names() -> None:
    objects = _objects(rec.LS_NODES)
    nodes = [restic.parse_node(data) for data in objects if data.get("message_type") == "node"]
    assert [(n.name, n.type) for n in nodes] == [("b", "dir"), ("new\nline", "file"), ("odd\ufffd\ufffd", "file")]
    assert nodes[1].path == "/src/a/b/new\nline"
    assert nodes[1].size == 1
    assert nodes[0].size is None
    assert nodes[1].mtime == datetime(2026, 12, 2, 13, 52, 6, 911176, tzinfo=UTC)
    assert nodes[0].permissions == "drwxr-xr-x"
    assert restic.parse_node({"name": "x", "mtime": "garbage"}).mtime is None


def test_parse_snapshot_and_times() -> None:
    snapshot_line = _objects(rec.LS_NODES)[0]
    snapshot = restic.snapshot_from_json(snapshot_line)
    assert snapshot.short_id == "277aff0a"
    assert snapshot.time == datetime(2024, 3, 5, 12, tzinfo=UTC)
    assert snapshot.parent == "5e0d3e4d1b343eb3ab48e3642cb7af4fabd695cfe143778b1a162af625b6bd29"
    assert snapshot.paths == ("/tmp/rx/src/a/b",)
    assert snapshot.summary["files_unmodified"] == 2
    assert restic.parse_time("2024-10-27T02:30:00.123456789+02:00") == datetime(
        2024, 10, 27, 0, 30, 0, 123456, tzinfo=UTC
    )
    assert restic.parse_snapshots("[]") == restic.parse_snapshots("") == []
    with pytest.raises(HostOpsError, match="cannot read"):
        restic.parse_time("yesterday")


def test_parse_check_and_lock() -> None:
    result = restic.parse_check_summary(json.loads(rec.CHECK_SUMMARY))
    assert result.ok
    assert result == restic.CheckResult(num_errors=0, broken_packs=(), suggest_repair_index=False, suggest_prune=False)
    broken = restic.parse_check_summary({"num_errors": 2, "broken_packs": ["ab12"], "suggest_repair_index": True})
    assert not broken.ok
    assert broken.broken_packs == ("ab12",)
    now = datetime(2026, 12, 2, 14, 52, 56, 583988, tzinfo=UTC)
    lock = restic.parse_lock("a" * 64, json.loads(rec.CAT_LOCK), now=now)
    assert (lock.hostname, lock.username, lock.pid, lock.exclusive) == ("vm", "root", 31948, False)
    assert lock.age_s == pytest.approx(3600)


def test_parse_stats() -> None:
    raw = restic.parse_stats(json.loads(rec.STATS_RAW_DATA), mode="raw-data")
    assert (raw.total_size, raw.total_uncompressed_size, raw.snapshots_count) == (1138, 1949, 2)
    assert raw.compression_ratio == pytest.approx(1.7127, abs=1e-4)
    assert raw.total_file_count is None
    size = restic.parse_stats(json.loads(rec.STATS_RESTORE_SIZE), mode="restore-size")
    assert (size.total_size, size.total_file_count, size.snapshots_count, size.compression_ratio) == (2, 5, 1, None)


def test_parse_go_duration() -> None:
    assert restic.parse_go_duration("2.050231071s") == pytest.approx(2.050231071)
    assert restic.parse_go_duration("1h2m3s") == 3723
    assert restic.parse_go_duration("350ms") == pytest.approx(0.35)
    assert restic.parse_go_duration("soon") is None


def _uploading(repo: Path) -> bool:
    """Whether restic is writing a pack into the local repository ``repo`` (a non-empty temporary
    file under data/; a finished one is renamed away meanwhile)."""
    for path in repo.joinpath("data").rglob("*-tmp-*"):
        try:
            if path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            continue
    return False


_PARENT = """
import sys
from hostops import restic
repo = restic.Repository(location=sys.argv[1], password_file=sys.argv[2], limit_upload_kib=50)
restic.backup(repo, [sys.argv[3]], host="gpu1", timeout=120)
"""


@needs_restic
def test_a_restic_whose_caller_is_killed_stops_and_takes_its_lock_with_it(
    local_repo: restic.Repository, tree: Path
) -> None:
    """A worker SIGKILLed mid-backup: restic gets SIGINT from the kernel (setpriv --pdeathsig),
    stops as after Ctrl-C and removes its lock, so the next job finds the repository free and
    no restic goes on uploading unwatched."""
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [os.sys.executable, "-c", _PARENT, local_repo.location, local_repo.password_file, str(tree)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        # Killed mid-backup: while a pack is being uploaded (the upload limit keeps it going for
        # seconds). Its words as it stops must not meet a broken pipe (SIGPIPE would end it, its
        # lock left behind; seen twice in CI before restic's output was spooled to files).
        deadline = time.monotonic() + 30
        while not _uploading(Path(local_repo.location)):
            assert time.monotonic() < deadline, "the backup never began uploading"
            assert parent.poll() is None, "the backup ended before it could be killed"
            time.sleep(0.1)
        assert restic.list_locks(local_repo), "the backup uploads without a lock"
        child = _restic_child(local_repo.location, "backup")
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while Path(f"/proc/{child}").exists() and b"restic" in Path(f"/proc/{child}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "restic went on after its caller was killed"
            time.sleep(0.1)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert restic.list_locks(local_repo) == []
    assert restic.snapshots(local_repo) == []
