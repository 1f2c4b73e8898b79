"""The usage pass on a real BTRFS: figures from the qgroups, the soft-limit warning once per
crossing, the hard limit set as a qgroup limit that stops writes after a warning at 90%, and
the filesystem's figures for the storage page."""

from __future__ import annotations

import errno
import os

import pytest

from hostops import btrfs
from portal.models import Notification, Quota, User
from storage.layout import prepare_member
from storage.models import FilesystemState, MemberStorage
from storage.usage import _tell_new_errors, usage_pass
from tests.factories import UserFactory
from tests.loopfs import MIB, needs_loop_devices
from tests.storage.conftest import write_random

pytestmark = [needs_loop_devices]


def member_with(username: str, *, soft: int, hard: int | None = None) -> User:
    user = UserFactory(username=username)
    Quota.objects.filter(user=user).update(storage_soft=soft, storage_hard=hard)
    return User.objects.select_related("quota").get(pk=user.pk)


def titles(user: User) -> list[str]:
    return list(Notification.objects.filter(user=user).order_by("pk").values_list("title", flat=True))


@pytest.mark.loopdev
def test_usage_matches_what_was_written_within_btrfs_accounting(btrfs_root: str, admin_user: User) -> None:
    alice = member_with("alice", soft=1024 * MIB)
    row = prepare_member(alice)
    write_random(f"{row.home_path}/a", 12 * MIB)
    write_random(f"{row.scratch_path}/b", 5 * MIB)
    btrfs.qgroup_show(btrfs_root, sync=True)  # commit, as the 30 s periodic commit would

    report = usage_pass()

    assert (report.measured, report.problems, report.skipped) == (1, [], "")
    row.refresh_from_db()
    assert 17 * MIB <= row.referenced <= 17 * MIB * 1.1
    assert 12 * MIB <= row.home_referenced <= 12 * MIB * 1.1
    assert 5 * MIB <= row.scratch_referenced <= 5 * MIB * 1.1
    assert row.exclusive == row.referenced  # nothing is shared with a snapshot yet
    assert row.measured_at is not None
    fs = FilesystemState.objects.get(root=btrfs_root)
    assert (fs.problems, fs.on_btrfs, fs.data_profile, fs.size) == ([], True, "RAID10", 4 * 256 * MIB)
    assert len(fs.devices) == 4
    assert [device["errors"]["corruption_errs"] for device in fs.devices] == [0] * 4
    assert {folder["name"]: folder["subvolume"] for folder in fs.folders} == {
        "homes": True,
        "scratch": True,
        "datasets": True,
        "portal": True,
    }


@pytest.mark.loopdev
def test_the_soft_limit_warns_once_per_crossing(btrfs_root: str, admin_user: User) -> None:
    bob = member_with("bob", soft=8 * MIB)
    row = prepare_member(bob)
    write_random(f"{row.home_path}/big", 10 * MIB)
    btrfs.qgroup_show(btrfs_root, sync=True)

    first = usage_pass()
    again = usage_pass()

    assert first.warnings == ["bob is over their storage soft limit (10M of 8M)"]
    assert again.warnings == []
    assert titles(bob) == ["Your storage is over its soft limit"]
    assert len(titles(admin_user)) == 1
    assert "bob is over their storage soft limit" in titles(admin_user)[0]
    # Below 95% of the limit re-arms it; crossing again warns again.
    os.unlink(f"{row.home_path}/big")
    btrfs.qgroup_show(btrfs_root, sync=True)
    assert usage_pass().warnings == []
    assert MemberStorage.objects.get(pk=row.pk).over_soft is False
    write_random(f"{row.home_path}/big", 10 * MIB)
    btrfs.qgroup_show(btrfs_root, sync=True)
    assert len(usage_pass().warnings) == 1
    assert titles(bob) == ["Your storage is over its soft limit"] * 2


