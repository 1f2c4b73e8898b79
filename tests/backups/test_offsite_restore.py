"""Members browse and restore their own offsite (restic) snapshots, admins any: a real restic 0.18
repository (a local path, and one through rclone's local backend), real BTRFS snapshots made
into restic snapshots the way the nightly run makes them (the hour's snapshot bind-mounted
read-only at offsite_repo.mount_path(source), ``restic backup --time --host --tag``, a
ResticSnapshot row), the pages through Django's client and the worker side in the test process.
restic's key derivation costs about half a second a command, so the repositories are made once
per module and each test backs up only what it needs."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse

from backups import offsite_repo, offsite_restore, restore, restore_pipe
from backups.models import ResticSnapshot
from hostops import mounts, rclone, restic
from portal.audit import SYSTEM
from portal.models import AuditEvent, Operation, User
from tests.backups import test_restore as tier1
from tests.backups.test_restore import WHEN, client_for, restored_folder, take_snapshot, write
from tests.loopfs import needs_loop_devices
from tests.storage import conftest as storage_conftest

pytestmark = [pytest.mark.loopdev, needs_loop_devices, pytest.mark.django_db]

# The storage tests' fixtures (a RAID10 of loop devices per module, a root per test) and the
# restore tests' cast.
storage_fs = storage_conftest.storage_fs
btrfs_root = storage_conftest.btrfs_root
alice, bob, home = tier1.alice, tier1.bob, tier1.home

RESTIC = "/usr/local/lib/portal-test/bin/restic"
if not os.access(RESTIC, os.X_OK):  # pragma: no cover - scripts/test-setup.sh installs it
    pytestmark.append(pytest.mark.skip(reason=f"needs restic 0.18 at {RESTIC}"))


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two initialised repositories with one password file: a local path and the same kind of
    folder through rclone's local backend (the remote "vault" of RCLONE_REMOTES)."""
    base = tmp_path_factory.mktemp("offsite")
    secrets = base / "secrets"
    secrets.mkdir(mode=0o700)
    password = secrets / "restic-password"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)
    made = {
        "password": str(password),
        "base": str(base),
        "local": str(base / "repo"),
        "rclone": f"rclone:vault:{base}/rrepo",
    }
    restic.init(restic.Repository(location=made["local"], password_file=str(password)))
    config = rclone.write_config([rclone.RemoteConfig(name="vault", type="local")], secrets)
    restic.init(restic.Repository(location=made["rclone"], password_file=str(password), rclone_config=config))
    return made


@pytest.fixture
def offsite(settings: Any, vault: dict[str, str], btrfs_root: str) -> dict[str, str]:
    """The settings of the offsite tier, pointed at the local repository."""
    settings.BACKUP_RESTIC_REPOSITORY = vault["local"]
    settings.BACKUP_RESTIC_PASSWORD_FILE = vault["password"]
    settings.BACKUP_RESTIC_MOUNT_ROOT = f"{vault['base']}/mnt"
    settings.BACKUP_RESTIC_CACHE_DIR = f"{vault['base']}/cache"
    settings.RCLONE_REMOTES_JSON = json.dumps([{"name": "vault", "type": "local"}])
    settings.RCLONE_CONFIG_DIR = f"{vault['base']}/rclone"
    cache.clear()
    return vault


