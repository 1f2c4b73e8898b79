"""Where members' data lives on the storage root, made on the host by the worker.

On BTRFS (the server's RAID10 of data disks) the root holds::

    homes/<username>     a subvolume per member, owned by them, backed up
    scratch/<username>   a subvolume per member, owned by them, never backed up
    datasets/            a subvolume, read-only in every workspace
    portal/              a subvolume for the portal's own data (database, uploads)

and each member has a group qgroup ``1/<uid>`` holding their home and scratch, so one figure
and one hard limit cover all their space. Quotas are turned on at the first pass. Anywhere else
(``make run``, a plain disk) the same paths are plain folders and usage is not measured.

A member's folders are made when they are added (storage.tasks.member_storage_prepare_task,
sent on invite) and again, finding them present, before each workspace start (the workspaces
app calls ``prepare_member`` through settings.WORKSPACE_STORAGE_PREPARE). A member who predates
the storage app has a plain home folder; at that point it becomes a subvolume (copied with
reflinks, so in seconds and with no extra space) before the container mounts it.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from hostops import btrfs, files
from hostops.errors import HostOpsError, NotFound, QuotasDisabled
from portal.env import format_size
from portal.models import Quota, User
from storage.models import MemberStorage

logger = logging.getLogger(__name__)

_USERNAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_CONVERTING = ".{}.converting"  # a plain home being turned into a subvolume (homes/.<name>.converting)


class StorageError(Exception):
    """A refused or failed storage change, in words for the admin."""


@dataclass(frozen=True)
class Layout:
    root: str
    homes: str
    scratch: str
    datasets: str
    portal: str

    @classmethod
    def from_settings(cls) -> Layout:
        root = settings.STORAGE_ROOT
        return cls(
            root=root,
            homes=settings.WORKSPACE_HOME_ROOT,
            scratch=settings.WORKSPACE_SCRATCH_ROOT,
            datasets=settings.WORKSPACE_DATASETS_PATH,
            portal=posixpath.join(root, "portal"),
        )

    def home_of(self, username: str) -> str:
        return posixpath.join(self.homes, _checked_username(username))

    def scratch_of(self, username: str) -> str:
        return posixpath.join(self.scratch, _checked_username(username))

    def on_btrfs(self) -> bool:
        """Whether the root is on BTRFS (made first if missing, so the answer is about its disk)."""
        files.ensure_dir(self.root)
        return btrfs.is_btrfs(self.root)


def _checked_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise StorageError(f"{username!r} is not a username that may name a folder")
    return username


def member_group(user: User) -> str:
    """The member's group qgroup: their uid is unique and never reused."""
    return f"1/{user.uid}"


# --- the shared part of the layout ---------------------------------------------------------


def layout_ensure(layout: Layout | None = None) -> list[str]:
    """The root's folders, as subvolumes where it is on BTRFS, and quotas on; returns what was
    made. A shared folder that is already a plain folder is left as it is (and the storage page
    says so): converting one that workspaces have mounted is not safe."""
    layout = layout or Layout.from_settings()
    made: list[str] = []
    if not layout.on_btrfs():
        for path in (layout.homes, layout.scratch, layout.datasets, layout.portal):
            if not os.path.isdir(path):
                files.ensure_dir(path)
                made.append(path)
        return made
    _quotas_on(layout.root)
    for path in (layout.homes, layout.scratch, layout.datasets, layout.portal):
        files.ensure_dir(posixpath.dirname(path))
        if not os.path.lexists(path):
            btrfs.subvolume_create(path)
            made.append(path)
    return made


def _quotas_on(root: str) -> None:
    """Quotas on the root's filesystem; turned on (with the kernel's rescan) if they are off."""
    try:
        btrfs.qgroup_show(root)
    except QuotasDisabled:
        logger.info("turning BTRFS quotas on for %s", root)
        btrfs.quota_enable(root)
        btrfs.quota_rescan(root, wait=False)


def shared_folders(layout: Layout | None = None) -> list[tuple[str, str, bool]]:
    """(name, path, is a subvolume) of the shared folders, for the storage page."""
    layout = layout or Layout.from_settings()
    found = []
    for name, path in (("homes", layout.homes), ("scratch", layout.scratch), ("datasets", layout.datasets)):
        found.append((name, path, os.path.isdir(path) and btrfs.is_subvolume(path)))
    found.append(("portal", layout.portal, os.path.isdir(layout.portal) and btrfs.is_subvolume(layout.portal)))
    return found


# --- a member's home and scratch ------------------------------------------------------------


def prepare_member(user: User) -> MemberStorage:
    """The member's home and scratch, present and theirs (safe to repeat). Runs on the worker
    of the host that holds the storage root."""
    layout = Layout.from_settings()
    home, scratch = layout.home_of(user.username), layout.scratch_of(user.username)
    if layout.on_btrfs():
        layout_ensure(layout)
        for path in (home, scratch):
            _ensure_member_subvolume(path, user)
        group = member_group(user)
        btrfs.qgroup_ensure_group(layout.root, group)
        for path in (home, scratch):
            btrfs.qgroup_ensure_member(layout.root, btrfs.subvolume_qgroup(path), group)
        kind, qgroup = MemberStorage.Kind.SUBVOLUME, group
    else:
        layout_ensure(layout)
        for path in (home, scratch):
            files.ensure_private_dir(path, uid=user.uid, gid=user.uid)
        kind, qgroup = MemberStorage.Kind.FOLDER, ""
    row, created = MemberStorage.objects.update_or_create(
        user=user,
        defaults={
            "kind": kind,
            "qgroup": qgroup,
            "home_path": home,
            "scratch_path": scratch,
            "state": MemberStorage.State.PRESENT,
            "deleted_at": None,
        },
    )
    if created or row.kind != kind:
        logger.info("storage of %s: %s at %s and %s", user, row.get_kind_display(), home, scratch)
    if kind == MemberStorage.Kind.SUBVOLUME:
        apply_hard_limit(row)
    return row


