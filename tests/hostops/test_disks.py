"""hostops.disks: the parsers on lsblk/wipefs output, the proposal on a recorded-style server,
and apply on real loop devices (root, btrfs-progs)."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostops import disks as hd
from hostops.disks import Disk, DiskRefused, DiskSetupFailed, Plan
from hostops.run import run

# `lsblk --json --bytes --output NAME,PATH,SIZE,ROTA,MODEL,SERIAL,TRAN,TYPE,MOUNTPOINTS,FSTYPE,RM,RO,PKNAME`
# on the build machine (util-linux 2.38.1, no udev: FSTYPE is null): a virtio root disk, a zram device.
THIS_MACHINE = """{
   "blockdevices": [
      {
         "name": "zram0", "path": "/dev/zram0", "size": 0, "rota": false, "model": null,
         "serial": null, "tran": null, "type": "disk", "mountpoints": [null], "fstype": null,
         "rm": false, "ro": false, "pkname": null
      },{
         "name": "vda", "path": "/dev/vda", "size": 274877906944, "rota": true, "model": null,
         "serial": null, "tran": null, "type": "disk", "mountpoints": ["/var/lib/docker", "/"],
         "fstype": null, "rm": false, "ro": false, "pkname": null
      }
   ]
}"""

# `wipefs --json /dev/loop0` after `mkfs.btrfs -L t -d raid10 -m raid10` over four loop devices.
WIPEFS_BTRFS = """{
   "signatures": [
      {
         "device": "loop0", "offset": "0x10040", "type": "btrfs",
         "uuid": "fe9dca34-7940-4b1a-a0e8-9103b261fedb", "label": "t"
      }
   ]
}"""

TB8 = 8001563222016  # an 8 TB HDD, as lsblk --bytes reports it


def _part(name: str, size: int, mountpoint: str | None, fstype: str, parent: str) -> dict[str, object]:
    return {
        "name": name, "path": f"/dev/{name}", "size": size, "rota": False, "model": None, "serial": None,
        "tran": None, "type": "part", "mountpoints": [mountpoint], "fstype": fstype, "rm": False,
        "ro": False, "pkname": parent,
    }  # fmt: skip


def _hdd(name: str, size: int = TB8, **changes: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": name, "path": f"/dev/{name}", "size": size, "rota": True, "model": "ST8000NM017B-2TJ103",
        "serial": f"WSD{name.upper()}01", "tran": "sata", "type": "disk", "mountpoints": [None],
        "fstype": None, "rm": False, "ro": False, "pkname": None,
    }  # fmt: skip
    return {**entry, **changes}


def server(*hdds: dict[str, object], extra: tuple[dict[str, object], ...] = ()) -> list[Disk]:
    """A GPU server: an NVMe OS disk (EFI, root, swap), the given HDDs, a USB stick."""
    nvme = {
        "name": "nvme0n1", "path": "/dev/nvme0n1", "size": 1024209543168, "rota": False,
        "model": "Samsung SSD 980 PRO 1TB", "serial": "S5GXNX0T123456", "tran": "nvme", "type": "disk",
        "mountpoints": [None], "fstype": None, "rm": False, "ro": False, "pkname": None,
        "children": [
            _part("nvme0n1p1", 536870912, "/boot/efi", "vfat", "nvme0n1"),
            _part("nvme0n1p2", 989855744000, "/", "ext4", "nvme0n1"),
            _part("nvme0n1p3", 34359738368, "[SWAP]", "swap", "nvme0n1"),
        ],
    }  # fmt: skip
    usb = _hdd("sdz", 32015679488, rota=True, tran="usb", rm=True, model="Cruzer Blade")
    usb["children"] = [_part("sdz1", 32014630912, None, "vfat", "sdz")]
    blockdevices = [nvme, *hdds, *extra, usb]
    return hd.parse_lsblk(json.dumps({"blockdevices": blockdevices}))


FOUR = server(_hdd("sda"), _hdd("sdb"), _hdd("sdc"), _hdd("sdd"))


# --- parsers ------------------------------------------------------------------------------


def test_it_parses_lsblk_recorded_on_this_machine() -> None:
    zram, vda = hd.parse_lsblk(THIS_MACHINE)
    assert (vda.path, vda.size, vda.rotational, vda.type) == ("/dev/vda", 274877906944, True, "disk")
    assert vda.mountpoints == ("/var/lib/docker", "/")
    assert (vda.model, vda.transport, vda.fstype, vda.children) == ("", "", None, ())
    assert (zram.size, zram.mountpoints) == (0, ())


def test_the_disk_of_this_machine_holding_root_is_in_use() -> None:
    _, vda = hd.parse_lsblk(THIS_MACHINE)
    assert hd.in_use(vda) == ["mounted at /var/lib/docker", "holds the root filesystem (mounted at /)"]


def test_this_machine_offers_no_disk_for_an_array() -> None:
    plan = hd.propose(hd.parse_lsblk(THIS_MACHINE))
    assert (plan.profile, plan.devices, plan.commands) == ("none", (), [])
    assert "holds the root filesystem (mounted at /)" in plan.refused["/dev/vda"]
    assert "/dev/zram0" not in plan.refused  # a RAM disk is not a disk worth naming


def test_it_reads_the_string_flags_of_older_lsblk() -> None:
    entry = {"name": "sdb", "size": "4000", "rota": "1", "rm": "0", "ro": "1", "type": "disk"}
    (disk,) = hd.parse_lsblk(json.dumps({"blockdevices": [entry]}))
    assert (disk.path, disk.size) == ("/dev/sdb", 4000)
    assert (disk.rotational, disk.removable, disk.read_only) == (True, False, True)


def test_it_parses_nested_partitions() -> None:
    nvme = FOUR[0]
    assert [part.name for part in nvme.children] == ["nvme0n1p1", "nvme0n1p2", "nvme0n1p3"]
    assert nvme.children[1].mountpoints == ("/",)
    assert nvme.children[1].fstype == "ext4"


def test_it_parses_wipefs_output_recorded_from_a_btrfs_member() -> None:
    (sig,) = hd.parse_wipefs(WIPEFS_BTRFS)
    assert sig == {
        "device": "loop0", "offset": "0x10040", "type": "btrfs",
        "uuid": "fe9dca34-7940-4b1a-a0e8-9103b261fedb", "label": "t",
    }  # fmt: skip
    assert hd.parse_wipefs('{"signatures": [\n\n   ]\n}') == []


# --- in use -------------------------------------------------------------------------------


def test_the_os_disk_is_in_use_for_each_mounted_partition_and_swap() -> None:
    assert hd.in_use(FOUR[0])[:3] == [
        "nvme0n1p1 mounted at /boot/efi",
        "nvme0n1p2 holds the root filesystem (mounted at /)",
        "nvme0n1p3 is used as swap",
    ]


def test_a_blank_disk_is_not_in_use() -> None:
    assert hd.in_use(FOUR[1]) == []


def test_an_old_signature_makes_a_disk_in_use() -> None:
    (disk,) = server(_hdd("sda", fstype="linux_raid_member"))[1:2]
    assert hd.in_use(disk) == ["holds an old linux_raid_member signature (a filesystem, RAID or LVM)"]


def test_an_active_lvm_or_raid_holder_makes_a_disk_in_use() -> None:
    lvm = {"name": "vg-data", "path": "/dev/mapper/vg-data", "size": TB8, "type": "lvm", "mountpoints": [None]}
    (disk,) = server(_hdd("sda", fstype="LVM2_member", children=[lvm]))[1:2]
    assert "held by vg-data (lvm): an active RAID, LVM or encrypted volume" in hd.in_use(disk)


def test_a_member_of_a_mounted_btrfs_without_its_own_mountpoint_is_in_use() -> None:
    same = "a4a1b7de-0f3c-4a55-9d33-6d1f0c35e1aa"
    disks = server(_hdd("sda", fstype="btrfs", uuid=same, mountpoints=["/srv"]), _hdd("sdb", fstype="btrfs", uuid=same))
    assert "member of the btrfs filesystem mounted at /srv (with sda)" in hd.in_use(disks[2], disks)
    assert not any("member" in reason for reason in hd.in_use(disks[2]))


def test_a_partition_in_a_mounted_btrfs_makes_its_disk_in_use() -> None:
    same = "a4a1b7de-0f3c-4a55-9d33-6d1f0c35e1aa"
    mounted = {**_part("sda1", TB8, "/srv", "btrfs", "sda"), "uuid": same}
    member = {**_part("sdb1", TB8, None, "btrfs", "sdb"), "uuid": same}
    disks = server(_hdd("sda", children=[mounted]), _hdd("sdb", children=[member]))
    assert "sdb1 member of the btrfs filesystem mounted at /srv (with sda1)" in hd.in_use(disks[2], disks)
    assert hd.propose(disks).refused["/dev/sdb"] == ["sdb1 member of the btrfs filesystem mounted at /srv (with sda1)"]


# --- the proposal -------------------------------------------------------------------------


def test_four_8tb_hdds_make_a_raid10_of_16tb_and_the_os_disk_is_left_alone() -> None:
    plan = hd.propose(FOUR)
    assert plan.profile == "raid10"
    assert plan.devices == ("/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd")
    assert plan.usable_bytes == 2 * TB8
    assert "nvme0n1p2 holds the root filesystem (mounted at /)" in plan.refused["/dev/nvme0n1"]
    assert plan.refused["/dev/sdz"] == ["is a removable or USB disk: not for the array"]
    assert "bcache: not available in this kernel; the plan leaves it out." in plan.warnings
    assert plan.cache == ()
    assert plan.needs_confirmation == {}
    assert plan.confirmation == "wipe sda sdb sdc sdd"


def test_the_raid10_commands_are_exact_and_touch_only_the_hdds() -> None:
    plan = hd.propose(FOUR, label="data", mount_target="/srv")
    assert plan.commands == [
        ["mkfs.btrfs", "-L", "data", "-d", "raid10", "-m", "raid10", "/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd"],
        ["mkdir", "-p", "/srv"],
        ["mount", "-t", "btrfs", "/dev/sda", "/srv"],
        ["btrfs", "quota", "enable", "/srv"],
        ["btrfs", "subvolume", "create", "/srv/homes"],
        ["btrfs", "subvolume", "create", "/srv/datasets"],
        ["btrfs", "subvolume", "create", "/srv/scratch"],
        ["btrfs", "subvolume", "create", "/srv/portal"],
    ]
    assert not any("nvme" in arg or "sdz" in arg for argv in plan.commands for arg in argv)


def test_render_shows_the_commands_as_typed_and_the_disks_left_alone() -> None:
    text = hd.render(hd.propose(FOUR))
    assert text.startswith("# btrfs raid10 over 4 disks, about 16.0 TB (14.6 TiB) usable\n")
    assert "\nmkfs.btrfs -L data -d raid10 -m raid10 /dev/sda /dev/sdb /dev/sdc /dev/sdd\n" in text
    assert "# left alone: /dev/sdz: is a removable or USB disk: not for the array\n" in text
    assert "# bcache: not available in this kernel; the plan leaves it out.\n" in text


def test_with_bcache_a_spare_ssd_is_named_as_a_cache_but_never_set_up() -> None:
    spare = {**_hdd("nvme1n1", 2000398934016), "rota": False, "tran": "nvme", "model": "Samsung SSD 990 PRO 2TB"}
    plan = hd.propose(server(_hdd("sda"), _hdd("sdb"), _hdd("sdc"), _hdd("sdd"), extra=(spare,)), bcache_available=True)
    assert plan.profile == "raid10"
    assert plan.cache == ("/dev/nvme1n1",)
    assert "/dev/nvme1n1" not in plan.devices
    assert any("could cache the HDDs" in warning and "plan only" in warning for warning in plan.warnings)
    assert not any("bcache" in " ".join(argv) or "nvme1n1" in " ".join(argv) for argv in plan.commands)


def test_without_bcache_a_spare_ssd_is_left_out_of_the_hdd_array() -> None:
    spare = {**_hdd("nvme1n1", 2000398934016), "rota": False, "tran": "nvme"}
    plan = hd.propose(server(_hdd("sda"), _hdd("sdb"), extra=(spare,)))
    assert plan.devices == ("/dev/sda", "/dev/sdb")
    assert plan.refused["/dev/nvme1n1"] == ["an SSD, left out of the HDD array (no bcache to make it a cache)"]


def test_two_hdds_make_a_raid1() -> None:
    plan = hd.propose(server(_hdd("sda"), _hdd("sdb")))
    assert (plan.profile, plan.usable_bytes) == ("raid1", TB8)
    assert plan.commands[0] == ["mkfs.btrfs", "-L", "data", "-d", "raid1", "-m", "raid1", "/dev/sda", "/dev/sdb"]


def test_three_hdds_make_a_raid1_of_half_the_total() -> None:
    plan = hd.propose(server(_hdd("sda"), _hdd("sdb"), _hdd("sdc")))
    assert (plan.profile, plan.usable_bytes) == ("raid1", 3 * TB8 // 2)


def test_one_hdd_is_single_with_metadata_dup() -> None:
    plan = hd.propose(server(_hdd("sda")))
    assert (plan.profile, plan.usable_bytes) == ("single", TB8)
    assert plan.commands[0] == ["mkfs.btrfs", "-L", "data", "-d", "single", "-m", "dup", "/dev/sda"]
    assert any("One disk" in warning for warning in plan.warnings)


def test_five_hdds_make_a_raid10_using_all_of_them() -> None:
    plan = hd.propose(server(*(_hdd(f"sd{letter}") for letter in "abcde")))
    assert (plan.profile, len(plan.devices), plan.usable_bytes) == ("raid10", 5, 5 * TB8 // 2)
    assert any("5 disks: btrfs raid10 takes any number from 4" in warning for warning in plan.warnings)


def test_unequal_raid1_follows_the_btrfs_rule() -> None:
    assert hd.usable_bytes("raid1", [10 * TB8, 2 * TB8]) == 2 * TB8  # total - largest
    assert hd.usable_bytes("raid1", [4 * TB8, 3 * TB8, 3 * TB8]) == 5 * TB8  # total / 2
    plan = hd.propose(server(_hdd("sda", 4 * TB8), _hdd("sdb", TB8)))
    assert plan.usable_bytes == TB8
    assert any("differ in size" in warning for warning in plan.warnings)


def test_unequal_raid10_caps_a_disk_at_a_quarter_of_the_raw_space() -> None:
    # One 16 TB disk among three of 8: it can hold at most a quarter of each chunk.
    assert hd.usable_bytes("raid10", [2 * TB8, TB8, TB8, TB8]) == 2 * TB8
    assert hd.usable_bytes("raid10", [TB8] * 4) == 2 * TB8
    assert hd.usable_bytes("raid10", [TB8] * 3) == 0


def test_a_chosen_profile_replaces_the_one_by_count() -> None:
    plan = hd.propose(FOUR, profile="raid1")
    assert (plan.profile, plan.usable_bytes) == ("raid1", 2 * TB8)
    assert plan.commands[0][:7] == ["mkfs.btrfs", "-L", "data", "-d", "raid1", "-m", "raid1"]
    assert plan.commands == hd._commands(plan)  # so apply accepts it


@pytest.mark.parametrize(
    ("profile", "match"),
    [("raid10", "raid10 needs at least 4 free disks; 3 are"), ("raid5", "'raid5' is not a profile")],
)
def test_a_chosen_profile_the_disks_cannot_make_is_refused(profile: str, match: str) -> None:
    with pytest.raises(DiskRefused, match=match):
        hd.propose(server(_hdd("sda"), _hdd("sdb"), _hdd("sdc")), profile=profile)


def test_only_the_chosen_disks_make_the_array_and_the_others_still_tell_what_is_in_use() -> None:
    same = "a4a1b7de-0f3c-4a55-9d33-6d1f0c35e1aa"
    disks = server(
        _hdd("sda", fstype="btrfs", uuid=same, mountpoints=["/old"]),
        _hdd("sdb", fstype="btrfs", uuid=same),
        _hdd("sdc"),
        _hdd("sdd"),
    )
    plan = hd.propose(disks, only={"/dev/sdb", "/dev/sdc", "/dev/sdd"})
    assert (plan.profile, plan.devices) == ("raid1", ("/dev/sdc", "/dev/sdd"))
    assert plan.refused == {"/dev/sdb": ["member of the btrfs filesystem mounted at /old (with sda)"]}


def test_left_out_says_why_a_disk_is_in_no_array() -> None:
    assert hd.left_out(FOUR[1], FOUR) == []
    assert hd.left_out(FOUR[-1], FOUR) == ["is a removable or USB disk: not for the array"]
    loop = hd.parse_lsblk(json.dumps({"blockdevices": [_hdd("loop0", type="loop", tran=None)]}))[0]
    assert hd.left_out(loop, [loop]) is None
    assert hd.left_out(loop, [loop], include_loop=True) == []


def test_a_disk_with_an_old_filesystem_needs_confirmation_and_is_wiped_partitions_first() -> None:
    old = _hdd("sdb", children=[_part("sdb1", TB8 - 2**20, None, "ext4", "sdb")])
    plan = hd.propose(server(_hdd("sda"), old, _hdd("sdc"), _hdd("sdd")))
    assert plan.devices == ("/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd")
    assert plan.needs_confirmation == {
        "/dev/sdb": ["partition sdb1 holds an old ext4 signature (a filesystem, RAID or LVM)"]
    }
    assert plan.commands[:2] == [["wipefs", "-a", "/dev/sdb1"], ["wipefs", "-a", "/dev/sdb"]]
    assert any("wiped only if you confirm /dev/sdb by name" in warning for warning in plan.warnings)


def test_a_disk_with_a_mounted_partition_is_refused() -> None:
    busy = _hdd("sdb", children=[_part("sdb1", TB8 - 2**20, "/data", "xfs", "sdb")])
    plan = hd.propose(server(_hdd("sda"), busy))
    assert plan.devices == ("/dev/sda",)
    assert plan.refused["/dev/sdb"] == ["sdb1 mounted at /data"]


def test_loop_devices_are_left_out_unless_asked_for() -> None:
    loop = _hdd("loop7", 128 * 2**20, type="loop", tran=None)
    assert "/dev/loop7" not in hd.propose(server(extra=(loop,))).devices
    assert hd.propose(server(extra=(loop,)), include_loop=True).devices == ("/dev/loop7",)


@pytest.mark.parametrize("label", ["-rf", "a b", "x" * 65, "", "lab\nel"])
def test_a_bad_label_is_refused(label: str) -> None:
    with pytest.raises(DiskRefused, match="not a filesystem label"):
        hd.propose(FOUR, label=label)


@pytest.mark.parametrize("target", ["srv", "/srv/../etc", "/srv/./x", "/srv x", "/srv/", "-rf", "/srv\n"])
def test_a_bad_mount_target_is_refused(target: str) -> None:
    with pytest.raises(DiskRefused, match="not an absolute path"):
        hd.propose(FOUR, mount_target=target)


# --- bcache -------------------------------------------------------------------------------


def test_bcache_is_absent_from_an_empty_root(tmp_path: Path) -> None:
    assert hd.bcache_supported(tmp_path) is False


@pytest.mark.parametrize("where", ["sys/fs/bcache", "sys/module/bcache"])
def test_bcache_is_seen_when_loaded(tmp_path: Path, where: str) -> None:
    (tmp_path / where).mkdir(parents=True)
    assert hd.bcache_supported(tmp_path) is True


def test_bcache_is_seen_as_a_module_or_built_in(tmp_path: Path) -> None:
    modules = tmp_path / "lib/modules" / os.uname().release
    (modules / "kernel/drivers/md/bcache").mkdir(parents=True)
    (modules / "kernel/drivers/md/bcache/bcache.ko.xz").touch()
    assert hd.bcache_supported(tmp_path) is True
    shutil.rmtree(modules / "kernel")
    (modules / "modules.builtin").write_text("kernel/drivers/md/raid1.ko\n")
    assert hd.bcache_supported(tmp_path) is False
    (modules / "modules.builtin").write_text("kernel/drivers/md/bcache/bcache.ko\n")
    assert hd.bcache_supported(tmp_path) is True


# --- apply's refusals before anything runs ------------------------------------------------


@pytest.fixture
def no_commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record what apply would run instead of running it."""
    calls: list[list[str]] = []
    monkeypatch.setattr(hd, "run", lambda argv, **_: calls.append(list(argv)))
    return calls