def offsite_snapshot(root: str, user: User, when: datetime = WHEN) -> ResticSnapshot:
    """What the nightly run does for one source: the hour's BTRFS snapshot mounted read-only at
    the source's fixed path, backed up with the snapshot's time, host and tags, and its row."""
    local = take_snapshot(root, user, when)
    source = f"homes/{user.username}"
    mount = offsite_repo.mount_path(source)
    mounts.bind_readonly(local.path, mount)
    try:
        summary = restic.backup(
            offsite_repo.repository(),
            [mount],
            time=when,
            host="portal",
            tags=["portal", f"source:{source}"],
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


def restore_offsite(row: ResticSnapshot, paths: list[str], actor: User, capture: Any) -> Operation:
    """Ask for a member's restore, then run it as the storage worker would."""
    with capture(execute=False):
        op = offsite_restore.offsite_restore(row=row, paths=paths, actor=actor, context=SYSTEM)
    return run_offsite(op)


def run_offsite(op: Operation) -> Operation:
    offsite_restore.offsite_restore_execute(op.pk)
    return Operation.objects.get(pk=op.pk)


def staging_left(root: str) -> list[str]:
    staging = f"{root}/{offsite_restore.STAGING_FOLDER}"
    return os.listdir(staging) if os.path.isdir(staging) else []


def browse(user: User, row: ResticSnapshot, path: str = "") -> Any:
    return client_for(user).get(reverse("backups:my-offsite", args=[row.pk]), {"path": path} if path else {})


# --- restoring a member's files ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "rclone"])
def test_a_deleted_file_comes_back_from_the_offsite_copy_with_the_same_bytes_owned_by_its_member(
    home: str,
    alice: User,
    btrfs_root: str,
    offsite: dict[str, str],
    settings: Any,
    where: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.BACKUP_RESTIC_REPOSITORY = offsite[where]
    data = os.urandom(2 * 1024 * 1024 + 5)
    os.makedirs(f"{home}/thesis")
    os.chown(f"{home}/thesis", alice.uid, alice.uid)
    write(f"{home}/thesis/chapter1.tex", data, uid=alice.uid)
    os.chmod(f"{home}/thesis/chapter1.tex", 0o640)
    write(f"{home}/thesis/notes.md", b"# notes\n", uid=alice.uid)
    row = offsite_snapshot(btrfs_root, alice)
    os.unlink(f"{home}/thesis/chapter1.tex")

    page = browse(alice, row, "thesis")
    assert page.status_code == 200, page.content.decode()[-2000:]
    html = page.content.decode()
    assert "chapter1.tex" in html
    assert "2.0M" in html or "2M" in html
    assert "Offsite snapshot of" in html
    assert row.short_id in html
    with django_capture_on_commit_callbacks(execute=False):
        posted = client_for(alice).post(
            reverse("backups:my-offsite-restore", args=[row.pk]), {"paths": ["thesis/chapter1.tex"], "folder": "thesis"}
        )
    assert posted.status_code == 302
    assert posted["Location"] == f"{reverse('backups:my-offsite', args=[row.pk])}?path=thesis"
    op = Operation.objects.get(kind=restore.RESTORE_KIND)
    assert (op.owner, op.actor, op.target_type) == (alice, alice, "resticsnapshot")

    done = run_offsite(op)
    assert done.state == Operation.State.SUCCEEDED, done.error
    folder = restored_folder(home)
    assert os.path.basename(folder) == restore.restore_folder_name(op.created)
    assert os.listdir(folder) == ["chapter1.tex"]
    with open(f"{folder}/chapter1.tex", "rb") as handle:
        assert handle.read() == data
    info = os.lstat(f"{folder}/chapter1.tex")
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (alice.uid, alice.uid, 0o640)
    for made in (folder, f"{home}/restored"):
        assert os.lstat(made).st_uid == alice.uid
    assert not os.path.exists(f"{home}/thesis/chapter1.tex")  # nothing live was touched
    assert staging_left(btrfs_root) == []
    assert os.stat(f"{btrfs_root}/{offsite_restore.STAGING_FOLDER}").st_mode & 0o777 == 0o700
    assert "Restored 1 file" in done.message
    assert "fetched" in done.log
    assert done.percent == 100
    event = AuditEvent.objects.get(action="backups.restore", actor=alice)
    assert event.detail["offsite"] == row.short_id
    # The restore shows on the member's snapshots page and on the snapshot's own page.
    assert f"op-{op.pk}" in client_for(alice).get(reverse("backups:my-snapshots")).content.decode()


def test_a_folder_comes_back_whole_with_odd_names_links_and_glob_characters(
    home: str, alice: User, btrfs_root: str, offsite: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    os.makedirs(f"{home}/odd")
    with open(os.fsencode(f"{home}/odd/") + b"bad\xff\nname.txt", "wb") as handle:
        handle.write(b"odd bytes")
    write(f"{home}/a*", b"star", uid=alice.uid)
    write(f"{home}/abc", b"not wanted", uid=alice.uid)
    write(f"{home}/[x]", b"brackets", uid=alice.uid)
    write(f"{home}/x", b"not wanted either", uid=alice.uid)
    os.symlink("/etc", f"{home}/odd/etc-link")
    row = offsite_snapshot(btrfs_root, alice)

    page = browse(alice, row, "odd")
    assert page.status_code == 200
    html = page.content.decode()
    assert "bad\ufffd\\nname.txt" in html  # restic's listing has U+FFFD for the byte; the newline escaped
    assert "restore its folder" in html
    assert 'value="odd/bad' not in html  # such a name is never addressed alone
    assert "etc-link <span" in html
    assert "(link, not followed)" in html

    done = restore_offsite(row, ["odd", "a*", "[x]"], alice, django_capture_on_commit_callbacks)
    assert done.state == Operation.State.SUCCEEDED, done.error
    folder = restored_folder(home)
    assert sorted(os.listdir(folder)) == ["[x]", "a*", "odd"]  # the patterns matched only themselves
    with open(os.fsencode(folder) + b"/odd/bad\xff\nname.txt", "rb") as handle:
        assert handle.read() == b"odd bytes"
    with open(f"{folder}/a*", "rb") as handle:
        assert handle.read() == b"star"
    assert os.readlink(f"{folder}/odd/etc-link") == "/etc"
    assert os.lstat(f"{folder}/odd/etc-link").st_uid == alice.uid
    assert staging_left(btrfs_root) == []


def test_restics_progress_reaches_the_operation(
    home: str,
    alice: User,
    btrfs_root: str,
    offsite: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    storage_conftest.write_random(f"{home}/big.bin", 96 * 1024 * 1024)
    row = offsite_snapshot(btrfs_root, alice)
    monkeypatch.setattr(offsite_restore, "PROGRESS_FPS", 50)
    seen: list[tuple[int | None, str]] = []
    real = offsite_restore.operation_progress

    def watching(operation_id: int, *, percent: int | None = None, message: str = "", log: str = "") -> None:
        seen.append((percent, message))
        real(operation_id, percent=percent, message=message, log=log)

    monkeypatch.setattr(offsite_restore, "operation_progress", watching)
    done = restore_offsite(row, ["big.bin"], alice, django_capture_on_commit_callbacks)
    assert done.state == Operation.State.SUCCEEDED, done.error
    fetching = [percent for percent, message in seen if message.startswith("Fetching: ")]
    assert fetching, seen
    assert all(0 <= (percent or 0) <= offsite_restore.FETCHED for percent in fetching)
    assert fetching == sorted(fetching)
    assert any(message.endswith("of 96.0M") or message.endswith("of 96M") for _, message in seen), seen


@pytest.fixture
def planted(home: str, alice: User, bob: User, btrfs_root: str, offsite: dict[str, str]) -> ResticSnapshot:
    """Alice's home with links planted before the snapshot: to bob's home and to /etc/shadow."""
    write(f"{btrfs_root}/homes/bob/secret.txt", b"bob's secret", uid=bob.uid)
    os.symlink(f"{btrfs_root}/homes/bob", f"{home}/to-bob")
    os.symlink("/etc/shadow", f"{home}/shadow")
    write(f"{home}/mine.txt", b"mine", uid=alice.uid)
    return offsite_snapshot(btrfs_root, alice)


def test_a_planted_link_is_listed_restored_and_refused_as_a_link_never_followed(
    planted: ResticSnapshot, alice: User, home: str, btrfs_root: str, django_capture_on_commit_callbacks: Any
) -> None:
    top = browse(alice, planted).content.decode()
    # restic's JSON listing names no link target: the link is shown as one, its target unread.
    assert 'to-bob <span class="muted small">(link, not followed)' in top
    assert 'shadow <span class="muted small">(link, not followed)' in top
    for path in ("to-bob", "shadow", "to-bob/secret.txt"):
        inside = browse(alice, planted, path)
        assert inside.status_code == 400, path
        assert "snapshot-files" not in inside.content.decode()  # no listing at all
        assert "not in the offsite snapshot" in inside.content.decode() or "links are never followed" in (
            inside.content.decode()
        )
    url = reverse("backups:my-offsite-download", args=[planted.pk])
    for path in ("shadow", "to-bob/secret.txt"):
        got = client_for(alice).get(url, {"path": path}, follow=True)
        assert got.get("Content-Disposition") is None
        assert b"bob's secret" not in got.content
        assert b"root:" not in got.content
    failed = restore_offsite(planted, ["to-bob/secret.txt"], alice, django_capture_on_commit_callbacks)
    assert failed.state == Operation.State.FAILED
    assert "not in the snapshot" in failed.message
    assert not os.path.exists(f"{home}/restored") or os.listdir(f"{home}/restored") == []

    done = restore_offsite(planted, ["to-bob", "shadow"], alice, django_capture_on_commit_callbacks)
    assert done.state == Operation.State.SUCCEEDED, done.error
    folder = restored_folder(home)
    assert os.readlink(f"{folder}/to-bob") == f"{btrfs_root}/homes/bob"
    assert os.readlink(f"{folder}/shadow") == "/etc/shadow"
    assert sorted(os.listdir(folder)) == ["shadow", "to-bob"]
    assert "2 links" in done.message
    assert staging_left(btrfs_root) == []


def test_paths_that_leave_the_snapshot_are_refused_everywhere(
    home: str, alice: User, btrfs_root: str, offsite: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    row = offsite_snapshot(btrfs_root, alice)
    client = client_for(alice)
    for path in ["../bob", "../../homes/bob", "/etc", "/etc/shadow", "a/../../b", "a\x00b", "a\nb", "./x"]:
        page = client.get(reverse("backups:my-offsite", args=[row.pk]), {"path": path})
        assert page.status_code == 400, path
        words = (b"not inside the snapshot", b"control characters", b"absolute", b"Null characters")
        assert any(word in page.content for word in words), path
        got = client.get(reverse("backups:my-offsite-download", args=[row.pk]), {"path": path}, follow=True)
        assert got.get("Content-Disposition") is None
        with django_capture_on_commit_callbacks(execute=False):
            posted = client.post(reverse("backups:my-offsite-restore", args=[row.pk]), {"paths": [path]})
        assert posted.status_code == 400, path
        with pytest.raises(restore.RestoreError):
            offsite_restore.offsite_restore(row=row, paths=[path], actor=alice, context=SYSTEM)
    assert not Operation.objects.exists()
    assert not os.path.exists(f"{home}/restored")


def test_a_restore_that_fails_leaves_no_staging_folder_and_nothing_in_the_home(
    home: str,
    alice: User,
    btrfs_root: str,
    offsite: dict[str, str],
    settings: Any,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    row = offsite_snapshot(btrfs_root, alice)
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    settings.BACKUP_RESTIC_PASSWORD_FILE = str(wrong)
    done = restore_offsite(row, ["a.txt"], alice, django_capture_on_commit_callbacks)
    assert done.state == Operation.State.FAILED
    assert "does not open the repository" in done.message
    assert "not the password" not in done.message + done.error + done.log
    assert staging_left(btrfs_root) == []
    assert not os.path.exists(f"{home}/restored")
    settings.BACKUP_RESTIC_PASSWORD_FILE = offsite["password"]
    missing = restore_offsite(row, ["nope.txt"], alice, django_capture_on_commit_callbacks)
    assert missing.state == Operation.State.FAILED
    assert "nope.txt is not in the snapshot" in missing.message
    assert staging_left(btrfs_root) == []


def test_a_taken_over_restore_starts_from_a_fresh_staging_folder(
    home: str, alice: User, btrfs_root: str, offsite: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    write(f"{home}/a.txt", b"all of it", uid=alice.uid)
    row = offsite_snapshot(btrfs_root, alice)
    with django_capture_on_commit_callbacks(execute=False):
        op = offsite_restore.offsite_restore(row=row, paths=["a.txt"], actor=alice, context=SYSTEM)
    # The first worker claimed the row, had restic write part of the file and died.
    assert restore.operation_claim(op.pk)
    left = f"{btrfs_root}/{offsite_restore.STAGING_FOLDER}/{op.pk}/tree"
    os.makedirs(left)
    with open(f"{left}/a.txt", "wb") as handle:
        handle.write(b"all")
    done = run_offsite(op)
    assert done.state == Operation.State.SUCCEEDED, done.error
    assert done.attempts == 2
    with open(f"{restored_folder(home)}/a.txt", "rb") as handle:
        assert handle.read() == b"all of it"
    assert staging_left(btrfs_root) == []


# --- the list, other members, forgotten snapshots -----------------------------------------------


def test_my_snapshots_shows_both_tiers_and_not_forgotten_or_other_members_copies(
    home: str, alice: User, bob: User, btrfs_root: str, offsite: dict[str, str]
) -> None:
    write(f"{home}/a.txt", b"a" * 5000, uid=alice.uid)
    row = offsite_snapshot(btrfs_root, alice)
    local = take_snapshot(btrfs_root, alice, WHEN + timedelta(hours=5))
    gone = ResticSnapshot.objects.create(
        snapshot_id="cd" * 32, source="homes/alice", owner=alice, path=row.path, taken_at=WHEN - timedelta(days=3),
        forgotten_at=WHEN,
    )  # fmt: skip
    theirs = ResticSnapshot.objects.create(
        snapshot_id="ef" * 32, source="homes/bob", owner=bob, path=offsite_repo.mount_path("homes/bob"), taken_at=WHEN
    )
    html = client_for(alice).get(reverse("backups:my-snapshots")).content.decode()
    assert reverse("backups:my-snapshot", args=[local.pk]) in html
    assert reverse("backups:my-offsite", args=[row.pk]) in html
    assert "Offsite snapshots" in html
    assert row.short_id in html
    assert "4.9K" in html or "5.0K" in html
    assert WHEN.strftime("%Y-%m-%d") in html
    assert reverse("backups:my-offsite", args=[gone.pk]) not in html
    assert reverse("backups:my-offsite", args=[theirs.pk]) not in html
    assert browse(alice, gone).status_code == 404
    assert browse(alice, ResticSnapshot(pk=999_999)).status_code == 404


def test_a_member_cannot_list_download_or_restore_another_members_offsite_snapshot(
    home: str, alice: User, bob: User, btrfs_root: str, offsite: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    write(f"{btrfs_root}/homes/bob/secret.txt", b"bob's secret", uid=bob.uid)
    theirs = offsite_snapshot(btrfs_root, bob)
    client = client_for(alice)
    assert client.get(reverse("backups:my-offsite", args=[theirs.pk])).status_code == 403
    got = client.get(reverse("backups:my-offsite-download", args=[theirs.pk]), {"path": "secret.txt"})
    assert got.status_code == 403
    assert b"bob's secret" not in got.content
    with django_capture_on_commit_callbacks(execute=False):
        posted = client.post(reverse("backups:my-offsite-restore", args=[theirs.pk]), {"paths": ["secret.txt"]})
    assert posted.status_code == 403
    assert not Operation.objects.exists()
    refused = AuditEvent.objects.filter(action="backups.snapshot.denied", outcome=AuditEvent.Outcome.REFUSED)
    assert refused.count() == 3
    assert {event.target_id for event in refused} == {str(theirs.pk)}
    assert not os.path.exists(f"{home}/restored")


# --- browsing and downloading -----------------------------------------------------------------


def test_the_listing_is_kept_in_the_cache_and_errors_are_not(
    home: str, alice: User, btrfs_root: str, offsite: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    os.makedirs(f"{home}/sub")
    row = offsite_snapshot(btrfs_root, alice)
    assert "a.txt" in browse(alice, row).content.decode()
    settings.BACKUP_RESTIC_PASSWORD_FILE = str(tmp_path / "absent")  # restic could not read it now
    again = browse(alice, row)
    assert again.status_code == 200
    assert "a.txt" in again.content.decode()
    sub = browse(alice, row, "sub")  # not read before: restic is asked, and says why not
    assert sub.status_code == 400
    assert "password file" in sub.content.decode()
    settings.BACKUP_RESTIC_PASSWORD_FILE = offsite["password"]
    assert browse(alice, row, "sub").status_code == 200
    assert browse(alice, row, "a.txt").status_code == 400  # a file is not a folder
    assert "That folder is not in" in browse(alice, row, "nothing").content.decode()


def test_a_file_downloads_with_its_bytes_and_big_ones_and_folders_are_refused(
    home: str, alice: User, btrfs_root: str, offsite: dict[str, str], settings: Any
) -> None:
    data = os.urandom(300_000)
    write(f"{home}/data.bin", data, uid=alice.uid)
    os.makedirs(f"{home}/folder")
    row = offsite_snapshot(btrfs_root, alice)
    client = client_for(alice)
    url = reverse("backups:my-offsite-download", args=[row.pk])
    got = client.get(url, {"path": "data.bin"})
    assert got.status_code == 200
    assert got["Content-Length"] == str(len(data))
    assert b"".join(got.streaming_content) == data  # type: ignore[attr-defined]
    assert 'filename="data.bin"' in got["Content-Disposition"]
    assert AuditEvent.objects.filter(action="backups.download", target_id=str(row.pk)).count() == 1
    assert "Only plain files" in client.get(url, {"path": "folder"}, follow=True).content.decode()
    assert "not in the snapshot" in client.get(url, {"path": "nope"}, follow=True).content.decode()
    settings.BACKUP_DOWNLOAD_MAX_BYTES = 1000
    big = client.get(url, {"path": "data.bin"}, follow=True)
    assert big.get("Content-Disposition") is None
    assert "restore it into your home instead" in big.content.decode()


@pytest.mark.django_db(transaction=True)  # the feeding thread has a connection of its own
def test_listing_and_download_travel_through_the_cache_when_the_worker_reads(
    btrfs_root: str, offsite: dict[str, str], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without BACKUP_BROWSE_LOCAL the worker runs restic; the broker's send is the one thing
    replaced, by the task body in a thread (a worker beside the web process)."""
    from celery import current_app

    from storage.layout import prepare_member
    from tests.factories import UserFactory

    member = UserFactory(username="carol")
    folder = prepare_member(member).home_path
    data = os.urandom(3 * 1024 * 1024 + 3)
    write(f"{folder}/big.bin", data, uid=member.uid)
    row = offsite_snapshot(btrfs_root, member)
    settings.BACKUP_BROWSE_LOCAL = False
    monkeypatch.setattr(restore_pipe, "DOWNLOAD_CHUNK", 1024 * 1024)
    monkeypatch.setattr(restore_pipe, "DOWNLOAD_WINDOW", 1)
    tasks = {
        offsite_restore.LIST_TASK: offsite_restore.listing_reply,
        offsite_restore.DOWNLOAD_TASK: offsite_restore.download_feed,
    }
    sent: list[str] = []
    threads: list[threading.Thread] = []

    def send_task(name: str, args: list[Any], **_kwargs: Any) -> None:
        sent.append(name)
        threads.append(threading.Thread(target=tasks[name], args=args))
        threads[-1].start()

    monkeypatch.setattr(current_app, "send_task", send_task)
    page = browse(member, row)
    assert page.status_code == 200, page.content.decode()[-1000:]
    assert "big.bin" in page.content.decode()
    got = client_for(member).get(reverse("backups:my-offsite-download", args=[row.pk]), {"path": "big.bin"})
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == data  # type: ignore[attr-defined]
    for thread in threads:
        thread.join(timeout=60)
    assert sent == [offsite_restore.LIST_TASK, offsite_restore.DOWNLOAD_TASK]


# --- admins -----------------------------------------------------------------------------------


@pytest.fixture
def admin(db: None) -> User:
    from tests.factories import UserFactory

    return UserFactory(username="ada", is_staff=True)


def test_an_admin_restores_from_an_offsite_snapshot_to_a_new_place_and_over_live_data_only_when_typed(
    home: str,
    alice: User,
    admin: User,
    btrfs_root: str,
    offsite: dict[str, str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    os.makedirs(f"{home}/results")
    os.chown(f"{home}/results", alice.uid, alice.uid)
    write(f"{home}/results/run1.csv", b"1,2,3\n", uid=alice.uid)
    write(f"{home}/notes.txt", b"as it was", uid=alice.uid)
    row = offsite_snapshot(btrfs_root, alice)
    write(f"{home}/notes.txt", b"broken now", uid=alice.uid)
    client = client_for(admin)
    url = reverse("backups:admin-restore")
    form = client.get(url, {"offsite": row.pk, "path": "results"})
    assert str(form.context["form"]["offsite"].value()) == str(row.pk)
    target = f"{btrfs_root}/datasets/recovered"
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, {"offsite": row.pk, "path": "results", "target": target}).status_code == 302
    done = run_offsite(Operation.objects.get(kind=restore.RESTORE_KIND))
    assert done.state == Operation.State.SUCCEEDED, done.error
    with open(f"{target}/run1.csv", "rb") as handle:
        assert handle.read() == b"1,2,3\n"
    assert os.lstat(f"{target}/run1.csv").st_uid == alice.uid  # owners as restic stored them

    live = f"{home}/notes.txt"
    base = {"offsite": row.pk, "path": "notes.txt", "target": live}
    for confirm in ("", f"{home}/other.txt"):
        bad = client.post(url, {**base, "overwrite": "on", "confirm": confirm})
        assert bad.status_code == 400
        assert f"Type {live} exactly" in bad.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, base).status_code == 302
    refused = run_offsite(Operation.objects.order_by("-pk").first())  # type: ignore[arg-type]
    assert refused.state == Operation.State.FAILED
    assert "exists already" in refused.message
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, {**base, "overwrite": "on", "confirm": live}).status_code == 302
    over = run_offsite(Operation.objects.order_by("-pk").first())  # type: ignore[arg-type]
    assert over.state == Operation.State.SUCCEEDED, over.error
    assert "over what was there" in over.message
    with open(live, "rb") as handle:
        assert handle.read() == b"as it was"
    assert staging_left(btrfs_root) == []


def test_the_admin_form_takes_exactly_one_snapshot(
    home: str, alice: User, admin: User, btrfs_root: str, offsite: dict[str, str]
) -> None:
    local = take_snapshot(btrfs_root, alice)
    row = ResticSnapshot.objects.create(
        snapshot_id="12" * 32, source="homes/alice", owner=alice, path=offsite_repo.mount_path("homes/alice"),
        taken_at=WHEN,
    )  # fmt: skip
    client = client_for(admin)
    url = reverse("backups:admin-restore")
    target = f"{btrfs_root}/datasets/x"
    neither = client.post(url, {"target": target})
    assert neither.status_code == 400
    assert "Choose the snapshot to restore from" in neither.content.decode()
    both = client.post(url, {"snapshot": local.pk, "offsite": row.pk, "target": target})
    assert both.status_code == 400
    assert "Choose one snapshot only" in both.content.decode()
    forgotten = client.post(url, {"offsite": "999999", "target": target})
    assert forgotten.status_code == 400
    assert not Operation.objects.exists()


def test_a_row_whose_path_does_not_name_its_source_is_refused(
    home: str, alice: User, btrfs_root: str, offsite: dict[str, str]
) -> None:
    row = ResticSnapshot.objects.create(
        snapshot_id="34" * 32, source="homes/alice", owner=alice, path="/run/portal-backup/homes/bob", taken_at=WHEN
    )
    page = browse(alice, row)
    assert page.status_code == 400
    assert "does not name its source" in page.content.decode()


@pytest.fixture(autouse=True)
def _no_stray_mounts(vault: dict[str, str]) -> Iterator[None]:
    yield
    for point in mounts.mount_points():
        if point.startswith(f"{vault['base']}/mnt/"):
            mounts.unmount(point, lazy=True)
