"""A member gets a deleted file back from an offsite (restic) snapshot in Chromium: My snapshots
lists both tiers, the offsite one opens, a folder of it, Restore; the job runs in the test
process (no worker here) and the file is back in ~/restored/<time>/ with the same bytes. The
restic snapshot is made as the nightly run makes it, in a real repository on a local path.
Screenshots in tests/e2e/screenshots/."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from backups import offsite_repo, offsite_restore, restore
from backups.models import ResticSnapshot, Snapshot
from hostops import btrfs, mounts, restic
from portal.models import Operation, User
from storage.layout import prepare_member
from tests.factories import UserFactory
from tests.loopfs import needs_loop_devices
from tests.storage import conftest as storage_conftest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.loopdev,
    needs_loop_devices,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# The storage tests' fixtures: a RAID10 of loop devices per module, a storage root per test.
storage_fs = storage_conftest.storage_fs
btrfs_root = storage_conftest.btrfs_root

SHOTS = Path(__file__).parent / "screenshots"
WHEN = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


@pytest.fixture
def offsite(settings: Any, tmp_path: Path) -> None:
    password = tmp_path / "restic-password"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)
    settings.BACKUP_RESTIC_REPOSITORY = str(tmp_path / "repo")
    settings.BACKUP_RESTIC_PASSWORD_FILE = str(password)
    settings.BACKUP_RESTIC_MOUNT_ROOT = str(tmp_path / "mnt")
    settings.BACKUP_RESTIC_CACHE_DIR = str(tmp_path / "cache")
    settings.RCLONE_REMOTES_JSON = json.dumps([])
    restic.init(offsite_repo.repository())


def _offsite_snapshot(root: str, user: User, when: datetime) -> ResticSnapshot:
    """The hour's BTRFS snapshot, mounted at the source's fixed path and backed up, and its row."""
    source = f"homes/{user.username}"
    path = f"{root}/.snapshots/{source}/{when:%Y-%m-%dT%H%M%SZ}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    btrfs.snapshot_readonly(f"{root}/{source}", path)
    local = Snapshot.objects.create(source=source, owner=user, path=path, taken_at=when)
    mount = offsite_repo.mount_path(source)
    mounts.bind_readonly(path, mount)
    try:
        summary = restic.backup(
            offsite_repo.repository(), [mount], time=when, host="portal", tags=["portal", f"source:{source}"]
        )
    finally:
        mounts.unmount(mount)
    return ResticSnapshot.objects.create(
        snapshot_id=summary.snapshot_id,
        source=source,
        owner=user,
        path=mount,
        taken_at=when,
        local=local,
        files=summary.total_files_processed,
        size=summary.total_bytes_processed,
    )


def test_a_member_restores_a_deleted_file_from_an_offsite_snapshot(
    page: Page, sign_in_as: Callable[[User], None], btrfs_root: str, offsite: None
) -> None:
    alice = UserFactory(username="alice")
    home = prepare_member(alice).home_path
    os.makedirs(f"{home}/thesis/figures")
    data = os.urandom(150_000)
    with open(f"{home}/thesis/chapter1.tex", "wb") as handle:
        handle.write(data)
    with open(f"{home}/thesis/notes.md", "w") as handle:
        handle.write("# notes\n")
    os.symlink("/etc/shadow", f"{home}/thesis/shadow")
    with open(os.fsencode(f"{home}/thesis/") + b"draft\xff\nold.tex", "wb") as handle:  # not UTF-8, a newline
        handle.write(b"old draft")
    for folder in ("thesis", "thesis/figures"):
        os.chown(f"{home}/{folder}", alice.uid, alice.uid)
    row = _offsite_snapshot(btrfs_root, alice, WHEN)
    os.unlink(f"{home}/thesis/chapter1.tex")

    sign_in_as(alice)
    page.goto(reverse("backups:my-snapshots"))
    offsite_row = page.locator(f"#offsite-{row.pk}")
    expect(offsite_row).to_contain_text(row.short_id)
    expect(offsite_row).to_contain_text("2026-11-28")
    page.screenshot(path=str(SHOTS / "offsite-snapshots.png"), full_page=True)
    offsite_row.get_by_role("link", name="Browse").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Offsite snapshot of")
    page.get_by_role("link", name="thesis/").click()
    files = page.locator(".snapshot-files")
    expect(files).to_contain_text("chapter1.tex")
    expect(files).to_contain_text("link, not followed")
    expect(files).to_contain_text("draft\ufffd\\nold.tex")
    page.get_by_label("Restore chapter1.tex").check()
    page.screenshot(path=str(SHOTS / "offsite-browse.png"), full_page=True)
    page.get_by_role("button", name="Restore selected").click()
    expect(page.locator(".messages")).to_contain_text("Restoring 1 entry")

    op = Operation.objects.get(kind=restore.RESTORE_KIND)
    offsite_restore.offsite_restore_execute(op.pk)  # what the storage worker does with the task
    expect(page.locator(f"#op-{op.pk}")).to_contain_text("Succeeded")
    expect(page.locator(f"#op-{op.pk}")).to_contain_text("restored/")
    page.screenshot(path=str(SHOTS / "offsite-restore-done.png"), full_page=True)

    folder = f"{home}/restored/{restore.restore_folder_name(op.created)}"
    with open(f"{folder}/chapter1.tex", "rb") as handle:
        assert handle.read() == data
    assert os.stat(f"{folder}/chapter1.tex").st_uid == alice.uid
    assert os.listdir(f"{btrfs_root}/{offsite_restore.STAGING_FOLDER}") == []


def test_an_admin_sends_a_members_offsite_snapshot_to_the_admin_restore(
    page: Page, sign_in_as: Callable[[User], None], btrfs_root: str, offsite: None
) -> None:
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    alice = UserFactory(username="alice")
    home = prepare_member(alice).home_path
    with open(f"{home}/notes.txt", "w") as handle:
        handle.write("as it was\n")
    row = _offsite_snapshot(btrfs_root, alice, WHEN)
    sign_in_as(admin)
    page.goto(reverse("member-detail", args=[alice.pk]))
    section = page.locator("#member-snapshots")
    expect(section).to_contain_text(row.short_id)
    page.screenshot(path=str(SHOTS / "offsite-member-section.png"), full_page=True)
    section.locator("li", has_text=row.short_id).get_by_role("link", name="restore elsewhere").click()
    expect(page.get_by_label("Offsite snapshot", exact=True)).to_have_value(str(row.pk))
    page.get_by_label("Path", exact=True).fill("notes.txt")
    page.get_by_label("Target", exact=True).fill(f"{btrfs_root}/datasets/notes-recovered.txt")
    page.get_by_role("button", name="Restore").click()
    expect(page.locator(".messages")).to_contain_text("Restoring to")
    op = Operation.objects.get(kind=restore.RESTORE_KIND)
    offsite_restore.offsite_restore_execute(op.pk)
    expect(page.locator(f"#op-{op.pk}")).to_contain_text("Succeeded")
    page.screenshot(path=str(SHOTS / "offsite-admin-restore.png"), full_page=True)
    with open(f"{btrfs_root}/datasets/notes-recovered.txt") as handle:
        assert handle.read() == "as it was\n"