def _apply(plan: Plan, typed: str, *, confirmed: tuple[str, ...] = (), out: list[str] | None = None) -> None:
    hd.apply(
        plan,
        confirmed_disks=set(confirmed),
        typed_confirmation=typed,
        expected_confirmation=plan.confirmation,
        on_output=(out if out is not None else []).append,
    )


@pytest.mark.parametrize("typed", ["", "wipe sda sdb sdc", "WIPE SDA SDB SDC SDD", "wipe sda sdb sdc sdd "])
def test_apply_refuses_a_wrong_confirmation_and_runs_nothing(no_commands: list[list[str]], typed: str) -> None:
    with pytest.raises(DiskRefused, match="The confirmation does not match: type 'wipe sda sdb sdc sdd'"):
        _apply(hd.propose(FOUR), typed)
    assert no_commands == []


def test_apply_refuses_an_empty_expected_confirmation(no_commands: list[list[str]]) -> None:
    with pytest.raises(DiskRefused, match="confirmation does not match"):
        hd.apply(
            hd.propose(FOUR), confirmed_disks=set(), typed_confirmation="", expected_confirmation="", on_output=print
        )
    assert no_commands == []


def test_apply_refuses_a_plan_whose_commands_were_changed(no_commands: list[list[str]]) -> None:
    plan = hd.propose(FOUR)
    tampered = Plan(**{**plan.__dict__, "commands": [["rm", "-rf", "/"], *plan.commands]})
    with pytest.raises(DiskRefused, match="commands do not match"):
        _apply(tampered, plan.confirmation)
    assert no_commands == []


