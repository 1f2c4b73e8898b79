"""hostops.btrfs on real BTRFS filesystems (sparse images on loop devices), and its parsers on
output recorded from those runs (btrfs-progs 6.2, kernel 6.18)."""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hostops import btrfs
from hostops.errors import CommandTimeout, DeviceMissing, HostOpsError, NotBtrfs, NotFound, NotSubvolume, QuotasDisabled
from hostops.run import run
from tests.loopfs import LoopFs, loop_btrfs, make_loop_devices
from tests.loopfs import detach as _detach
from tests.loopfs import umount as _umount

MIB = 1024 * 1024
IMAGE_SIZE = 256 * MIB  # about the least mkfs.btrfs accepts with DUP metadata

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mkfs.btrfs") is None or shutil.which("losetup") is None,
    reason="needs root, btrfs-progs and util-linux (losetup) to make loop-device filesystems",
)


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopFs]:
    """One single-device BTRFS with quotas on, shared by the tests of this module."""
    with loop_btrfs(tmp_path_factory.mktemp("btrfs")) as made:
        btrfs.quota_enable(made.mount)
        btrfs.quota_rescan(made.mount, wait=True, timeout=60)
        yield made


@pytest.fixture(scope="module")
def raid1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopFs]:
    """A two-device RAID1 BTRFS with quotas off."""
    with loop_btrfs(tmp_path_factory.mktemp("raid1"), count=2, profile="raid1") as made:
        yield made


@pytest.fixture
def home(fs: LoopFs, request: pytest.FixtureRequest) -> Iterator[str]:
    """A subvolume of the shared filesystem for one test, deleted afterwards."""
    path = os.path.join(fs.mount, request.node.name.removeprefix("test_")[:30].replace("[", "_").rstrip("]"))
    btrfs.subvolume_create(path)
    yield path
    if os.path.lexists(path):
        btrfs.subvolume_delete(path)


