"""Members restore their own files from tier-1 snapshots, admins any path: on a real BTRFS
(RAID10 over loop devices), with real read-only snapshots at the agreed place, the pages
through Django's client and the worker side called in the test process."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from backups import restore, restore_pipe
from backups.models import Snapshot
from hostops import btrfs, safetree
from portal.audit import SYSTEM
from portal.models import AuditEvent, Operation, User
from storage.layout import prepare_member
from storage.models import FilesystemState
from tests.factories import UserFactory
from tests.loopfs import needs_loop_devices
from tests.storage import conftest as storage_conftest

pytestmark = [pytest.mark.loopdev, needs_loop_devices, pytest.mark.django_db]

# The storage tests' fixtures: a RAID10 of loop devices per module, a storage root per test.
storage_fs = storage_conftest.storage_fs
btrfs_root = storage_conftest.btrfs_root

WHEN = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


def take_snapshot(root: str, user: User, when: datetime = WHEN) -> Snapshot:
    """A read-only snapshot of the member's home where the snapshot tier puts it, and its row."""
    base = f"{root}/.snapshots/homes/{user.username}"
    os.makedirs(base, exist_ok=True)
    os.chmod(f"{root}/.snapshots", 0o700)
    path = f"{base}/{when:%Y-%m-%dT%H%M%SZ}"
    btrfs.snapshot_readonly(f"{root}/homes/{user.username}", path)
    return Snapshot.objects.create(source=f"homes/{user.username}", owner=user, path=path, taken_at=when)


def write(path: str, data: bytes, *, uid: int) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
    os.chown(path, uid, uid)


@pytest.fixture
def alice(btrfs_root: str) -> User:
    user = UserFactory(username="alice")
    prepare_member(user)
    return user


@pytest.fixture
def bob(btrfs_root: str) -> User:
    user = UserFactory(username="bob")
    prepare_member(user)
    return user


@pytest.fixture
def home(btrfs_root: str, alice: User) -> str:
    return f"{btrfs_root}/homes/alice"


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def run_restores(django_capture_on_commit_callbacks: Any) -> Iterator[Callable[[Operation], Operation]]:
    """Run a restore the service queued, as its worker would (the task is not sent)."""

    def run(op: Operation) -> Operation:
        restore.restore_execute(op.pk)
        return Operation.objects.get(pk=op.pk)

    return run


def restore_via_service(snapshot: Snapshot, paths: list[str], actor: User, capture: Any) -> Operation:
    with capture(execute=False):
        return restore.snapshot_restore(snapshot=snapshot, paths=paths, actor=actor, context=SYSTEM)


def restored_folder(home: str) -> str:
    found = os.listdir(f"{home}/restored")
    assert len(found) == 1, found
    return f"{home}/restored/{found[0]}"


# --- restoring a member's files ---------------------------------------------------------------