@pytest.mark.parametrize("path", ["/dev/../etc/passwd", "/dev/sda;rm", "/dev/SDA", "/etc/passwd", "/dev/sd\nx"])
def test_apply_refuses_a_device_path_that_is_not_one(no_commands: list[list[str]], path: str) -> None:
    plan = hd.propose(server(_hdd("sda")))
    bad = Plan(**{**plan.__dict__, "devices": (path,), "sizes": {path: TB8}})
    bad = Plan(**{**bad.__dict__, "commands": hd._commands(bad)})
    with pytest.raises(DiskRefused, match="is not a device path"):
        _apply(bad, bad.confirmation)
    assert no_commands == []


def test_apply_refuses_a_device_that_is_not_a_block_device(no_commands: list[list[str]]) -> None:
    plan = hd.propose(server(_hdd("null")))  # /dev/null exists, as a character device
    with pytest.raises(DiskRefused, match="/dev/null is not a block device"):
        _apply(plan, plan.confirmation)
    assert no_commands == []


def test_apply_refuses_a_confirmed_disk_that_is_not_in_the_plan(no_commands: list[list[str]]) -> None:
    plan = hd.propose(FOUR)
    with pytest.raises(DiskRefused, match="/dev/nvme0n1 is not in the plan"):
        _apply(plan, plan.confirmation, confirmed=("nvme0n1",))
    assert no_commands == []