@pytest.mark.loopdev
def test_the_hard_limit_is_a_qgroup_limit_that_stops_writes_after_a_warning_at_90_percent(
    btrfs_root: str, admin_user: User
) -> None:
    carol = member_with("carol", soft=4 * MIB, hard=20 * MIB)
    row = prepare_member(carol)  # sets the limit at once
    row.refresh_from_db()
    assert row.hard_limit_applied == 20 * MIB
    group = next(g for g in btrfs.qgroup_show(btrfs_root) if g.qgroupid == row.qgroup)
    assert group.max_referenced == 20 * MIB

    write_random(f"{row.home_path}/a", 12 * MIB)
    write_random(f"{row.scratch_path}/b", 7 * MIB)  # 19 MiB: past 90% of 20
    btrfs.qgroup_show(btrfs_root, sync=True)
    warned = usage_pass().warnings
    assert len(warned) == 2  # the soft limit and 90% of the hard one, each once
    assert "Your storage is at 9" in titles(carol)[-1]
    assert "hard limit" in titles(carol)[-1]
    assert usage_pass().warnings == []

    with pytest.raises(OSError, match="Disk quota exceeded") as refused:
        write_random(f"{row.scratch_path}/c", 4 * MIB)
    assert refused.value.errno == errno.EDQUOT


@pytest.mark.loopdev
def test_a_changed_hard_limit_is_applied_by_the_next_pass_and_removing_it_lifts_it(btrfs_root: str, db: None) -> None:
    dave = member_with("dave", soft=1024 * MIB)
    row = prepare_member(dave)
    assert row.hard_limit_applied is None
    Quota.objects.filter(user=dave).update(storage_hard=64 * MIB)
    assert usage_pass().limits_set == ["dave: 64M"]
    assert next(g for g in btrfs.qgroup_show(btrfs_root) if g.qgroupid == row.qgroup).max_referenced == 64 * MIB
    Quota.objects.filter(user=dave).update(storage_hard=None)
    assert usage_pass().limits_set == ["dave: none"]
    assert next(g for g in btrfs.qgroup_show(btrfs_root) if g.qgroupid == row.qgroup).max_referenced is None


@pytest.mark.loopdev
def test_stale_qgroups_of_deleted_subvolumes_are_cleared_by_the_pass(btrfs_root: str, db: None) -> None:
    doomed = f"{btrfs_root}/doomed"
    btrfs.subvolume_create(doomed)
    write_random(f"{doomed}/x", MIB)
    ident = btrfs.subvolume_qgroup(doomed)
    btrfs.subvolume_delete(doomed)
    report = usage_pass()
    assert report.problems == []
    assert ident not in {group.qgroupid for group in btrfs.qgroup_show(btrfs_root)}


def test_on_a_plain_disk_nothing_is_measured_and_the_page_is_told(plain_root: str, db: None) -> None:
    prepare_member(UserFactory(username="erin"))
    report = usage_pass()
    assert report.measured == 0
    assert "not on BTRFS" in report.skipped
    fs = FilesystemState.objects.get(root=plain_root)
    assert fs.on_btrfs is False
    assert fs.size
    assert fs.free is not None
    assert [folder["subvolume"] for folder in fs.folders] == [False] * 4


def test_device_errors_that_grew_are_told_to_the_admins_once(db: None, admin_user: User) -> None:
    counters = {"write_io_errs": 0, "read_io_errs": 0, "flush_io_errs": 0, "corruption_errs": 0, "generation_errs": 0}
    before = {"/dev/sdb": {"devid": 1, "path": "/dev/sdb", "errors": counters}}
    state = FilesystemState(root="/srv", on_btrfs=True)
    state.devices = [{"devid": 1, "path": "/dev/sdb", "errors": {**counters, "corruption_errs": 3}}]
    _tell_new_errors(state, before, was_missing=False)
    _tell_new_errors(state, {"/dev/sdb": state.devices[0]}, was_missing=False)  # no growth since
    notes = Notification.objects.filter(user=admin_user)
    assert [note.body.split(".")[0] for note in notes] == ["/dev/sdb: 3 new corruption error(s)"]