def test_a_file_deleted_after_the_snapshot_comes_back_with_the_same_bytes_owned_by_its_member(
    home: str, alice: User, run_restores: Callable[[Operation], Operation], django_capture_on_commit_callbacks: Any
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    os.makedirs(f"{home}/thesis")
    os.chown(f"{home}/thesis", alice.uid, alice.uid)
    write(f"{home}/thesis/chapter1.tex", data, uid=alice.uid)
    os.chmod(f"{home}/thesis/chapter1.tex", 0o640)
    snapshot = take_snapshot(os.path.dirname(os.path.dirname(home)), alice)
    os.unlink(f"{home}/thesis/chapter1.tex")

    response = client_for(alice).post(
        reverse("backups:my-restore", args=[snapshot.pk]), {"paths": ["thesis/chapter1.tex"], "folder": "thesis"}
    )
    assert response.status_code == 302
    op = Operation.objects.get(kind=restore.RESTORE_KIND)
    assert op.owner == alice
    assert op.actor == alice
    snapshot.refresh_from_db()
    assert snapshot.pinned == f"restore #{op.pk}"  # pinned from the request on

    done = run_restores(op)
    assert done.state == Operation.State.SUCCEEDED, done.error
    folder = restored_folder(home)
    assert os.path.basename(folder) == restore.restore_folder_name(op.created)
    copy = f"{folder}/chapter1.tex"
    with open(copy, "rb") as handle:
        assert handle.read() == data
    info = os.lstat(copy)
    assert (info.st_uid, info.st_gid) == (alice.uid, alice.uid)
    assert stat.S_IMODE(info.st_mode) == 0o640
    for made in (folder, f"{home}/restored"):
        assert os.lstat(made).st_uid == alice.uid
    assert not os.path.exists(f"{home}/thesis/chapter1.tex")  # nothing live was touched
    snapshot.refresh_from_db()
    assert snapshot.pinned == ""
    assert "Restored 1 file" in done.message
    assert "restored/" in done.message
    assert AuditEvent.objects.filter(action="backups.restore", actor=alice).count() == 1


def test_a_folder_is_restored_whole_links_as_links_times_kept(
    home: str, alice: User, run_restores: Callable[[Operation], Operation], django_capture_on_commit_callbacks: Any
) -> None:
    os.makedirs(f"{home}/project/src/deep")
    for folder in ("project", "project/src", "project/src/deep"):
        os.chown(f"{home}/{folder}", alice.uid, alice.uid)
    write(f"{home}/project/README", b"read me\n", uid=alice.uid)
    write(f"{home}/project/src/deep/main.py", b"print('hi')\n", uid=alice.uid)
    os.utime(f"{home}/project/README", (1_700_000_000, 1_700_000_000))
    os.symlink("/etc", f"{home}/project/etc-link")
    snapshot = take_snapshot(os.path.dirname(os.path.dirname(home)), alice)
    os.unlink(f"{home}/project/README")

    done = run_restores(restore_via_service(snapshot, ["project"], alice, django_capture_on_commit_callbacks))
    assert done.state == Operation.State.SUCCEEDED, done.error
    copy = f"{restored_folder(home)}/project"
    with open(f"{copy}/README", "rb") as handle:
        assert handle.read() == b"read me\n"
    assert os.lstat(f"{copy}/README").st_mtime == 1_700_000_000
    with open(f"{copy}/src/deep/main.py", "rb") as handle:
        assert handle.read() == b"print('hi')\n"
    assert os.path.islink(f"{copy}/etc-link")
    assert os.readlink(f"{copy}/etc-link") == "/etc"
    assert os.lstat(f"{copy}/etc-link").st_uid == alice.uid
    assert os.lstat(f"{copy}/src/deep").st_uid == alice.uid
    assert "3 folders" in done.message
    assert "1 link" in done.message


def test_the_snapshot_is_pinned_while_the_copy_runs_and_a_second_restore_keeps_the_pin(
    home: str,
    alice: User,
    run_restores: Callable[[Operation], Operation],
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    snapshot = take_snapshot(os.path.dirname(os.path.dirname(home)), alice)
    first = restore_via_service(snapshot, ["a.txt"], alice, django_capture_on_commit_callbacks)
    second = restore_via_service(snapshot, ["a.txt"], alice, django_capture_on_commit_callbacks)
    seen: list[str] = []
    real_copy = safetree.copy_entry

    def watching(*args: Any, **kwargs: Any) -> safetree.CopyReport:
        seen.append(Snapshot.objects.get(pk=snapshot.pk).pinned)
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(safetree, "copy_entry", watching)
    assert run_restores(first).state == Operation.State.SUCCEEDED
    assert seen == [f"restore #{first.pk}"]
    snapshot.refresh_from_db()
    assert snapshot.pinned == f"restore #{second.pk}"  # handed on, not dropped under the second
    assert run_restores(second).state == Operation.State.SUCCEEDED
    snapshot.refresh_from_db()
    assert snapshot.pinned == ""
    assert len(os.listdir(f"{home}/restored")) == 2  # the same second: the second folder is "-2"


def test_a_pin_set_by_someone_else_is_left_alone(
    home: str, alice: User, run_restores: Callable[[Operation], Operation], django_capture_on_commit_callbacks: Any
) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    snapshot = take_snapshot(os.path.dirname(os.path.dirname(home)), alice)
    Snapshot.objects.filter(pk=snapshot.pk).update(pinned="offsite backup source")
    run_restores(restore_via_service(snapshot, ["a.txt"], alice, django_capture_on_commit_callbacks))
    snapshot.refresh_from_db()
    assert snapshot.pinned == "offsite backup source"


def test_a_delivery_twice_restores_once(
    home: str, alice: User, run_restores: Callable[[Operation], Operation], django_capture_on_commit_callbacks: Any
) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    snapshot = take_snapshot(os.path.dirname(os.path.dirname(home)), alice)
    op = restore_via_service(snapshot, ["a.txt"], alice, django_capture_on_commit_callbacks)
    run_restores(op)
    run_restores(op)
    assert len(os.listdir(f"{home}/restored")) == 1


# --- browsing ---------------------------------------------------------------------------------


def test_the_member_browses_folders_first_with_sizes_and_times(home: str, alice: User) -> None:
    os.makedirs(f"{home}/zeta")
    write(f"{home}/alpha.txt", b"x" * 2048, uid=alice.uid)
    snapshot = take_snapshot(os.path.dirname(os.path.dirname(home)), alice)
    client = client_for(alice)
    listing = client.get(reverse("backups:my-snapshots"))
    assert listing.status_code == 200
    assert reverse("backups:my-snapshot", args=[snapshot.pk]).encode() in listing.content
    page = client.get(reverse("backups:my-snapshot", args=[snapshot.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("zeta/") < html.index("alpha.txt")
    assert "2.0K" in html or "2K" in html
    inside = client.get(reverse("backups:my-snapshot", args=[snapshot.pk]), {"path": "zeta"})
    assert inside.status_code == 200
    assert "This folder was empty" in inside.content.decode()


def test_names_with_odd_bytes_are_listed_escaped_and_restored_with_their_folder(
    home: str, alice: User, run_restores: Callable[[Operation], Operation], django_capture_on_commit_callbacks: Any
) -> None:
    os.makedirs(f"{home}/odd")
    odd = os.fsencode(f"{home}/odd/") + b"bad\xff\nname.txt"
    with open(odd, "wb") as handle:
        handle.write(b"odd bytes")
    snapshot = take_snapshot(os.path.dirname(os.path.dirname(home)), alice)
    page = client_for(alice).get(reverse("backups:my-snapshot", args=[snapshot.pk]), {"path": "odd"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "bad\\xff\\nname.txt" in html
    assert "restore its folder" in html
    done = run_restores(restore_via_service(snapshot, ["odd"], alice, django_capture_on_commit_callbacks))
    assert done.state == Operation.State.SUCCEEDED, done.error
    copy = os.fsencode(restored_folder(home)) + b"/odd/bad\xff\nname.txt"
    with open(copy, "rb") as handle:
        assert handle.read() == b"odd bytes"


@pytest.mark.parametrize(
    "path", ["../bob", "../../homes/bob", "/etc", "/etc/shadow", "a/../../b", "a\x00b", "a\nb", "./x"]
)
def test_paths_that_leave_the_snapshot_are_refused_everywhere(
    home: str, alice: User, path: str, django_capture_on_commit_callbacks: Any
) -> None:
    snapshot = take_snapshot(os.path.dirname(os.path.dirname(home)), alice)
    client = client_for(alice)
    page = client.get(reverse("backups:my-snapshot", args=[snapshot.pk]), {"path": path})
    assert page.status_code == 400
    download = client.get(reverse("backups:my-download", args=[snapshot.pk]), {"path": path}, follow=True)
    assert download.get("Content-Disposition") is None
    assert b"root:" not in download.content
    with django_capture_on_commit_callbacks(execute=False):
        posted = client.post(reverse("backups:my-restore", args=[snapshot.pk]), {"paths": [path]})
    assert posted.status_code == 400
    assert not Operation.objects.filter(kind=restore.RESTORE_KIND).exists()
    assert not os.path.exists(f"{home}/restored")
    with pytest.raises(restore.RestoreError):
        restore.snapshot_restore(snapshot=snapshot, paths=[path], actor=alice, context=SYSTEM)


@pytest.fixture
def planted(home: str, alice: User, bob: User, btrfs_root: str) -> Snapshot:
    """Alice's home with links planted before the snapshot: to bob's home, to /etc/shadow, to
    /etc and to the snapshots' root."""
    write(f"{btrfs_root}/homes/bob/secret.txt", b"bob's secret", uid=bob.uid)
    take_snapshot(btrfs_root, bob)
    os.symlink(f"{btrfs_root}/homes/bob", f"{home}/to-bob")
    os.symlink("/etc/shadow", f"{home}/shadow")
    os.symlink("/etc", f"{home}/etc")
    os.symlink(f"{btrfs_root}/.snapshots", f"{home}/snaps")
    return take_snapshot(btrfs_root, alice, WHEN + timedelta(hours=1))


@pytest.mark.parametrize("link", ["to-bob", "etc", "snaps"])
def test_a_planted_link_is_shown_as_a_link_and_never_followed_for_listing(
    planted: Snapshot, alice: User, link: str
) -> None:
    client = client_for(alice)
    top = client.get(reverse("backups:my-snapshot", args=[planted.pk])).content.decode()
    assert "(link, not followed)" in top
    assert f"{link} <span" in top
    inside = client.get(reverse("backups:my-snapshot", args=[planted.pk]), {"path": link})
    assert inside.status_code == 400
    assert "secret.txt" not in inside.content.decode()
    assert "passwd" not in inside.content.decode()
    deeper = client.get(reverse("backups:my-snapshot", args=[planted.pk]), {"path": f"{link}/homes"})
    assert deeper.status_code == 400


@pytest.mark.parametrize("path", ["shadow", "to-bob/secret.txt", "etc/passwd", "snaps/homes/bob"])
def test_a_planted_link_is_never_followed_for_a_download(planted: Snapshot, alice: User, path: str) -> None:
    response = client_for(alice).get(reverse("backups:my-download", args=[planted.pk]), {"path": path}, follow=True)
    assert response.get("Content-Disposition") is None
    assert b"bob's secret" not in response.content
    assert b"root:" not in response.content
    assert b"links are never followed" in response.content or b"not in the snapshot" in response.content


@pytest.mark.parametrize("path", ["to-bob/secret.txt", "etc/passwd", "snaps/homes/bob"])
def test_a_restore_through_a_planted_link_fails_and_leaves_nothing(
    planted: Snapshot,
    alice: User,
    home: str,
    path: str,
    run_restores: Callable[[Operation], Operation],
    django_capture_on_commit_callbacks: Any,
) -> None:
    done = run_restores(restore_via_service(planted, [path], alice, django_capture_on_commit_callbacks))
    assert done.state == Operation.State.FAILED
    assert "links are not followed" in done.message
    assert not os.listdir(f"{home}/restored") if os.path.isdir(f"{home}/restored") else True
    planted.refresh_from_db()
    assert planted.pinned == ""


def test_restoring_the_links_themselves_copies_links(
    planted: Snapshot,
    alice: User,
    home: str,
    run_restores: Callable[[Operation], Operation],
    django_capture_on_commit_callbacks: Any,
) -> None:
    paths = ["to-bob", "shadow", "etc", "snaps"]
    done = run_restores(restore_via_service(planted, paths, alice, django_capture_on_commit_callbacks))
    assert done.state == Operation.State.SUCCEEDED, done.error
    folder = restored_folder(home)
    for name in paths:
        assert os.path.islink(f"{folder}/{name}")
    assert sorted(os.listdir(folder)) == sorted(paths)


def test_a_link_in_the_live_home_named_restored_is_not_written_through(
    home: str,
    alice: User,
    btrfs_root: str,
    run_restores: Callable[[Operation], Operation],
    django_capture_on_commit_callbacks: Any,
) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    snapshot = take_snapshot(btrfs_root, alice)
    os.makedirs(f"{btrfs_root}/elsewhere")
    os.symlink(f"{btrfs_root}/elsewhere", f"{home}/restored")
    done = run_restores(restore_via_service(snapshot, ["a.txt"], alice, django_capture_on_commit_callbacks))
    assert done.state == Operation.State.FAILED
    assert "not a folder" in done.message
    assert os.listdir(f"{btrfs_root}/elsewhere") == []


# --- another member's snapshots ---------------------------------------------------------------


def test_a_member_cannot_list_download_or_restore_another_members_snapshot(
    home: str,
    alice: User,
    bob: User,
    btrfs_root: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    write(f"{btrfs_root}/homes/bob/secret.txt", b"bob's secret", uid=bob.uid)
    theirs = take_snapshot(btrfs_root, bob)
    client = client_for(alice)
    assert client.get(reverse("backups:my-snapshot", args=[theirs.pk])).status_code == 403
    got = client.get(reverse("backups:my-download", args=[theirs.pk]), {"path": "secret.txt"})
    assert got.status_code == 403
    assert b"bob's secret" not in got.content
    with django_capture_on_commit_callbacks(execute=False):
        posted = client.post(reverse("backups:my-restore", args=[theirs.pk]), {"paths": ["secret.txt"]})
    assert posted.status_code == 403
    assert not Operation.objects.filter(kind=restore.RESTORE_KIND).exists()
    assert AuditEvent.objects.filter(action="backups.snapshot.denied", outcome=AuditEvent.Outcome.REFUSED).count() == 3
    listed = client.get(reverse("backups:my-snapshots")).content.decode()
    assert reverse("backups:my-snapshot", args=[theirs.pk]) not in listed


def test_a_deleted_snapshot_is_gone(home: str, alice: User, btrfs_root: str) -> None:
    snapshot = take_snapshot(btrfs_root, alice)
    Snapshot.objects.filter(pk=snapshot.pk).update(deleted_at=WHEN)
    assert client_for(alice).get(reverse("backups:my-snapshot", args=[snapshot.pk])).status_code == 404
    assert client_for(alice).get(reverse("backups:my-snapshot", args=[999_999])).status_code == 404


# --- bad input and downloads ------------------------------------------------------------------


def test_an_empty_restore_is_refused_with_words(home: str, alice: User, btrfs_root: str) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    snapshot = take_snapshot(btrfs_root, alice)
    response = client_for(alice).post(reverse("backups:my-restore", args=[snapshot.pk]), {"folder": ""})
    assert response.status_code == 400
    assert "Tick at least one file or folder" in response.content.decode()
    assert not Operation.objects.exists()


def test_too_many_or_same_named_entries_are_refused(home: str, alice: User, btrfs_root: str) -> None:
    snapshot = take_snapshot(btrfs_root, alice)
    client = client_for(alice)
    many = client.post(
        reverse("backups:my-restore", args=[snapshot.pk]), {"paths": [f"f{n}" for n in range(restore.MAX_ITEMS + 1)]}
    )
    assert many.status_code == 400
    assert f"At most {restore.MAX_ITEMS}" in many.content.decode()
    same = client.post(reverse("backups:my-restore", args=[snapshot.pk]), {"paths": ["a/x", "b/x"]})
    assert same.status_code == 400
    assert "same name" in same.content.decode()
    assert not Operation.objects.exists()


def test_a_restore_of_something_not_in_the_snapshot_fails_with_words(
    home: str,
    alice: User,
    btrfs_root: str,
    run_restores: Callable[[Operation], Operation],
    django_capture_on_commit_callbacks: Any,
) -> None:
    snapshot = take_snapshot(btrfs_root, alice)
    done = run_restores(restore_via_service(snapshot, ["nope.txt"], alice, django_capture_on_commit_callbacks))
    assert done.state == Operation.State.FAILED
    assert "nope.txt is not in the snapshot" in done.message
    assert not os.path.exists(f"{home}/restored")


def test_a_file_downloads_with_its_bytes_and_big_ones_are_refused(
    home: str,
    alice: User,
    btrfs_root: str,
    settings: Any,
) -> None:
    data = os.urandom(100_000)
    write(f"{home}/data.bin", data, uid=alice.uid)
    os.makedirs(f"{home}/folder")
    snapshot = take_snapshot(btrfs_root, alice)
    client = client_for(alice)
    url = reverse("backups:my-download", args=[snapshot.pk])
    got = client.get(url, {"path": "data.bin"})
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == data
    assert 'filename="data.bin"' in got["Content-Disposition"]
    assert AuditEvent.objects.filter(action="backups.download").count() == 1
    folder = client.get(url, {"path": "folder"}, follow=True)
    assert "Only plain files" in folder.content.decode()
    settings.BACKUP_DOWNLOAD_MAX_BYTES = 1000
    big = client.get(url, {"path": "data.bin"}, follow=True)
    assert "restore it into your home instead" in big.content.decode()


def test_the_pages_say_when_the_storage_is_not_btrfs(db: None, settings: Any) -> None:
    member = UserFactory(username="carol")
    FilesystemState.objects.create(root=settings.STORAGE_ROOT, on_btrfs=False)
    page = client_for(member).get(reverse("backups:my-snapshots"))
    assert page.status_code == 200
    assert "Snapshots are not available" in page.content.decode()


def test_the_dashboard_card_shows_the_newest_snapshot(home: str, alice: User, btrfs_root: str) -> None:
    take_snapshot(btrfs_root, alice)
    take_snapshot(btrfs_root, alice, WHEN + timedelta(hours=2))
    page = client_for(alice).get(reverse("dashboard")).content.decode()
    assert "Snapshots: restore your files" in page
    assert (WHEN + timedelta(hours=2)).isoformat().replace("+00:00", "") in page or "16:00" in page


def test_the_listing_travels_through_the_cache_when_the_worker_reads(
    home: str,
    alice: User,
    btrfs_root: str,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without BACKUP_BROWSE_LOCAL the page asks the worker; here the broker's send is the one
    thing replaced, by the task body itself, so the reply goes through the real cache."""
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    snapshot = take_snapshot(btrfs_root, alice)
    settings.BACKUP_BROWSE_LOCAL = False
    from celery import current_app

    sent: list[str] = []

    def send_task(name: str, args: list[Any], **_kwargs: Any) -> None:
        sent.append(name)
        restore.listing_reply(*args)

    monkeypatch.setattr(current_app, "send_task", send_task)
    page = client_for(alice).get(reverse("backups:my-snapshot", args=[snapshot.pk]))
    assert page.status_code == 200
    assert "a.txt" in page.content.decode()
    assert sent == [restore.LIST_TASK]
    settings.BACKUP_BROWSE_TIMEOUT = 1
    monkeypatch.setattr(current_app, "send_task", lambda *a, **k: None)  # nobody answers
    late = client_for(alice).get(reverse("backups:my-snapshot", args=[snapshot.pk]))
    assert late.status_code == 400
    assert "did not answer in time" in late.content.decode()
    cache.clear()


# --- admins -----------------------------------------------------------------------------------


@pytest.fixture
def admin(db: None) -> User:
    return UserFactory(username="ada", is_staff=True)


def test_an_admin_restores_a_path_to_a_new_place_with_its_owners(
    home: str,
    alice: User,
    admin: User,
    btrfs_root: str,
    run_restores: Callable[[Operation], Operation],
    django_capture_on_commit_callbacks: Any,
) -> None:
    os.makedirs(f"{home}/results")
    os.chown(f"{home}/results", alice.uid, alice.uid)
    write(f"{home}/results/run1.csv", b"1,2,3\n", uid=alice.uid)
    snapshot = take_snapshot(btrfs_root, alice)
    target = f"{btrfs_root}/datasets/recovered-results"
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(admin).post(
            reverse("backups:admin-restore"), {"snapshot": snapshot.pk, "path": "results", "target": target}
        )
    assert response.status_code == 302
    op = Operation.objects.get(kind=restore.RESTORE_KIND)
    assert op.actor == admin
    assert op.owner == alice
    done = run_restores(op)
    assert done.state == Operation.State.SUCCEEDED, done.error
    with open(f"{target}/run1.csv", "rb") as handle:
        assert handle.read() == b"1,2,3\n"
    assert os.lstat(f"{target}/run1.csv").st_uid == alice.uid
    assert os.lstat(target).st_uid == alice.uid


def test_an_admin_overwrites_live_data_only_after_typing_its_path(
    home: str,
    alice: User,
    admin: User,
    btrfs_root: str,
    run_restores: Callable[[Operation], Operation],
    django_capture_on_commit_callbacks: Any,
) -> None:
    write(f"{home}/notes.txt", b"as it was", uid=alice.uid)
    snapshot = take_snapshot(btrfs_root, alice)
    write(f"{home}/notes.txt", b"broken now", uid=alice.uid)
    target = f"{home}/notes.txt"
    client = client_for(admin)
    url = reverse("backups:admin-restore")
    base = {"snapshot": snapshot.pk, "path": "notes.txt", "target": target}
    # Without overwrite the worker finds it there and refuses.
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, base).status_code == 302
    refused = run_restores(Operation.objects.get(kind=restore.RESTORE_KIND))
    assert refused.state == Operation.State.FAILED
    assert "exists already" in refused.message
    with open(target, "rb") as handle:
        assert handle.read() == b"broken now"
    # Overwrite without the typed path, or with another path, is bad input.
    for confirm in ("", f"{home}/other.txt"):
        bad = client.post(url, {**base, "overwrite": "on", "confirm": confirm})
        assert bad.status_code == 400
        assert f"Type {target} exactly" in bad.content.decode()
    assert Operation.objects.filter(kind=restore.RESTORE_KIND).count() == 1
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, {**base, "overwrite": "on", "confirm": target}).status_code == 302
    done = run_restores(Operation.objects.filter(kind=restore.RESTORE_KIND).first())  # type: ignore[arg-type]
    assert done.state == Operation.State.SUCCEEDED, done.error
    assert "over what was there" in done.message
    with open(target, "rb") as handle:
        assert handle.read() == b"as it was"


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("relative/path", "absolute path"),
        ("/etc/passwd", "under the storage root"),
        ("{root}/../etc", "The target holds"),
        ("{root}/.snapshots/homes/alice/x", "read-only"),
        ("{root}", "under the storage root"),
    ],
)
def test_an_admin_target_outside_the_root_is_refused(
    home: str,
    alice: User,
    admin: User,
    btrfs_root: str,
    target: str,
    words: str,
) -> None:
    snapshot = take_snapshot(btrfs_root, alice)
    response = client_for(admin).post(
        reverse("backups:admin-restore"), {"snapshot": snapshot.pk, "target": target.format(root=btrfs_root)}
    )
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not Operation.objects.exists()


def test_the_admin_page_renders_and_refuses_an_empty_form(admin: User) -> None:
    client = client_for(admin)
    assert client.get(reverse("backups:admin-restore")).status_code == 200
    empty = client.post(reverse("backups:admin-restore"), {})
    assert empty.status_code == 400
    assert "This field is required" in empty.content.decode()


# --- a worker that died mid-restore ------------------------------------------------------------


def test_a_restore_whose_worker_died_is_taken_over_and_its_half_made_folder_replaced(
    home: str,
    alice: User,
    btrfs_root: str,
    run_restores: Callable[[Operation], Operation],
    django_capture_on_commit_callbacks: Any,
) -> None:
    write(f"{home}/a.txt", b"all of it", uid=alice.uid)
    snapshot = take_snapshot(btrfs_root, alice)
    op = restore_via_service(snapshot, ["a.txt"], alice, django_capture_on_commit_callbacks)
    # The first worker claimed the row, made its folder, wrote part of the file and died.
    assert restore.operation_claim(op.pk)
    partial = restore.restore_folder_name(op.created)
    os.makedirs(f"{home}/restored/{partial}", mode=0o700)
    with open(f"{home}/restored/{partial}/a.txt", "wb") as handle:
        handle.write(b"all")
    Operation.objects.filter(pk=op.pk).update(params={**op.params, "folder": partial})

    done = run_restores(op)  # the redelivered message; nobody holds the job's lock
    assert done.state == Operation.State.SUCCEEDED, done.error
    assert done.attempts == 2
    assert "starting again" in done.log
    assert os.listdir(f"{home}/restored") == [partial]
    with open(f"{home}/restored/{partial}/a.txt", "rb") as handle:
        assert handle.read() == b"all of it"


def test_a_pin_left_by_a_dead_restore_is_released_by_the_next_one(
    home: str, alice: User, btrfs_root: str, django_capture_on_commit_callbacks: Any
) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    old = take_snapshot(btrfs_root, alice)
    newer = take_snapshot(btrfs_root, alice, WHEN + timedelta(hours=1))
    dead = restore_via_service(old, ["a.txt"], alice, django_capture_on_commit_callbacks)
    Operation.objects.filter(pk=dead.pk).update(state=Operation.State.FAILED)  # the reaper's verdict
    restore_via_service(newer, ["a.txt"], alice, django_capture_on_commit_callbacks)
    old.refresh_from_db()
    assert old.pinned == ""
    assert restore.restore_pins_release() == 0


def test_the_dashboard_card_costs_one_query_however_many_snapshots(
    db: None, settings: Any, django_assert_num_queries: Any
) -> None:
    from django.test import RequestFactory

    from backups.restore_cards import snapshots_card

    member = UserFactory(username="dave")
    request = RequestFactory().get("/")
    request.user = member
    base = f"{settings.STORAGE_ROOT}/.snapshots/homes/dave"
    for hour in range(30):
        when = WHEN - timedelta(hours=hour)
        Snapshot.objects.create(
            source="homes/dave", owner=member, path=f"{base}/{when:%Y-%m-%dT%H%M%SZ}", taken_at=when
        )
    with django_assert_num_queries(1):
        panel = snapshots_card(request)  # type: ignore[arg-type]
    assert panel is not None
    assert panel.context["newest_snapshot"] == WHEN


def test_the_dashboard_card_says_when_there_can_be_no_snapshots(db: None, settings: Any) -> None:
    member = UserFactory(username="erin")
    FilesystemState.objects.create(root=settings.STORAGE_ROOT, on_btrfs=False)
    body = client_for(member).get(reverse("dashboard")).content.decode()
    assert "Snapshots are not available" in body


def test_an_admin_restoring_into_a_members_home_tells_the_member(
    home: str,
    alice: User,
    admin: User,
    btrfs_root: str,
    run_restores: Callable[[Operation], Operation],
    django_capture_on_commit_callbacks: Any,
) -> None:
    from portal.models import Notification

    write(f"{home}/a.txt", b"a", uid=alice.uid)
    snapshot = take_snapshot(btrfs_root, alice)
    with django_capture_on_commit_callbacks(execute=False):
        posted = client_for(admin).post(reverse("backups:my-restore", args=[snapshot.pk]), {"paths": ["a.txt"]})
    assert posted.status_code == 302
    done = run_restores(Operation.objects.get(kind=restore.RESTORE_KIND))
    assert done.state == Operation.State.SUCCEEDED
    assert (done.actor, done.owner) == (admin, alice)
    note = Notification.objects.get(user=alice)
    assert note.title == "An admin restored files into your home"
    assert "restored/" in note.body


def test_an_admin_browsing_a_members_snapshot_can_send_an_entry_to_the_admin_restore(
    home: str, alice: User, admin: User, btrfs_root: str
) -> None:
    write(f"{home}/a.txt", b"a", uid=alice.uid)
    snapshot = take_snapshot(btrfs_root, alice)
    client = client_for(admin)
    page = client.get(reverse("backups:my-snapshot", args=[snapshot.pk])).content.decode()
    link = f"{reverse('backups:admin-restore')}?snapshot={snapshot.pk}&amp;path=a.txt"
    assert link in page
    assert "alice's home" in page
    form = client.get(reverse("backups:admin-restore"), {"snapshot": snapshot.pk, "path": "a.txt"})
    assert form.context["form"]["path"].value() == "a.txt"
    assert str(form.context["form"]["snapshot"].value()) == str(snapshot.pk)
    assert (
        "Restore elsewhere"
        not in client_for(alice).get(reverse("backups:my-snapshot", args=[snapshot.pk])).content.decode()
    )


def test_a_snapshot_whose_folder_is_gone_says_so(home: str, alice: User, btrfs_root: str) -> None:
    snapshot = take_snapshot(btrfs_root, alice)
    btrfs.subvolume_delete(snapshot.path)
    page = client_for(alice).get(reverse("backups:my-snapshot", args=[snapshot.pk]))
    assert page.status_code == 400
    assert "gone from the disk" in page.content.decode()


@pytest.mark.django_db(transaction=True)  # the feeding thread has a connection of its own
def test_a_download_is_piped_from_the_worker_through_the_cache_a_window_at_a_time(
    home: str, alice: User, btrfs_root: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without BACKUP_BROWSE_LOCAL the worker feeds the file; the broker's send is replaced by
    the task body in a thread (a worker beside the web process), the cache is the real one."""
    import threading

    from celery import current_app

    data = os.urandom(5 * 1024 * 1024 + 3)
    write(f"{home}/big.bin", data, uid=alice.uid)
    os.symlink("/etc/shadow", f"{home}/shadow")
    snapshot = take_snapshot(btrfs_root, alice)
    settings.BACKUP_BROWSE_LOCAL = False
    monkeypatch.setattr(restore_pipe, "DOWNLOAD_CHUNK", 1024 * 1024)
    monkeypatch.setattr(restore_pipe, "DOWNLOAD_WINDOW", 1)
    waits: list[bool] = []
    real_wait = restore_pipe._wait_gone

    def wait_gone(key: str) -> bool:  # the worker waiting for the reader to take a chunk
        waits.append(real_wait(key))
        return waits[-1]

    monkeypatch.setattr(restore_pipe, "_wait_gone", wait_gone)
    threads: list[threading.Thread] = []

    def send_task(name: str, args: list[Any], **_kwargs: Any) -> None:
        assert name == restore.DOWNLOAD_TASK
        thread = threading.Thread(target=restore.download_feed, args=args)
        thread.start()
        threads.append(thread)

    monkeypatch.setattr(current_app, "send_task", send_task)
    url = reverse("backups:my-download", args=[snapshot.pk])
    got = client_for(alice).get(url, {"path": "big.bin"})
    assert got.status_code == 200
    assert got["Content-Length"] == str(len(data))
    assert b"".join(got.streaming_content) == data  # type: ignore[attr-defined]
    for thread in threads:
        thread.join(timeout=30)
    assert waits == [True] * 5  # 6 chunks, one at a time in the cache: 5 waits for the reader
    refused = client_for(alice).get(url, {"path": "shadow"}, follow=True)
    assert refused.get("Content-Disposition") is None
    assert "links are never followed" in refused.content.decode()
    for thread in threads:
        thread.join(timeout=30)