# --- real loop devices --------------------------------------------------------------------

LOOP_SIZE = 128 * 2**20  # mkfs.btrfs accepts 4 x 128 MiB for raid10


def _root_with_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")
    for tool in ("losetup", "lsblk", "wipefs", "mkfs.btrfs", "btrfs", "mkfs.ext4", "blkid"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="module")
def loops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Five loop devices over sparse 128 MiB files, detached and removed at the end."""
    _root_with_tools()
    folder = tmp_path_factory.mktemp("disks")
    devices: list[str] = []
    try:
        for index in range(5):
            image = folder / f"disk{index}.img"
            run(["truncate", "-s", str(LOOP_SIZE), str(image)], timeout=10)
            devices.append(run(["losetup", "--find", "--show", str(image)], timeout=30).stdout.strip())
        yield devices
    finally:
        for device in devices:
            _unmount_all(device)
            run(["btrfs", "device", "scan", "--forget", device], timeout=30, check=False)
            run(["losetup", "-d", device], timeout=30, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _unmount_all(device: str) -> None:
    """Unmount whatever is mounted from ``device`` (a btrfs lists one member only: by UUID too)."""
    probe = run(["blkid", "-p", "-o", "value", "-s", "UUID", device], timeout=30, check=False)
    uuid_ = probe.stdout.strip()
    for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
        source, target = line.split()[:2]
        if source == device or (uuid_ and _uuid_of(source) == uuid_):
            run(["umount", target.replace("\\040", " ")], timeout=60, check=False)


def _uuid_of(source: str) -> str:
    if not source.startswith("/dev/loop"):
        return ""
    return run(["blkid", "-p", "-o", "value", "-s", "UUID", source], timeout=30, check=False).stdout.strip()


@pytest.fixture
def blank(loops: list[str]) -> Iterator[list[str]]:
    """The five loop devices, unmounted and without signatures, before and after the test."""
    for device in loops:
        _unmount_all(device)
        _wipe(device)
    try:
        yield loops
    finally:
        for device in loops:
            _unmount_all(device)
            run(["btrfs", "device", "scan", "--forget", device], timeout=30, check=False)
            run(["wipefs", "-a", "-q", device], timeout=30, check=False)


def _wipe(device: str) -> None:
    """wipefs -a opens the device exclusively; once here it failed right after the previous test's
    unmount (the device still busy for a moment), so it tries a few times before failing."""
    for _ in range(5):
        if run(["wipefs", "-a", "-q", device], timeout=30, check=False).returncode == 0:
            return
        time.sleep(0.5)
    run(["wipefs", "-a", "-q", device], timeout=30)


def _mine(devices: list[str]) -> list[Disk]:
    """This test's loop devices out of list_disks (other loop devices may exist on the host)."""
    found = {disk.path: disk for disk in hd.list_disks()}
    return [found[device] for device in devices]


