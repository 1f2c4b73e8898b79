"""Members' homes and scratch on a real BTRFS: subvolumes owned by the member in a group
qgroup, a plain home of an older member turned into a subvolume, and the deletion of a
departed member's storage; plain folders where the root is not BTRFS."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hostops import btrfs, files
from portal.models import Operation, User
from storage import layout, services
from storage.layout import Layout, delete_member_data, layout_ensure, prepare_member
from storage.models import MemberStorage
from tests.factories import UserFactory
from tests.loopfs import MIB, needs_loop_devices
from tests.storage.conftest import write_random

pytestmark = [needs_loop_devices]


def group_of(root: str, qgroupid: str) -> btrfs.Qgroup | None:
    return next((group for group in btrfs.qgroup_show(root, sync=True) if group.qgroupid == qgroupid), None)


@pytest.mark.loopdev
def test_the_shared_folders_are_subvolumes_and_quotas_are_turned_on(btrfs_root: str) -> None:
    made = layout_ensure()
    lay = Layout.from_settings()
    assert made == [lay.homes, lay.scratch, lay.datasets, lay.portal]
    assert all(btrfs.is_subvolume(path) for path in made)
    assert layout_ensure() == []  # a second pass finds them
    assert [name for name, _path, subvolume in layout.shared_folders() if subvolume] == [
        "homes",
        "scratch",
        "datasets",
        "portal",
    ]


@pytest.mark.loopdev
def test_a_member_gets_home_and_scratch_subvolumes_of_their_own_in_one_qgroup(btrfs_root: str, db: None) -> None:
    alice = UserFactory(username="alice")
    row = prepare_member(alice)
    home, scratch = f"{btrfs_root}/homes/alice", f"{btrfs_root}/scratch/alice"
    assert (row.kind, row.home_path, row.scratch_path, row.qgroup) == ("subvolume", home, scratch, f"1/{alice.uid}")
    for path in (home, scratch):
        info = os.stat(path)
        assert btrfs.is_subvolume(path)
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (alice.uid, alice.uid, 0o750)
    write_random(f"{home}/data", 6 * MIB)
    write_random(f"{scratch}/tmp", 3 * MIB)
    group = group_of(btrfs_root, row.qgroup)
    assert group is not None
    assert 9 * MIB <= group.referenced <= 9 * MIB * 1.1
    # Safe to repeat: nothing is made twice and the files stay.
    assert prepare_member(alice).pk == row.pk
    assert os.path.getsize(f"{home}/data") == 6 * MIB


@pytest.mark.loopdev
def test_the_plain_home_of_an_older_member_becomes_a_subvolume_with_the_same_files(btrfs_root: str, db: None) -> None:
    bob = UserFactory(username="bob")
    home = f"{btrfs_root}/homes/bob"
    files.ensure_dir(f"{btrfs_root}/homes")
    files.ensure_private_dir(home, uid=bob.uid, gid=bob.uid)
    os.makedirs(f"{home}/project/.git")
    write_random(f"{home}/project/weights.bin", 4 * MIB)
    os.chown(f"{home}/project/weights.bin", bob.uid, bob.uid)
    os.symlink("project/weights.bin", f"{home}/latest")
    before = Path(f"{home}/project/weights.bin").read_bytes()

    prepare_member(bob)

    assert btrfs.is_subvolume(home)
    assert Path(f"{home}/project/weights.bin").read_bytes() == before
    assert os.stat(f"{home}/project/weights.bin").st_uid == bob.uid
    assert os.readlink(f"{home}/latest") == "project/weights.bin"
    assert os.stat(home).st_uid == bob.uid
    assert not os.path.lexists(f"{btrfs_root}/homes/.bob.converting")


@pytest.mark.loopdev
def test_a_conversion_cut_short_starts_again_from_the_old_folder(btrfs_root: str, db: None) -> None:
    carol = UserFactory(username="carol")
    layout_ensure()
    home, aside = f"{btrfs_root}/homes/carol", f"{btrfs_root}/homes/.carol.converting"
    os.makedirs(aside)
    write_random(f"{aside}/all", 2 * MIB)
    btrfs.subvolume_create(home)  # the worker died during the copy: a partial subvolume
    write_random(f"{home}/all", MIB)

    prepare_member(carol)

    assert btrfs.is_subvolume(home)
    assert os.path.getsize(f"{home}/all") == 2 * MIB
    assert not os.path.lexists(aside)


@pytest.mark.loopdev
def test_deleting_a_members_data_removes_their_subvolumes_nested_ones_and_qgroup(btrfs_root: str, db: None) -> None:
    dave = UserFactory(username="dave")
    row = prepare_member(dave)
    btrfs.subvolume_create(f"{row.home_path}/venv")  # members may make their own
    write_random(f"{row.home_path}/venv/x", MIB)

    deleted = delete_member_data(dave)

    assert deleted == [row.home_path, row.scratch_path]
    assert not os.path.lexists(row.home_path)
    assert not os.path.lexists(row.scratch_path)
    assert group_of(btrfs_root, row.qgroup) is None
    row.refresh_from_db()
    assert (row.state, row.referenced) == (MemberStorage.State.DELETED, None)
    assert row.deleted_at is not None


def test_on_a_plain_disk_homes_are_private_folders_and_not_measured(plain_root: str, db: None) -> None:
    erin = UserFactory(username="erin")
    row = prepare_member(erin)
    assert (row.kind, row.qgroup) == ("folder", "")
    info = os.stat(f"{plain_root}/homes/erin")
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (erin.uid, 0o750)
    assert os.path.isdir(f"{plain_root}/scratch/erin")
    assert os.path.isdir(f"{plain_root}/datasets")
    assert delete_member_data(erin) == [f"{plain_root}/homes/erin", f"{plain_root}/scratch/erin"]


def test_a_username_that_could_leave_the_root_is_refused(plain_root: str, db: None) -> None:
    with pytest.raises(layout.StorageError, match="not a username"):
        Layout.from_settings().home_of("../etc")


# --- the admin's deletion, as an Operation --------------------------------------------------


def departed(username: str) -> User:
    return UserFactory(username=username, status=User.Status.SUSPENDED)


@pytest.mark.loopdev
def test_an_admin_deletes_a_departed_members_storage_as_an_audited_operation(
    btrfs_root: str, admin_user: User, django_capture_on_commit_callbacks
) -> None:
    frank = departed("frank")
    row = prepare_member(frank)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        op = services.member_storage_delete(member=frank, confirmation="frank", actor=admin_user)
    assert len(sent) == 1
    row.refresh_from_db()
    assert row.state == MemberStorage.State.DELETING
    services.member_storage_delete_run(op.pk)
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED, op.error
    assert f"deleted {row.home_path}" in op.log
    assert not os.path.lexists(row.home_path)
    from portal.models import AuditEvent

    event = AuditEvent.objects.get(action="storage.member_delete")
    assert (event.actor, event.target_id, event.detail["home"]) == (admin_user, str(frank.pk), row.home_path)
    services.member_storage_delete_run(op.pk)  # a second delivery does nothing


@pytest.mark.parametrize(
    ("change", "confirmation", "message"),
    [
        ("active", "grace", "still a member: suspend them first"),
        ("workspace", "grace", "still has workspaces"),
        ("none", "Grace", "type grace exactly"),
        ("none", "", "type grace exactly"),
        ("deleted", "grace", "has no storage"),
        ("deleting", "grace", "being deleted already"),
    ],
)
def test_a_deletion_is_refused_with_nothing_changed(
    plain_root: str, admin_user: User, change: str, confirmation: str, message: str
) -> None:
    from workspaces.models import Workspace

    grace = departed("grace")
    row = prepare_member(grace)
    if change == "active":
        User.objects.filter(pk=grace.pk).update(status=User.Status.ACTIVE)
        grace.refresh_from_db()
    elif change == "workspace":
        from portal.models import Host

        Workspace.objects.create(owner=grace, host=Host.local(), name="", ssh_port=2299)
    elif change in ("deleted", "deleting"):
        MemberStorage.objects.filter(pk=row.pk).update(state=change)
    before = MemberStorage.objects.get(pk=row.pk).state
    with pytest.raises(services.StorageRefused, match=message):
        services.member_storage_delete(member=grace, confirmation=confirmation, actor=admin_user)
    assert MemberStorage.objects.get(pk=row.pk).state == before
    assert not Operation.objects.filter(kind=services.DELETE_KIND).exists()
    assert os.path.isdir(f"{plain_root}/homes/grace")