def _ensure_member_subvolume(path: str, user: User) -> None:
    _finish_interrupted_conversion(path)
    if not os.path.lexists(path):
        try:
            btrfs.subvolume_create(path)
        except HostOpsError:
            # Another worker made it meanwhile (the invite's task racing a first start).
            if not (os.path.isdir(path) and btrfs.is_subvolume(path)):
                raise
        files.set_owner(path, uid=user.uid, gid=user.uid)
    elif not btrfs.is_subvolume(path):
        _convert_to_subvolume(path)


def _convert_to_subvolume(path: str) -> None:
    """Turn the plain folder ``path`` into a subvolume holding the same files (owners, modes,
    times kept): the folder moves aside, a subvolume takes its name, the files are copied in
    with reflinks, and the old folder goes. Only when no container has it mounted (before a
    start, or at the member's addition)."""
    aside = posixpath.join(posixpath.dirname(path), _CONVERTING.format(posixpath.basename(path)))
    logger.info("converting the plain folder %s into a subvolume", path)
    files.rename(path, aside)
    btrfs.subvolume_create(path)
    try:
        files.copy_tree(aside, path)
    except HostOpsError:
        btrfs.subvolume_delete(path)
        files.rename(aside, path)
        raise
    files.remove_tree(aside)


def _finish_interrupted_conversion(path: str) -> None:
    """A conversion cut short (the worker died) left the old folder aside: the copy may be
    partial, so the old folder wins and the conversion starts again."""
    aside = posixpath.join(posixpath.dirname(path), _CONVERTING.format(posixpath.basename(path)))
    if not os.path.lexists(aside):
        return
    if os.path.lexists(path):
        if not btrfs.is_subvolume(path):
            raise StorageError(f"both {path} and {aside} exist and neither is a subvolume: sort them out by hand")
        _delete_subvolume_tree(path)
    files.rename(aside, path)


def apply_hard_limit(row: MemberStorage) -> bool:
    """Set the member's quota's hard limit on their group qgroup if it differs from what is
    set; True if it changed. Runs on the storage host's worker."""
    quota = Quota.objects.filter(user_id=row.user_id).first()
    wanted = quota.storage_hard if quota else None
    if row.kind != MemberStorage.Kind.SUBVOLUME or not row.qgroup or wanted == row.hard_limit_applied:
        return False
    btrfs.qgroup_limit_group(settings.STORAGE_ROOT, row.qgroup, wanted)
    row.hard_limit_applied = wanted
    if wanted is None:
        row.near_hard = False
    row.save(update_fields=["hard_limit_applied", "near_hard"])
    logger.info("hard limit of %s set to %s", row.user, format_size(wanted) if wanted else "none")
    return True


def delete_member_data(user: User) -> list[str]:
    """Delete the member's home and scratch (subvolumes with any they made inside, or plain
    folders) and their group qgroup; returns what was deleted. Irreversible (backups aside).
    Called by the storage deletion Operation and by a workspace's removal with its data."""
    layout = Layout.from_settings()
    deleted = []
    for path in (layout.home_of(user.username), layout.scratch_of(user.username)):
        if not os.path.lexists(path):
            continue
        if btrfs.is_subvolume(path):
            _delete_subvolume_tree(path)
        else:
            files.remove_tree(path)
        deleted.append(path)
    row = MemberStorage.objects.filter(user=user).first()
    if row is not None and row.qgroup and layout.on_btrfs():
        _drop_group(layout.root, row.qgroup)
    MemberStorage.objects.filter(user=user).update(
        state=MemberStorage.State.DELETED,
        deleted_at=timezone.now(),
        referenced=None,
        exclusive=None,
        home_referenced=None,
        scratch_referenced=None,
        hard_limit_applied=None,
        over_soft=False,
        near_hard=False,
    )
    return deleted


def _delete_subvolume_tree(path: str) -> None:
    """Delete the subvolume at ``path`` and, deepest first, any subvolume made inside it (btrfs
    refuses to delete one that holds another). Listed from ``path`` itself, btrfs names the
    subvolumes inside it relative to it; which ones are inside is told by their parent ids."""
    top = btrfs.subvolume_show(path).id
    listed = btrfs.subvolume_list(path)
    parent_of = {sub.id: sub.top_level for sub in listed}

    def inside(ident: int) -> bool:
        seen = set()
        while ident in parent_of and ident not in seen:
            seen.add(ident)
            ident = parent_of[ident]
            if ident == top:
                return True
        return False

    nested = [sub.path for sub in listed if inside(sub.id)]
    for sub in sorted(nested, key=lambda value: value.count("/"), reverse=True):
        btrfs.subvolume_delete(posixpath.join(path, sub))
    btrfs.subvolume_delete(path)


def _drop_group(root: str, group: str) -> None:
    """Remove the member's group qgroup once its subvolumes' own qgroups are gone (stale ones
    cleared first, waiting at most the command timeout for the cleaner)."""
    try:
        btrfs.qgroup_clear_stale(root, timeout=settings.STORAGE_COMMAND_TIMEOUT)
        btrfs.qgroup_destroy_group(root, group)
    except (HostOpsError, NotFound) as exc:
        # The data is gone; an empty group left behind costs nothing and the next pass retries.
        logger.warning("the qgroup %s on %s stays for now: %s", group, root, exc)