def _plan(devices: list[str], tmp_path: Path) -> Plan:
    label = f"t{uuid.uuid4().hex[:8]}"
    return hd.propose(_mine(devices), include_loop=True, label=label, mount_target=str(tmp_path / "mnt"))


def _mkfs_ext4_mounted(device: str, where: Path) -> None:
    run(["mkfs.ext4", "-q", "-F", device], timeout=60)
    where.mkdir()
    run(["mount", device, str(where)], timeout=60)


@pytest.mark.loopdev
def test_list_disks_reads_a_loop_device_and_its_btrfs_signature(blank: list[str]) -> None:
    run(["mkfs.btrfs", "-q", "-L", "probe", blank[0]], timeout=120)
    (disk,) = _mine(blank[:1])
    assert (disk.type, disk.size, disk.fstype, disk.signatures) == ("loop", LOOP_SIZE, "btrfs", ("btrfs",))
    assert disk.uuid == run(["blkid", "-p", "-o", "value", "-s", "UUID", blank[0]], timeout=30).stdout.strip()
    assert hd.in_use(disk) == ["holds an old btrfs signature (a filesystem, RAID or LVM)"]


@pytest.mark.loopdev
def test_the_plan_for_four_loop_disks_is_raid10(blank: list[str], tmp_path: Path) -> None:
    plan = _plan(blank[:4], tmp_path)
    assert (plan.profile, plan.devices, plan.usable_bytes) == ("raid10", tuple(blank[:4]), 2 * LOOP_SIZE)
    assert plan.needs_confirmation == {}
    assert plan.commands[0] == ["mkfs.btrfs", "-L", plan.label, "-d", "raid10", "-m", "raid10", *blank[:4]]