def write_random(path: str, size: int) -> None:
    """Write ``size`` incompressible bytes in 1 MiB chunks and flush them to disk."""
    with open(path, "wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
            handle.flush()
        os.fsync(handle.fileno())


def qgroup_of(mount: str, path: str) -> btrfs.Qgroup:
    ident = btrfs.subvolume_show(path).id
    return next(group for group in btrfs.qgroup_show(mount, sync=True) if group.qgroupid == f"0/{ident}")


# --- subvolumes and snapshots ----------------------------------------------------------------


@pytest.mark.loopdev
def test_subvolumes_are_created_listed_shown_and_deleted(fs: LoopFs) -> None:
    parent = os.path.join(fs.mount, "homes")
    alice = os.path.join(parent, "alice")
    assert btrfs.ensure_subvolume(parent) is True
    assert btrfs.ensure_subvolume(parent) is False
    btrfs.subvolume_create(alice)
    listed = {sub.path: sub for sub in btrfs.subvolume_list(fs.mount)}
    info = btrfs.subvolume_show(alice)
    assert listed["homes/alice"].id == info.id
    assert listed["homes/alice"].top_level == listed["homes"].id == info.parent_id
    assert (info.name, info.path, info.readonly, info.parent_uuid) == ("alice", "homes/alice", False, None)
    assert info.created is not None
    assert abs(info.created.timestamp() - time.time()) < 120
    assert btrfs.is_subvolume(alice)
    assert btrfs.is_btrfs(alice)
    btrfs.subvolume_delete(alice)
    btrfs.subvolume_delete(parent)
    assert not os.path.exists(parent)
    assert {"homes", "homes/alice"}.isdisjoint(sub.path for sub in btrfs.subvolume_list(fs.mount))


@pytest.mark.loopdev
def test_a_read_only_snapshot_refuses_writes_and_names_its_source(fs: LoopFs, home: str) -> None:
    Path(home, "notes.txt").write_text("v1")
    snapshot = home + "-snap"
    btrfs.snapshot_readonly(home, snapshot)
    try:
        info = btrfs.subvolume_show(snapshot)
        assert info.readonly is True
        source = btrfs.subvolume_show(home)
        assert info.parent_uuid == source.uuid
        assert source.snapshots == (os.path.relpath(snapshot, fs.mount),)
        assert Path(snapshot, "notes.txt").read_text() == "v1"
        with pytest.raises(OSError, match="Read-only file system") as excinfo:
            Path(snapshot, "notes.txt").write_text("v2")
        assert excinfo.value.errno == errno.EROFS
        with pytest.raises(HostOpsError, match="already exists"):
            btrfs.snapshot_readonly(home, snapshot)
    finally:
        btrfs.subvolume_delete(snapshot)


@pytest.mark.loopdev
def test_a_plain_folder_is_not_a_subvolume(fs: LoopFs, tmp_path: Path) -> None:
    folder = os.path.join(fs.mount, "plain-folder")
    os.makedirs(folder, exist_ok=True)
    assert btrfs.is_btrfs(folder) is True
    assert btrfs.is_subvolume(folder) is False
    with pytest.raises(NotSubvolume, match="not a BTRFS subvolume"):
        btrfs.subvolume_show(folder)
    with pytest.raises(NotSubvolume):
        btrfs.ensure_subvolume(folder)
    with pytest.raises(NotFound, match="does not exist"):
        btrfs.subvolume_delete(os.path.join(fs.mount, "no-such-subvolume"))


# --- quotas ----------------------------------------------------------------------------------


@pytest.mark.loopdev
def test_qgroup_usage_is_close_to_what_was_written(fs: LoopFs, home: str) -> None:
    write_random(os.path.join(home, "data"), 24 * MIB)
    btrfs.quota_rescan(fs.mount, wait=True, timeout=60)
    group = qgroup_of(fs.mount, home)
    assert 24 * MIB <= group.referenced <= 24 * MIB * 1.1
    assert 24 * MIB <= group.exclusive <= 24 * MIB * 1.1
    assert (group.max_referenced, group.path, group.stale) == (None, os.path.basename(home), False)


@pytest.mark.loopdev
def test_a_rescan_started_without_waiting_can_be_followed_to_its_end(fs: LoopFs) -> None:
    btrfs.quota_rescan(fs.mount, wait=False)
    btrfs.quota_rescan(fs.mount, wait=False)  # a second start while one runs is no error
    deadline = time.monotonic() + 60
    while btrfs.quota_rescan_status(fs.mount).running:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert btrfs.quota_rescan_status(fs.mount) == btrfs.RescanStatus(running=False)


@pytest.mark.loopdev
def test_a_rescan_past_its_timeout_raises_and_leaves_no_command_behind(fs: LoopFs) -> None:
    with pytest.raises(CommandTimeout, match="goes on in the kernel"):
        btrfs.quota_rescan(fs.mount, wait=True, timeout=0.001)
    deadline = time.monotonic() + 60
    while btrfs.quota_rescan_status(fs.mount).running:
        assert time.monotonic() < deadline
        time.sleep(0.2)


@pytest.mark.loopdev
def test_a_limit_stops_writes_with_edquot_and_removing_it_lets_them_through(fs: LoopFs, home: str) -> None:
    btrfs.qgroup_limit(home, 8 * MIB)
    assert qgroup_of(fs.mount, home).max_referenced == 8 * MIB
    with pytest.raises(OSError, match="Disk quota exceeded") as excinfo:
        write_random(os.path.join(home, "big"), 16 * MIB)
    assert excinfo.value.errno == errno.EDQUOT
    btrfs.qgroup_limit(home, None)
    assert qgroup_of(fs.mount, home).max_referenced is None
    write_random(os.path.join(home, "big"), 16 * MIB)
    assert qgroup_of(fs.mount, home).referenced >= 16 * MIB


@pytest.mark.loopdev
def test_the_limit_of_a_subvolume_over_it_can_still_be_removed(fs: LoopFs, home: str) -> None:
    write_random(os.path.join(home, "old"), 16 * MIB)
    btrfs.qgroup_limit(home, 8 * MIB)  # the admin lowers it below what is stored
    with pytest.raises(OSError, match="Disk quota exceeded"):
        write_random(os.path.join(home, "new"), MIB)
    # btrfs refuses this change when asked from inside the over-limit subvolume.
    btrfs.qgroup_limit(home, None)
    write_random(os.path.join(home, "new"), MIB)
    assert qgroup_of(fs.mount, home).max_referenced is None


@pytest.mark.loopdev
def test_a_group_qgroup_counts_and_limits_two_subvolumes_together(fs: LoopFs) -> None:
    home, scratch = os.path.join(fs.mount, "g-home"), os.path.join(fs.mount, "g-scratch")
    btrfs.subvolume_create(home)
    btrfs.subvolume_create(scratch)
    try:
        write_random(os.path.join(home, "before"), 4 * MIB)  # held before it joins the group
        assert btrfs.qgroup_ensure_group(fs.mount, "1/4242") is True
        assert btrfs.qgroup_ensure_group(fs.mount, "1/4242") is False
        for path in (home, scratch):
            assert btrfs.qgroup_ensure_member(fs.mount, btrfs.subvolume_qgroup(path), "1/4242") is True
        assert btrfs.qgroup_ensure_member(fs.mount, btrfs.subvolume_qgroup(home), "1/4242") is False
        write_random(os.path.join(scratch, "after"), 4 * MIB)
        group = next(g for g in btrfs.qgroup_show(fs.mount, sync=True) if g.qgroupid == "1/4242")
        assert 8 * MIB <= group.referenced <= 8 * MIB * 1.1
        assert (group.path, group.stale) == ("", False)
        btrfs.qgroup_limit_group(fs.mount, "1/4242", 12 * MIB)
        with pytest.raises(OSError, match="Disk quota exceeded"):
            write_random(os.path.join(scratch, "more"), 8 * MIB)  # 8 + 8 MiB is past 12 MiB
        with pytest.raises(HostOpsError, match="still has subvolumes"):
            btrfs.qgroup_destroy_group(fs.mount, "1/4242")
    finally:
        btrfs.subvolume_delete(home)
        btrfs.subvolume_delete(scratch)
    btrfs.qgroup_clear_stale(fs.mount, timeout=60)  # a commit first: the cleaner starts at once
    assert btrfs.qgroup_destroy_group(fs.mount, "1/4242") is True
    assert btrfs.qgroup_destroy_group(fs.mount, "1/4242") is False


@pytest.mark.parametrize("bad", ["0/257", "1/", "1/x", "8/1", "1/1 ", "/1"])
def test_group_qgroup_ids_are_checked_before_any_command(bad: str) -> None:
    with pytest.raises(ValueError, match="level 1 or more"):
        btrfs.qgroup_ensure_group("/tmp", bad)


def _btrfs_whose_clear_stale_loses_a_race(folder: Path, monkeypatch: pytest.MonkeyPatch, times: int) -> Path:
    """A ``btrfs`` first on PATH whose ``qgroup clear-stale`` fails ``times`` times the way the
    real one does when the kernel drops a stale qgroup under it; everything else is the real one."""
    real = shutil.which("btrfs")
    assert real is not None
    count = folder / "count"
    count.write_text("")
    stand_in = folder / "btrfs"
    stand_in.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "qgroup clear-stale" ] && [ "$(wc -c < {count})" -lt {times} ]; then\n'
        f"  printf x >> {count}\n"
        '  echo "ERROR: cannot delete qgroup 0/282: No such file or directory" >&2\n'
        "  exit 1\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    return count


