"""A member gets a deleted file back from a snapshot in Chromium: the dashboard's card, the list
of snapshots, a folder of one, Restore; the job runs in the test process (no worker here) and
the file is back in ~/restored/<time>/ with the same bytes. Screenshots in tests/e2e/screenshots/."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from backups import restore
from backups.models import Snapshot
from hostops import btrfs
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


def _snapshot(root: str, user: User, when: datetime) -> Snapshot:
    base = f"{root}/.snapshots/homes/{user.username}"
    os.makedirs(base, exist_ok=True)
    os.chmod(f"{root}/.snapshots", 0o700)
    path = f"{base}/{when:%Y-%m-%dT%H%M%SZ}"
    btrfs.snapshot_readonly(f"{root}/homes/{user.username}", path)
    return Snapshot.objects.create(source=f"homes/{user.username}", owner=user, path=path, taken_at=when)


def test_a_member_restores_a_deleted_file_from_a_snapshot(
    page: Page,
    sign_in_as: Callable[[User], None],
    btrfs_root: str,
) -> None:
    alice = UserFactory(username="alice")
    home = prepare_member(alice).home_path
    os.makedirs(f"{home}/thesis/figures")
    data = os.urandom(200_000)
    with open(f"{home}/thesis/chapter1.tex", "wb") as handle:
        handle.write(data)
    with open(f"{home}/thesis/notes.md", "w") as handle:
        handle.write("# notes\n")
    os.symlink("/etc", f"{home}/thesis/etc")
    with open(os.fsencode(f"{home}/thesis/") + b"draft\xff\nold.tex", "wb") as handle:  # not UTF-8, a newline
        handle.write(b"old draft")
    with open(f"{home}/README.txt", "w") as handle:
        handle.write("hello\n")
    for folder in ("thesis", "thesis/figures"):
        os.chown(f"{home}/{folder}", alice.uid, alice.uid)
    _snapshot(btrfs_root, alice, datetime(2026, 12, 2, 13, 0, tzinfo=UTC))
    snapshot = _snapshot(btrfs_root, alice, datetime(2026, 12, 2, 14, 0, tzinfo=UTC))
    os.unlink(f"{home}/thesis/chapter1.tex")

    sign_in_as(alice)
    page.goto(reverse("dashboard"))
    card = page.locator("#snapshots-card")
    expect(card).to_contain_text("Snapshots: restore your files")
    card.get_by_role("link", name="Browse and restore").click()
    expect(page.get_by_role("heading", level=1, name="My snapshots")).to_be_visible()
    page.locator(f"#snapshot-{snapshot.pk}").get_by_role("link", name="Browse").click()
    page.get_by_role("link", name="thesis/").click()
    expect(page.locator(".snapshot-files")).to_contain_text("chapter1.tex")
    expect(page.locator(".snapshot-files")).to_contain_text("link, not followed")
    expect(page.locator(".snapshot-files")).to_contain_text("draft\\xff\\nold.tex")
    page.get_by_label("Restore chapter1.tex").check()
    page.screenshot(path=str(SHOTS / "restore-browse.png"), full_page=True)
    page.get_by_role("button", name="Restore selected").click()
    expect(page.locator(".messages")).to_contain_text("Restoring 1 entry")

    op = Operation.objects.get(kind=restore.RESTORE_KIND)
    restore.restore_execute(op.pk)  # what the storage worker does with the task
    expect(page.locator(f"#op-{op.pk}")).to_contain_text("Succeeded")
    expect(page.locator(f"#op-{op.pk}")).to_contain_text("restored/")
    page.screenshot(path=str(SHOTS / "restore-done.png"), full_page=True)

    folder = f"{home}/restored/{restore.restore_folder_name(op.created)}"
    with open(f"{folder}/chapter1.tex", "rb") as handle:
        assert handle.read() == data
    assert os.stat(f"{folder}/chapter1.tex").st_uid == alice.uid
    page.goto(reverse("backups:my-snapshots"))
    page.screenshot(path=str(SHOTS / "restore-snapshots.png"), full_page=True)


def test_screenshot_of_the_admin_restore_page_refusing_an_unconfirmed_overwrite(
    page: Page, sign_in_as: Callable[[User], None], btrfs_root: str
) -> None:
    admin = UserFactory(username="ada", first_name="Ada", is_staff=True)
    alice = UserFactory(username="alice")
    home = prepare_member(alice).home_path
    with open(f"{home}/notes.txt", "w") as handle:
        handle.write("as it was\n")
    snapshot = _snapshot(btrfs_root, alice, datetime(2026, 12, 2, 14, 0, tzinfo=UTC))
    sign_in_as(admin)
    page.goto(reverse("member-detail", args=[alice.pk]))
    section = page.locator("#member-snapshots")
    expect(section).to_contain_text("2026-12-02 14:00")
    section.get_by_role("link", name="restore elsewhere").click()
    expect(page.get_by_role("heading", level=1, name="Restore from a snapshot")).to_be_visible()
    expect(page.get_by_label("Snapshot", exact=True)).to_have_value(str(snapshot.pk))
    page.get_by_label("Path", exact=True).fill("notes.txt")
    page.get_by_label("Target", exact=True).fill(f"{home}/notes.txt")
    page.get_by_label("Overwrite what is at the target").check()
    page.get_by_role("button", name="Restore").click()
    expect(page.locator("#admin-restore-form")).to_contain_text(f"Type {home}/notes.txt exactly")
    page.screenshot(path=str(SHOTS / "restore-admin.png"), full_page=True)
    assert not Operation.objects.filter(kind=restore.RESTORE_KIND).exists()