@pytest.mark.loopdev
def test_apply_with_the_wrong_confirmation_runs_nothing(blank: list[str], tmp_path: Path) -> None:
    plan, out = _plan(blank[:4], tmp_path), []
    with pytest.raises(DiskRefused, match="confirmation does not match"):
        _apply(plan, f"wipe {plan.label}", out=out)
    assert out == []
    assert all(disk.signatures == () for disk in _mine(blank[:4]))
    assert not (tmp_path / "mnt").exists()


@pytest.mark.loopdev
def test_apply_makes_one_raid10_filesystem_over_four_disks_and_the_layout(blank: list[str], tmp_path: Path) -> None:
    plan, out = _plan(blank[:4], tmp_path), []
    _apply(plan, plan.confirmation, out=out)
    target = str(tmp_path / "mnt")
    shown = run(["btrfs", "filesystem", "show", target], timeout=30).stdout
    assert "Total devices 4" in shown
    assert all(f"path {device}\n" in shown for device in blank[:4])
    assert "Data, RAID10" in run(["btrfs", "filesystem", "df", target], timeout=30).stdout
    uuids = {run(["blkid", "-p", "-o", "value", "-s", "UUID", d], timeout=30).stdout.strip() for d in blank[:4]}
    assert len(uuids) == 1
    subvolumes = run(["btrfs", "subvolume", "list", target], timeout=30).stdout
    assert sorted(line.split()[-1] for line in subvolumes.splitlines()) == sorted(hd.SUBVOLUMES)
    assert run(["btrfs", "qgroup", "show", target], timeout=30).returncode == 0  # fails with quotas off
    assert f"$ mkfs.btrfs -L {plan.label} -d raid10 -m raid10 {' '.join(blank[:4])}" in out
    assert f"$ btrfs subvolume create {target}/portal" in out