@pytest.mark.loopdev
def test_clearing_stale_qgroups_goes_again_when_the_kernel_dropped_one_meanwhile(
    fs: LoopFs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.path.join(fs.mount, "raced")
    btrfs.subvolume_create(path)
    qgroupid = f"0/{btrfs.subvolume_show(path).id}"
    btrfs.subvolume_delete(path)
    count = _btrfs_whose_clear_stale_loses_a_race(tmp_path, monkeypatch, times=2)
    assert qgroupid in btrfs.qgroup_clear_stale(fs.mount, timeout=60)
    assert count.read_text() == "xx"
    assert qgroupid not in {group.qgroupid for group in btrfs.qgroup_show(fs.mount)}


@pytest.mark.loopdev
def test_clearing_stale_qgroups_gives_up_after_three_lost_races(
    fs: LoopFs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = _btrfs_whose_clear_stale_loses_a_race(tmp_path, monkeypatch, times=5)
    with pytest.raises(NotFound, match="cannot delete qgroup 0/282"):
        btrfs.qgroup_clear_stale(fs.mount, timeout=60)
    assert count.read_text() == "xxx"


@pytest.mark.loopdev
def test_the_qgroup_of_a_deleted_subvolume_is_stale_until_cleared(fs: LoopFs) -> None:
    path = os.path.join(fs.mount, "doomed")
    btrfs.subvolume_create(path)
    write_random(os.path.join(path, "data"), 4 * MIB)
    qgroupid = f"0/{btrfs.subvolume_show(path).id}"
    btrfs.subvolume_delete(path)
    stale = [group for group in btrfs.qgroup_show(fs.mount) if group.qgroupid == qgroupid]
    assert [(group.stale, group.path) for group in stale] == [(True, "")]
    assert qgroupid in btrfs.qgroup_clear_stale(fs.mount, timeout=60)
    assert qgroupid not in {group.qgroupid for group in btrfs.qgroup_show(fs.mount)}


@pytest.mark.loopdev
@pytest.mark.parametrize(
    "call",
    [btrfs.qgroup_show, lambda mount: btrfs.qgroup_limit(mount, MIB), btrfs.quota_rescan, btrfs.qgroup_clear_stale],
)
def test_qgroups_with_quotas_off_are_refused_as_quotas_disabled(call: Callable[[str], object], raid1: LoopFs) -> None:
    with pytest.raises(QuotasDisabled, match=r"quotas are off on .*: enable them with btrfs quota enable"):
        call(raid1.mount)


# --- filesystem, devices, scrub --------------------------------------------------------------


@pytest.mark.loopdev
def test_usage_and_show_describe_a_single_device_filesystem(fs: LoopFs) -> None:
    usage = btrfs.filesystem_usage(fs.mount)
    assert usage.size == IMAGE_SIZE
    assert (usage.data_profile, usage.metadata_profile, usage.data_ratio, usage.metadata_ratio) == (
        "single",
        "DUP",
        1.0,
        2.0,
    )
    assert 0 < usage.used < usage.allocated <= usage.size
    assert 0 < usage.free_min <= usage.free_estimated < usage.size
    assert usage.missing == 0
    shown = btrfs.filesystem_show(fs.mount)
    assert shown == btrfs.filesystem_show(fs.devices[0])
    assert (shown.label, shown.total_devices, shown.missing) == ("h4-single", 1, False)
    assert [(device.devid, device.path, device.size) for device in shown.devices] == [(1, fs.devices[0], IMAGE_SIZE)]


@pytest.mark.loopdev
def test_raid10_over_four_devices_is_reported_as_raid10(tmp_path: Path) -> None:
    with loop_btrfs(tmp_path, count=4, profile="raid10") as made:
        usage = btrfs.filesystem_usage(made.mount)
        shown = btrfs.filesystem_show(made.mount)
    assert (usage.data_profile, usage.metadata_profile, usage.system_profile) == ("RAID10", "RAID10", "RAID10")
    assert (usage.data_ratio, usage.size) == (2.0, 4 * IMAGE_SIZE)
    assert usage.free_estimated < usage.unallocated  # half of the free space goes to the mirror
    assert [device.path for device in shown.devices] == list(made.devices)
    assert (shown.total_devices, shown.missing) == (4, False)


@pytest.mark.loopdev
def test_device_stats_are_all_zero_on_a_fresh_filesystem(raid1: LoopFs) -> None:
    stats = btrfs.device_stats(raid1.mount)
    assert [entry.device for entry in stats] == list(raid1.devices)
    assert [entry.errors for entry in stats] == [0, 0]


@pytest.mark.loopdev
def test_a_foreground_scrub_finishes_with_bytes_scrubbed_and_no_errors(fs: LoopFs, home: str) -> None:
    write_random(os.path.join(home, "data"), 4 * MIB)
    done = btrfs.scrub_start_foreground(fs.mount, timeout=120)
    assert done.finished
    assert not done.running
    assert done.data_bytes_scrubbed >= 4 * MIB
    assert (done.errors, done.uncorrectable_errors) == (0, 0)
    status = btrfs.scrub_status(fs.mount)
    assert (status.status, status.uuid, status.errors) == ("finished", btrfs.filesystem_show(fs.mount).uuid, 0)
    assert status.started is not None
    assert abs(status.started.timestamp() - time.time()) < 300
    assert btrfs.scrub_cancel(fs.mount) is False  # nothing running


@pytest.mark.loopdev
def test_a_foreground_scrub_past_its_timeout_is_cancelled(fs: LoopFs) -> None:
    with pytest.raises(CommandTimeout):
        btrfs.scrub_start_foreground(fs.mount, timeout=0.001)
    assert btrfs.scrub_status(fs.mount).running is False


@pytest.mark.loopdev
def test_a_background_scrub_returns_at_once_and_can_be_followed(raid1: LoopFs) -> None:
    started = time.monotonic()
    assert btrfs.scrub_start(raid1.mount) is True
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 60
    while not btrfs.scrub_status(raid1.mount).finished:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert btrfs.scrub_status(raid1.mount).bytes_scrubbed > 0


@pytest.mark.loopdev
def test_a_missing_device_is_refused_at_mount_and_reported_when_mounted_degraded(tmp_path: Path) -> None:
    with ExitStack() as stack:
        first, second = make_loop_devices(stack, tmp_path, 2)
        btrfs.mkfs([first, second], data_profile="raid1", metadata_profile="raid1", label="h4-degraded")
        _detach(second)
        # Only this device: forgetting every unmounted one would disturb other filesystems.
        run(["btrfs", "device", "scan", "--forget", second], timeout=30, check=False)
        target = tmp_path / "mnt"
        target.mkdir()
        with pytest.raises(DeviceMissing, match="degraded"):
            btrfs.mount(first, str(target))
        btrfs.mount(first, str(target), ["degraded"])
        stack.callback(_umount, str(target))
        shown = btrfs.filesystem_show(str(target))
        assert shown.missing is True
        assert [device.path for device in shown.devices] == [first, ""]
        assert btrfs.filesystem_usage(str(target)).missing == IMAGE_SIZE
        assert [entry.device for entry in btrfs.device_stats(str(target))] == [first, "devid:2"]


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["tmp_path", "/dev/shm"])
def test_a_path_on_another_filesystem_is_not_btrfs(where: str, tmp_path: Path) -> None:
    folder = str(tmp_path) if where == "tmp_path" else where
    assert btrfs.is_btrfs(folder) is False
    assert btrfs.is_subvolume(folder) is False
    with pytest.raises(NotBtrfs, match=r"is not on a BTRFS filesystem"):
        btrfs.qgroup_show(folder)
    with pytest.raises(NotBtrfs, match=r"is not on a BTRFS filesystem"):
        btrfs.subvolume_create(os.path.join(folder, "h4-new"))
    with pytest.raises(NotBtrfs):
        btrfs.filesystem_usage(folder)
    for call in (
        btrfs.scrub_status,
        btrfs.scrub_start,
        btrfs.scrub_cancel,
        btrfs.quota_enable,
        btrfs.quota_rescan_status,
        btrfs.device_stats,
        btrfs.subvolume_list,
        btrfs.subvolume_show,
    ):
        with pytest.raises(NotBtrfs, match=r"is not on a BTRFS filesystem"):
            call(folder)


def test_a_missing_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        btrfs.is_btrfs(str(tmp_path / "missing"))


BAD_PATHS = ["relative/home", "-rf", "/srv/homes/../etc", "/srv/homes/a\nb", "/srv/\0x", ""]
CALLS = [
    lambda p: btrfs.subvolume_create(p),
    lambda p: btrfs.subvolume_delete(p),
    lambda p: btrfs.subvolume_list(p),
    lambda p: btrfs.subvolume_show(p),
    lambda p: btrfs.snapshot_readonly(p, "/srv/snap"),
    lambda p: btrfs.snapshot_readonly("/srv/home", p),
    lambda p: btrfs.is_btrfs(p),
    lambda p: btrfs.quota_enable(p),
    lambda p: btrfs.quota_rescan(p),
    lambda p: btrfs.qgroup_show(p),
    lambda p: btrfs.qgroup_limit(p, MIB),
    lambda p: btrfs.qgroup_clear_stale(p),
    lambda p: btrfs.filesystem_usage(p),
    lambda p: btrfs.filesystem_show(p),
    lambda p: btrfs.device_stats(p),
    lambda p: btrfs.scrub_start(p),
    lambda p: btrfs.scrub_start_foreground(p, timeout=5),
    lambda p: btrfs.scrub_status(p),
    lambda p: btrfs.scrub_cancel(p),
    lambda p: btrfs.mkfs([p], data_profile="single", metadata_profile="dup"),
    lambda p: btrfs.mount(p, "/mnt"),
    lambda p: btrfs.mount("/dev/loop0", p),
    lambda p: btrfs.umount(p),
]


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize("call", CALLS)
def test_a_bad_path_is_refused_before_any_command_runs(
    call: Callable[[str], object], path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(btrfs, "run", lambda argv, **kwargs: ran.append(list(argv)))
    with pytest.raises(ValueError, match=r"absolute|NUL|'\.\.'"):
        call(path)
    assert ran == []


@pytest.mark.parametrize("option", ["-o", "subvol=/a b", "subvol=/../etc", "ro\n", "x;y", ""])
def test_a_bad_mount_option_is_refused(option: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(btrfs, "run", lambda argv, **kwargs: pytest.fail(f"ran {argv}"))
    with pytest.raises(ValueError, match="not a mount option"):
        btrfs.mount("/dev/loop0", "/mnt", [option])


def test_mkfs_refuses_what_is_not_a_block_device_or_a_profile(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    with pytest.raises(ValueError, match="not a block device"):
        btrfs.mkfs([str(image)], data_profile="single", metadata_profile="dup")
    with pytest.raises(ValueError, match="list of one or more devices"):
        btrfs.mkfs("/dev/loop0", data_profile="single", metadata_profile="dup")
    with pytest.raises(ValueError, match="not a BTRFS profile"):
        btrfs.mkfs(["/dev/null"], data_profile="raid7", metadata_profile="dup")
    with pytest.raises(ValueError, match="positive number of bytes"):
        btrfs.qgroup_limit("/srv/homes/alice", 0)


@pytest.mark.loopdev
def test_mkfs_over_an_existing_filesystem_needs_force(fs: LoopFs, tmp_path: Path) -> None:
    with ExitStack() as stack:
        (device,) = make_loop_devices(stack, tmp_path, 1)
        btrfs.mkfs([device], data_profile="single", metadata_profile="dup", label="first")
        with pytest.raises(HostOpsError, match="force=True"):
            btrfs.mkfs([device], data_profile="single", metadata_profile="dup", label="second")
        btrfs.mkfs([device], data_profile="single", metadata_profile="single", label="second", force=True)
        assert btrfs.filesystem_show(device).label == "second"


# --- parsers, on output recorded from the real tools -------------------------------------------
# Recorded with btrfs-progs 6.2 on a RAID1 over two loop devices with quotas on (the text is
# verbatim, tabs included), unless a comment says a number was edited.

SUBVOLUME_LIST = (
    "ID 256 gen 11 top level 5 path homes\n"
    "ID 257 gen 11 top level 256 path homes/alice\n"
    "ID 258 gen 11 top level 256 path homes/alice-snap\n"
)

SUBVOLUME_SHOW_SNAPSHOT = (
    "homes/alice-snap\n\tName: \t\t\talice-snap\n\tUUID: \t\t\tb61210e5-e244-674e-b9ff-a5f3b073b64b\n"
    "\tParent UUID: \t\ta0586fab-97aa-6245-aaab-d89f06c0e262\n\tReceived UUID: \t\t-\n"
    "\tCreation time: \t\t2026-12-02 07:05:18 +0000\n\tSubvolume ID: \t\t258\n\tGeneration: \t\t11\n"
    "\tGen at creation: \t11\n\tParent ID: \t\t256\n\tTop level ID: \t\t256\n\tFlags: \t\t\treadonly\n"
    "\tSend transid: \t\t0\n\tSend time: \t\t2026-12-02 07:05:18 +0000\n\tReceive transid: \t0\n"
    "\tReceive time: \t\t-\n\tSnapshot(s):\n\tQuota group:\t\t0/258\n\t  Limit referenced:\t-\n"
    "\t  Limit exclusive:\t-\n\t  Usage referenced:\t8.02MiB\n\t  Usage exclusive:\t16.00KiB\n"
)

SUBVOLUME_SHOW_SOURCE = (
    "homes/alice\n\tName: \t\t\talice\n\tUUID: \t\t\ta0586fab-97aa-6245-aaab-d89f06c0e262\n"
    "\tParent UUID: \t\t-\n\tReceived UUID: \t\t-\n\tCreation time: \t\t2026-12-02 07:05:18 +0000\n"
    "\tSubvolume ID: \t\t257\n\tGeneration: \t\t11\n\tGen at creation: \t9\n\tParent ID: \t\t256\n"
    "\tTop level ID: \t\t256\n\tFlags: \t\t\t-\n\tSend transid: \t\t0\n"
    "\tSend time: \t\t2026-12-02 07:05:18 +0000\n\tReceive transid: \t0\n\tReceive time: \t\t-\n"
    "\tSnapshot(s):\n\t\t\t\thomes/alice-snap\n\tQuota group:\t\t0/257\n\t  Limit referenced:\t10.00MiB\n"
    "\t  Limit exclusive:\t-\n\t  Usage referenced:\t8.02MiB\n\t  Usage exclusive:\t16.00KiB\n"
)

QGROUP_SHOW = (
    "Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path \n"
    "--------    ----------    ---------  --------------  -------------   ---- \n"
    "0/5              16384        16384            none           none   <toplevel>\n"
    "0/256            16384        16384            none           none   homes\n"
    "0/257          8404992        16384        10485760           none   homes/alice\n"
    "0/258          8404992        16384            none           none   homes/alice-snap\n"
    "0/259                0            0            none           none   <stale>\n"
)

USAGE_DEGRADED = (
    "Overall:\n    Device size:\t\t         629145600\n    Device allocated:\t\t         285212672\n"
    "    Device unallocated:\t\t         343932928\n    Device missing:\t\t         314572800\n"
    "    Device slack:\t\t                 0\n    Used:\t\t\t          17235968\n"
    "    Free (estimated):\t\t         230686720\t(min: 230686720)\n"
    "    Free (statfs, df):\t\t         144179200\n    Data ratio:\t\t\t              2.00\n"
    "    Metadata ratio:\t\t              2.00\n    Global reserve:\t\t           5767168\t(used: 0)\n"
    "    Multiple profiles:\t\t                no\n\n"
    "Data,RAID1: Size:67108864, Used:8388608 (12.50%)\n   /dev/loop5\t  67108864\n   missing\t  67108864\n\n"
    "Metadata,RAID1: Size:33554432, Used:212992 (0.63%)\n   /dev/loop5\t  33554432\n   missing\t  33554432\n\n"
    "System,RAID1: Size:41943040, Used:16384 (0.04%)\n   /dev/loop5\t  41943040\n   missing\t  41943040\n\n"
    "Unallocated:\n   /dev/loop5\t 171966464\n   missing\t 171966464\n"
)

# A single device: data single, metadata DUP (recorded on a 300 MiB image after writing 20 MiB).
USAGE_SINGLE = (
    "Overall:\n    Device size:\t\t         314572800\n    Device allocated:\t\t         125829120\n"
    "    Device unallocated:\t\t         188743680\n    Device missing:\t\t                 0\n"
    "    Device slack:\t\t                 0\n    Used:\t\t\t          21430272\n"
    "    Free (estimated):\t\t         209715200\t(min: 115343360)\n"
    "    Free (statfs, df):\t\t         208666624\n    Data ratio:\t\t\t              1.00\n"
    "    Metadata ratio:\t\t              2.00\n    Global reserve:\t\t           5767168\t(used: 16384)\n"
    "    Multiple profiles:\t\t                no\n\n"
    "Data,single: Size:41943040, Used:20971520 (50.00%)\n   /dev/loop0\t  41943040\n\n"
    "Metadata,DUP: Size:33554432, Used:212992 (0.63%)\n   /dev/loop0\t  67108864\n\n"
    "System,DUP: Size:8388608, Used:16384 (0.20%)\n   /dev/loop0\t  16777216\n\n"
    "Unallocated:\n   /dev/loop0\t 188743680\n"
)

SHOW_RAID1 = (
    "Label: 'recorded'  uuid: 96edf38b-fd79-40fb-9c86-1fc68925067b\n\tTotal devices 2 FS bytes used 8617984\n"
    "\tdevid    1 size 314572800 used 142606336 path /dev/loop5\n"
    "\tdevid    2 size 314572800 used 142606336 path /dev/loop6\n\n"
)

SHOW_DEGRADED = (
    "Label: 'recorded'  uuid: 96edf38b-fd79-40fb-9c86-1fc68925067b\n\tTotal devices 2 FS bytes used 8617984\n"
    "\tdevid    1 size 314572800 used 142606336 path /dev/loop5\n\tdevid    2 size 0 used 0 path  MISSING\n\n"
)

SHOW_UNLABELLED = (
    "Label: none  uuid: 3b1a16e6-b6f5-4e0b-8314-2136ef18bfc5\n\tTotal devices 2 FS bytes used 147456\n"
    "\tdevid    1 size 314572800 used 109051904 path /dev/loop0\n\tdevid    2 size 0 used 0 path  MISSING\n\n"
)

# Recorded on the degraded RAID1, then edited: the counters of /dev/loop5 were 0 (a fresh
# filesystem cannot be damaged on purpose without risk); the format is the tool's.
DEVICE_STATS_WITH_ERRORS = (
    "[/dev/loop5].write_io_errs    3\n[/dev/loop5].read_io_errs     17\n[/dev/loop5].flush_io_errs    0\n"
    "[/dev/loop5].corruption_errs  2\n[/dev/loop5].generation_errs  0\n[devid:2].write_io_errs    0\n"
    "[devid:2].read_io_errs     0\n[devid:2].flush_io_errs    0\n[devid:2].corruption_errs  0\n"
    "[devid:2].generation_errs  0\n"
)

SCRUB_FOREGROUND = (
    "scrub done for 96edf38b-fd79-40fb-9c86-1fc68925067b\nScrub started:    Wed Dec  2 07:05:18 2026\n"
    "Status:           finished\nDuration:         0:00:00\n\tdata_extents_scrubbed: 256\n"
    "\ttree_extents_scrubbed: 26\n\tdata_bytes_scrubbed: 16777216\n\ttree_bytes_scrubbed: 425984\n"
    "\tread_errors: 0\n\tcsum_errors: 0\n\tverify_errors: 0\n\tno_csum: 0\n\tcsum_discards: 0\n"
    "\tsuper_errors: 0\n\tmalloc_errors: 0\n\tuncorrectable_errors: 0\n\tunverified_errors: 0\n"
    "\tcorrected_errors: 0\n\tlast_physical: 110100480\n"
)

# ``scrub status -R`` recorded after a finished scrub, then edited: csum_errors 0 -> 5,
# read_errors 0 -> 1, corrected 0 -> 4, uncorrectable 0 -> 2 and the duration 0:00:00 -> 1:02:03.
SCRUB_STATUS_WITH_ERRORS = (
    "UUID:             96edf38b-fd79-40fb-9c86-1fc68925067b\nScrub started:    Wed Dec  2 07:05:18 2026\n"
    "Status:           finished\nDuration:         1:02:03\n\tdata_extents_scrubbed: 256\n"
    "\ttree_extents_scrubbed: 26\n\tdata_bytes_scrubbed: 16777216\n\ttree_bytes_scrubbed: 425984\n"
    "\tread_errors: 1\n\tcsum_errors: 5\n\tverify_errors: 0\n\tno_csum: 0\n\tcsum_discards: 0\n"
    "\tsuper_errors: 0\n\tmalloc_errors: 0\n\tuncorrectable_errors: 2\n\tunverified_errors: 0\n"
    "\tcorrected_errors: 4\n\tlast_physical: 110100480\n"
)

# Recorded a moment after ``scrub start`` in the background: no Status line yet.
SCRUB_STATUS_JUST_STARTED = (
    "UUID:             da5edfa6-96d8-460b-875c-443e2f381709\n\tno stats available\n"
    "\tdata_extents_scrubbed: 0\n\ttree_extents_scrubbed: 0\n\tdata_bytes_scrubbed: 0\n"
    "\ttree_bytes_scrubbed: 0\n\tread_errors: 0\n\tcsum_errors: 0\n\tverify_errors: 0\n\tno_csum: 0\n"
    "\tcsum_discards: 0\n\tsuper_errors: 0\n\tmalloc_errors: 0\n\tuncorrectable_errors: 0\n"
    "\tunverified_errors: 0\n\tcorrected_errors: 0\n\tlast_physical: 0\n"
)


def test_parse_subvolume_list_reads_ids_and_paths() -> None:
    assert btrfs.parse_subvolume_list(SUBVOLUME_LIST) == [
        btrfs.Subvolume(256, 11, 5, "homes"),
        btrfs.Subvolume(257, 11, 256, "homes/alice"),
        btrfs.Subvolume(258, 11, 256, "homes/alice-snap"),
    ]
    assert btrfs.parse_subvolume_list("ID 259 gen 7 top level 256 path <FS_TREE>/homes/my notes\n") == [
        btrfs.Subvolume(259, 7, 256, "homes/my notes")
    ]


def test_parse_subvolume_show_reads_a_readonly_snapshot_and_its_source() -> None:
    snapshot = btrfs.parse_subvolume_show(SUBVOLUME_SHOW_SNAPSHOT)
    assert (snapshot.id, snapshot.name, snapshot.path, snapshot.readonly) == (
        258,
        "alice-snap",
        "homes/alice-snap",
        True,
    )
    assert snapshot.parent_uuid == "a0586fab-97aa-6245-aaab-d89f06c0e262"
    assert (snapshot.received_uuid, snapshot.snapshots, snapshot.top_level) == (None, (), 256)
    assert snapshot.created == datetime(2026, 12, 2, 7, 5, 18, tzinfo=UTC)
    source = btrfs.parse_subvolume_show(SUBVOLUME_SHOW_SOURCE)
    assert (source.parent_uuid, source.readonly, source.snapshots) == (None, False, ("homes/alice-snap",))
    assert source.uuid == snapshot.parent_uuid


def test_parse_qgroup_show_reads_usage_limits_and_stale_groups() -> None:
    groups = btrfs.parse_qgroup_show(QGROUP_SHOW)
    assert [group.qgroupid for group in groups] == ["0/5", "0/256", "0/257", "0/258", "0/259"]
    alice = groups[2]
    assert (alice.referenced, alice.exclusive, alice.max_referenced, alice.max_exclusive) == (
        8404992,
        16384,
        10485760,
        None,
    )
    assert (alice.path, alice.stale, alice.subvolume_id) == ("homes/alice", False, 257)
    assert (groups[0].path, groups[0].stale) == ("", False)
    assert (groups[4].path, groups[4].stale) == ("", True)
    assert btrfs.parse_qgroup_show("1/100  0  0  none  none  <toplevel>\n")[0].subvolume_id is None


def test_parse_filesystem_usage_reads_sizes_ratios_and_profiles() -> None:
    single = btrfs.parse_filesystem_usage(USAGE_SINGLE)
    assert (single.size, single.allocated, single.used, single.free_estimated, single.free_min) == (
        314572800,
        125829120,
        21430272,
        209715200,
        115343360,
    )
    assert (single.data_profile, single.metadata_profile, single.data_ratio, single.metadata_ratio) == (
        "single",
        "DUP",
        1.0,
        2.0,
    )
    assert single.chunks[0] == btrfs.Chunk("Data", "single", 41943040, 20971520)
    degraded = btrfs.parse_filesystem_usage(USAGE_DEGRADED)
    assert (degraded.missing, degraded.data_profile, degraded.multiple_profiles) == (314572800, "RAID1", False)


def test_parse_filesystem_show_reads_devices_and_a_missing_one() -> None:
    healthy = btrfs.parse_filesystem_show(SHOW_RAID1)
    assert (healthy.label, healthy.uuid, healthy.total_devices, healthy.missing) == (
        "recorded",
        "96edf38b-fd79-40fb-9c86-1fc68925067b",
        2,
        False,
    )
    assert healthy.devices[1] == btrfs.Device(2, 314572800, 142606336, "/dev/loop6")
    degraded = btrfs.parse_filesystem_show(SHOW_DEGRADED)
    assert degraded.missing is True
    assert degraded.devices[1] == btrfs.Device(2, 0, 0, "")
    assert btrfs.parse_filesystem_show(SHOW_UNLABELLED).label is None


def test_parse_device_stats_reads_errors_per_device() -> None:
    stats = btrfs.parse_device_stats(DEVICE_STATS_WITH_ERRORS)
    assert stats == [btrfs.DeviceStats("/dev/loop5", 3, 17, 0, 2, 0), btrfs.DeviceStats("devid:2", 0, 0, 0, 0, 0)]
    assert [entry.errors for entry in stats] == [22, 0]


def test_parse_scrub_status_reads_a_clean_foreground_scrub() -> None:
    done = btrfs.parse_scrub_status(SCRUB_FOREGROUND)
    assert (done.uuid, done.status, done.finished, done.running) == (
        "96edf38b-fd79-40fb-9c86-1fc68925067b",
        "finished",
        True,
        False,
    )
    assert done.started == datetime(2026, 12, 2, 7, 5, 18, tzinfo=UTC)
    assert (done.bytes_scrubbed, done.errors, done.uncorrectable_errors) == (16777216 + 425984, 0, 0)


def test_parse_scrub_status_reads_errors_and_duration() -> None:
    status = btrfs.parse_scrub_status(SCRUB_STATUS_WITH_ERRORS)
    assert (status.errors, status.uncorrectable_errors, status.counters["corrected_errors"]) == (6, 2, 4)
    assert status.duration_s == 3723
    started = btrfs.parse_scrub_status(SCRUB_STATUS_JUST_STARTED)
    assert (started.status, started.started, started.bytes_scrubbed) == ("", None, 0)


def test_parse_rescan_status_reads_both_states() -> None:
    assert btrfs.parse_rescan_status("rescan operation running (current key 2304)\n") == btrfs.RescanStatus(True, 2304)
    assert btrfs.parse_rescan_status("no rescan operation in progress\n") == btrfs.RescanStatus(False)


@pytest.mark.parametrize(
    "parse",
    [btrfs.parse_subvolume_show, btrfs.parse_filesystem_usage, btrfs.parse_filesystem_show, btrfs.parse_scrub_status],
)
def test_a_parser_refuses_output_it_does_not_recognise(parse: Callable[[str], object]) -> None:
    with pytest.raises(HostOpsError, match="unexpected output"):
        parse("ERROR: something else entirely\n")


def test_parse_qgroup_show_reads_a_group_qgroup_without_a_path() -> None:
    text = (
        "Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path \n"
        "--------    ----------    ---------  --------------  -------------   ---- \n"
        "0/259         31473664     31473664            none           none   scratch/alice\n"
        "1/1000        52461568     52461568        41943040           none   <2 member qgroups>\n"
    )
    assert btrfs.parse_qgroup_show(text)[1] == btrfs.Qgroup("1/1000", 52461568, 52461568, 41943040, None, "", False)
