"""hostops.btrfs on real BTRFS filesystems (sparse images on loop devices), and its parsers on
output recorded from those runs (btrfs-progs 6.2, kernel 6.18)."""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostops import btrfs
from hostops.errors import DeviceMissing, HostOpsError, NotBtrfs, NotFound, NotSubvolume, QuotasDisabled
from hostops.run import run

MIB = 1024 * 1024
IMAGE_SIZE = 256 * MIB  # about the least mkfs.btrfs accepts with DUP metadata

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mkfs.btrfs") is None or shutil.which("losetup") is None,
    reason="needs root, btrfs-progs and util-linux (losetup) to make loop-device filesystems",
)


@dataclass(frozen=True)
class LoopFs:
    mount: str
    devices: tuple[str, ...]


def _attach(image: Path) -> str:
    with image.open("wb") as handle:
        handle.truncate(IMAGE_SIZE)  # sparse: nothing is written until the filesystem uses it
    return run(["losetup", "--find", "--show", "--", str(image)], timeout=30).stdout.strip()


def _detach(device: str) -> None:
    run(["losetup", "-d", device], timeout=30, check=False)


def _umount(target: str) -> None:
    if run(["umount", "--", target], timeout=60, check=False).returncode != 0:
        run(["umount", "-l", "--", target], timeout=60, check=False)


def make_loop_devices(stack: ExitStack, folder: Path, count: int) -> list[str]:
    """``count`` loop devices over sparse images in ``folder``, detached when ``stack`` closes."""
    devices = []
    for index in range(count):
        image = folder / f"disk{index}.img"
        stack.callback(image.unlink, missing_ok=True)
        devices.append(_attach(image))
        stack.callback(_detach, devices[-1])
    return devices


@contextmanager
def loop_btrfs(
    folder: Path, count: int = 1, profile: str = "single", options: tuple[str, ...] = ()
) -> Iterator[LoopFs]:
    """A fresh BTRFS over ``count`` loop devices mounted at ``folder``/mnt; everything it made is
    unmounted, detached and deleted afterwards, also when the test fails."""
    with ExitStack() as stack:
        devices = make_loop_devices(stack, folder, count)
        metadata = "dup" if profile == "single" else profile
        btrfs.mkfs(devices, data_profile=profile, metadata_profile=metadata, label=f"h4-{profile}")
        target = folder / "mnt"
        target.mkdir()
        btrfs.mount(devices[0], str(target), options)
        stack.callback(_umount, str(target))
        yield LoopFs(str(target), tuple(devices))


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
        assert info.parent_uuid == btrfs.subvolume_show(home).uuid
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
def test_a_limit_stops_writes_with_edquot_and_removing_it_lets_them_through(fs: LoopFs, home: str) -> None:
    btrfs.qgroup_limit(home, 8 * MIB)
    assert qgroup_of(fs.mount, home).max_referenced == 8 * MIB
    with pytest.raises(OSError, match="Disk quota exceeded") as excinfo:
        write_random(os.path.join(home, "big"), 16 * MIB)
    assert excinfo.value.errno == errno.EDQUOT
    # The subvolume is at its limit now, where btrfs refuses a change asked from inside it.
    btrfs.qgroup_limit(home, None)
    assert qgroup_of(fs.mount, home).max_referenced is None
    write_random(os.path.join(home, "big"), 16 * MIB)
    assert qgroup_of(fs.mount, home).referenced >= 16 * MIB


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
def test_qgroups_with_quotas_off_are_refused_as_quotas_disabled(raid1: LoopFs) -> None:
    with pytest.raises(QuotasDisabled, match=r"quotas are off on .*: enable them with btrfs quota enable"):
        btrfs.qgroup_show(raid1.mount)


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
        run(["btrfs", "device", "scan", "--forget"], timeout=30, check=False)
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
    with pytest.raises(NotBtrfs):
        btrfs.scrub_status(folder)


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
def test_a_bad_path_is_refused_before_any_command_runs(call, path: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    ran: list[list[str]] = []
    monkeypatch.setattr(btrfs, "run", lambda argv, **kwargs: ran.append(list(argv)))
    with pytest.raises(ValueError, match=r"absolute|NUL|'\.\.'"):
        call(path)
    assert ran == []


@pytest.mark.parametrize("option", ["-o", "subvol=/a b", "ro\n", "x;y", ""])
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