@pytest.mark.loopdev
@pytest.mark.parametrize("busy", ["not empty", "a mount point"])
def test_apply_refuses_a_mount_target_in_use_and_runs_nothing(blank: list[str], tmp_path: Path, busy: str) -> None:
    plan, out = _plan(blank[:4], tmp_path), []
    (tmp_path / "mnt").mkdir()
    if busy == "not empty":
        (tmp_path / "mnt" / "data.txt").write_text("kept")
    else:
        run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tmp_path / "mnt")], timeout=30)
    try:
        with pytest.raises(DiskRefused, match=f"{tmp_path}/mnt is {busy}"):
            _apply(plan, plan.confirmation, out=out)
    finally:
        if busy == "a mount point":
            run(["umount", str(tmp_path / "mnt")], timeout=30)
    assert out == []
    assert all(disk.signatures == () for disk in _mine(blank[:4]))


@pytest.mark.loopdev
def test_a_mounted_loop_disk_is_refused_with_where_it_is_mounted(blank: list[str], tmp_path: Path) -> None:
    _mkfs_ext4_mounted(blank[4], tmp_path / "old")
    plan = _plan(blank, tmp_path)
    assert plan.devices == tuple(blank[:4])
    assert plan.refused[blank[4]] == [f"mounted at {tmp_path / 'old'}"]


@pytest.mark.loopdev
def test_every_member_of_a_mounted_two_disk_btrfs_is_refused(blank: list[str], tmp_path: Path) -> None:
    run(["mkfs.btrfs", "-q", "-d", "raid1", "-m", "raid1", blank[3], blank[4]], timeout=120)
    (tmp_path / "old").mkdir()
    run(["mount", blank[3], str(tmp_path / "old")], timeout=60)
    plan = _plan(blank, tmp_path)
    assert plan.devices == tuple(blank[:3])
    assert plan.refused[blank[3]] == [f"mounted at {tmp_path / 'old'}"]
    name = blank[3].removeprefix("/dev/")
    assert plan.refused[blank[4]] == [f"member of the btrfs filesystem mounted at {tmp_path / 'old'} (with {name})"]


@pytest.mark.loopdev
def test_a_disk_mounted_after_the_plan_stays_refused_even_confirmed(blank: list[str], tmp_path: Path) -> None:
    run(["mkfs.ext4", "-q", "-F", blank[4]], timeout=60)
    plan = _plan(blank, tmp_path)
    assert plan.needs_confirmation == {blank[4]: ["holds an old ext4 signature (a filesystem, RAID or LVM)"]}
    (tmp_path / "old").mkdir()
    run(["mount", blank[4], str(tmp_path / "old")], timeout=60)
    out: list[str] = []
    with pytest.raises(DiskRefused, match=f"{blank[4]} mounted at {tmp_path / 'old'}"):
        _apply(plan, plan.confirmation, confirmed=(blank[4],), out=out)
    assert out == []
    assert all(disk.signatures == () for disk in _mine(blank[:4]))


@pytest.mark.loopdev
def test_an_old_filesystem_is_wiped_only_when_its_disk_is_confirmed_by_name(blank: list[str], tmp_path: Path) -> None:
    run(["mkfs.ext4", "-q", "-F", blank[4]], timeout=60)
    plan = _plan(blank, tmp_path)
    assert plan.commands[0] == ["wipefs", "-a", blank[4]]
    with pytest.raises(DiskRefused, match=f"confirm {blank[4]} by name to wipe it"):
        _apply(plan, plan.confirmation, confirmed=(blank[0],))
    assert _mine(blank[4:])[0].fstype == "ext4"
    _apply(plan, plan.confirmation, confirmed=(blank[4].removeprefix("/dev/"),))
    shown = run(["btrfs", "filesystem", "show", str(tmp_path / "mnt")], timeout=30).stdout
    assert "Total devices 5" in shown


@pytest.mark.loopdev
def test_a_failing_command_stops_the_run_and_is_named(blank: list[str], tmp_path: Path) -> None:
    plan, out = _plan(blank[:4], tmp_path), []
    (tmp_path / "mnt").write_text("a file where the mount point should be")
    with pytest.raises(DiskSetupFailed, match=rf"`mkdir -p {tmp_path}/mnt` failed \(exit 1\): mkdir: cannot create"):
        _apply(plan, plan.confirmation, out=out)
    assert out[0].startswith("$ mkfs.btrfs")
    assert not any(line.startswith("$ mount") for line in out)
    assert not os.path.ismount(tmp_path / "mnt")
