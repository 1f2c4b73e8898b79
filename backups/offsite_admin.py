"""The offsite repository's admin actions, on the Offsite repository page: "Check repository"
reads it, "Create repository" makes it, "Break stale lock" removes a lock a killed job left.

Each is an Operation on the storage host's worker, which alone has the password file and
writes rclone.conf; what the worker read is kept in a RepositoryReading row, so the page never
runs restic. Create and unlock hold offsite_repo.repo_lock(), so they never overlap the
night's backup or the drill. The check does not: it only reads (locks with ``--no-lock``), and
a reading taken while the night's backup runs is the one that shows that job's lock.

A repository is never made without an admin asking: create is offered only when the last
reading found none, the admin types the location, and restic's own init refuses when one is
there. Unlock never uses ``--remove-all``: restic removes only stale locks (restic.is_stale),
and a lock that is not stale is refused in words before anything runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from backups import offsite_repo
from backups.models import RepositoryReading
from hostops import restic
from hostops.errors import HostOpsError, RepositoryExists, RepositoryMissing
from portal.audit import AuditContext, audit_record
from portal.env import format_size
from portal.models import Host, Operation, User
from portal.operations import (
    operation_claim,
    operation_create,
    operation_enqueue,
    operation_fail,
    operation_progress,
    operation_succeed,
    operation_takeover,
)

logger = logging.getLogger(__name__)

CHECK_KIND = "backups.repository_check"
CREATE_KIND = "backups.repository_create"
UNLOCK_KIND = "backups.repository_unlock"
KINDS = (CHECK_KIND, CREATE_KIND, UNLOCK_KIND)
CHECK_TASK = "backups.offsite_admin_tasks.repository_check_task"
CREATE_TASK = "backups.offsite_admin_tasks.repository_create_task"
UNLOCK_TASK = "backups.offsite_admin_tasks.repository_unlock_task"
_T = TypeVar("_T")
BUSY = "A check, create or unlock of the repository is already queued or running; wait for it to end."


class RepositoryError(Exception):
    """A refused request, in words for the admin."""


class RepositoryBusy(Exception):
    """Another job (the night's backup, the drill) holds the repository; try again later."""


@dataclass(frozen=True)
class LockView:
    """A lock of the last reading as the page shows it; ``age_s`` is counted from now."""

    id: str
    time: datetime
    holder: str
    exclusive: bool
    stale: bool
    age_s: float

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def age(self) -> str:
        return offsite_repo.age_words(self.age_s)

    @property
    def held_words(self) -> str:
        return f"held by {self.holder} for {self.age}: a job is running"


def holder_words(*, username: str, hostname: str, pid: int) -> str:
    return f"{username or '?'}@{hostname or '?'} (PID {pid})"


def reading() -> RepositoryReading | None:
    """The last reading of the repository that settings name now."""
    return RepositoryReading.objects.filter(location=offsite_repo.describe()).select_related("operation").first()


def locks_of(row: RepositoryReading | None) -> list[LockView]:
    if row is None:
        return []
    now = timezone.now()
    views = []
    for data in row.locks:
        when = datetime.fromisoformat(data["time"])
        views.append(
            LockView(
                id=data["id"],
                time=when,
                holder=holder_words(username=data["username"], hostname=data["hostname"], pid=data["pid"]),
                exclusive=bool(data["exclusive"]),
                stale=bool(data["stale"]),
                age_s=max((now - when).total_seconds(), 0.0),
            )
        )
    return views


# --- the web side: start an Operation ----------------------------------------------------------


def repository_check_start(*, actor: User, context: AuditContext) -> Operation:
    """An admin's "Check repository": the worker reads it and records a RepositoryReading."""
    where = _configured()
    return _start(kind=CHECK_KIND, task=CHECK_TASK, actor=actor, context=context, where=where, params={})


def repository_create_start(*, typed_location: str, actor: User, context: AuditContext) -> Operation:
    """An admin's "Create repository", confirmed by typing its location. Offered only when the
    last reading found no repository; the worker's init refuses one that exists all the same."""
    where = _configured()
    if typed_location.strip() != where:
        raise RepositoryError(f"Type the location exactly as shown ({where}) to create the repository there.")
    row = reading()
    if row is None or row.state != RepositoryReading.State.MISSING:
        found = "none yet" if row is None else f"'{row.get_state_display().lower()}'"
        raise RepositoryError(
            f"A repository is only created when the last check found none at {where} (its last reading: {found}). "
            "Check the repository first."
        )
    params = {"location": where}
    return _start(kind=CREATE_KIND, task=CREATE_TASK, actor=actor, context=context, where=where, params=params)


def repository_unlock_start(*, lock_id: str, actor: User, context: AuditContext) -> Operation:
    """An admin's "Break stale lock" of ``lock_id``, one of the last reading's stale locks."""
    where = _configured()
    lock = next((lock for lock in locks_of(reading()) if lock.id == lock_id), None)
    if lock is None:
        raise RepositoryError("That lock is not in the last reading of the repository; check it again.")
    if not lock.stale:
        raise RepositoryError(f"Lock {lock.short_id} is {lock.held_words}. It stays until that job ends.")
    params = {"lock_id": lock.id}
    return _start(kind=UNLOCK_KIND, task=UNLOCK_TASK, actor=actor, context=context, where=where, params=params)


def _configured() -> str:
    problem = offsite_repo.problem()
    if problem is not None:
        raise RepositoryError(problem)
    return offsite_repo.describe()


def _start(
    *, kind: str, task: str, actor: User, context: AuditContext, where: str, params: dict[str, Any]
) -> Operation:
    with transaction.atomic():
        # Locking the host row makes two clicks at once take turns: the second sees the first.
        host = Host.objects.select_for_update().get(pk=Host.local().pk)
        if Operation.objects.filter(kind__in=KINDS).in_progress().exists():
            raise RepositoryError(BUSY)
        op = operation_create(kind=kind, actor=actor, message=f"Waiting for the worker of {host}", params=params)
        op.target_label = where[:254]
        op.save(update_fields=["target_label"])
        audit_record(action=kind, actor=actor, target=op, context=context, **{"location": where, **params})
        operation_enqueue(op, task=task, queue=host.queue)
    return op


# --- the worker side ---------------------------------------------------------------------------


def repository_check_execute(operation_id: int) -> RepositoryReading | None:
    """Read the repository for Operation ``operation_id``; None when this delivery had nothing
    to do. A reading that could not be made (wrong password, …) fails the Operation in words."""
    if not _claim(operation_id, CHECK_KIND):
        return None
    row = _guarded(operation_id, lambda: read_repository(operation_id))
    if row.state == RepositoryReading.State.UNREADABLE:
        operation_fail(operation_id, error=row.problem)
    else:
        operation_succeed(operation_id, message=summary(row))
    return row


def repository_create_execute(operation_id: int, *, location: str) -> None:
    """Create the repository at ``location`` (what the admin typed) for Operation
    ``operation_id``, holding the repository lock; RepositoryBusy while another job has it."""
    with offsite_repo.repo_lock() as mine:
        if not _claim_locked(operation_id, CREATE_KIND, mine):
            return
        _guarded(operation_id, lambda: _create(operation_id, location))


def repository_unlock_execute(operation_id: int, *, lock_id: str) -> None:
    """Remove the stale lock ``lock_id`` (restic unlock: stale locks only) for Operation
    ``operation_id``, holding the repository lock; a lock that is not stale is refused."""
    with offsite_repo.repo_lock() as mine:
        if not _claim_locked(operation_id, UNLOCK_KIND, mine):
            return
        _guarded(operation_id, lambda: _unlock(operation_id, lock_id))


def repository_give_up(operation_id: int, words: str) -> None:
    operation_fail(operation_id, error=words)


def _claim(operation_id: int, kind: str) -> bool:
    state = Operation.objects.filter(pk=operation_id, kind=kind).values_list("state", flat=True).first()
    if state is None:
        return False
    if operation_claim(operation_id):
        return True
    if state == Operation.State.RUNNING and operation_takeover(operation_id):
        operation_progress(operation_id, log="The previous worker stopped midway; taking over.")
        return True
    return False


def _claim_locked(operation_id: int, kind: str, mine: bool) -> bool:
    """Claim the row once the repository lock is held; without it, RepositoryBusy while the
    row still waits (the task tries again later)."""
    if not mine:
        waiting = Operation.objects.filter(pk=operation_id, state__in=Operation.CLAIMABLE_STATES).exists()
        if waiting:
            operation_progress(operation_id, message="Waiting: another job is using the repository")
            raise RepositoryBusy("another job holds the repository")
        return False
    return _claim(operation_id, kind)


def _guarded(operation_id: int, work: Callable[[], _T]) -> _T:
    """``work()``; an unexpected error ends the Operation in words before Celery logs it."""
    try:
        return work()
    except Exception as exc:
        operation_fail(operation_id, error=f"Stopped on an unexpected error: {type(exc).__name__}: {exc}")
        raise


def read_repository(operation_id: int | None = None) -> RepositoryReading:
    """Read the repository (locks first, with --no-lock, so they are known even when the rest
    cannot be read) and record it as the location's RepositoryReading."""
    where = offsite_repo.describe()
    try:
        repo = offsite_repo.repository()
        locks = restic.list_locks(repo)
    except offsite_repo.OffsiteNotConfigured as exc:
        return _record(where, operation_id, state=RepositoryReading.State.UNREADABLE, problem=str(exc))
    except RepositoryMissing as exc:
        return _record(where, operation_id, state=RepositoryReading.State.MISSING, problem=offsite_repo.explain(exc))
    except HostOpsError as exc:
        return _record(where, operation_id, state=RepositoryReading.State.UNREADABLE, problem=offsite_repo.explain(exc))
    rows = [_lock_row(lock) for lock in locks]
    try:
        count = len(restic.snapshots(repo))
        size = restic.stats(repo).total_size
    except HostOpsError as exc:
        state = RepositoryReading.State.EXISTS
        return _record(where, operation_id, state=state, problem=offsite_repo.explain(exc), locks=rows)
    return _record(
        where, operation_id, state=RepositoryReading.State.EXISTS, snapshot_count=count, size_bytes=size, locks=rows
    )


def _lock_row(lock: restic.Lock) -> dict[str, Any]:
    return {
        "id": lock.id,
        "time": lock.time.isoformat(),
        "hostname": lock.hostname,
        "username": lock.username,
        "pid": lock.pid,
        "exclusive": lock.exclusive,
        "stale": restic.is_stale(lock),
    }


def _record(where: str, operation_id: int | None, **fields: Any) -> RepositoryReading:
    values = {"problem": "", "snapshot_count": None, "size_bytes": None, "locks": [], **fields}
    row, _ = RepositoryReading.objects.update_or_create(
        location=where, defaults={**values, "read_at": timezone.now(), "operation_id": operation_id}
    )
    return row


def summary(row: RepositoryReading) -> str:
    """One line of what a reading found, for its Operation."""
    if row.state != RepositoryReading.State.EXISTS:
        return row.problem or row.get_state_display()
    stale = sum(1 for lock in row.locks if lock["stale"])
    locks = f"{len(row.locks)} lock{'' if len(row.locks) == 1 else 's'}" + (f" ({stale} stale)" if stale else "")
    if row.problem:
        return f"The repository exists, {locks}; the rest could not be read: {row.problem}"
    snapshots = f"{row.snapshot_count} snapshot{'' if row.snapshot_count == 1 else 's'}"
    return f"The repository exists: {snapshots}, {_size(row.size_bytes)} stored, {locks}."


def _size(num_bytes: int | None) -> str:
    return format_size(num_bytes or 0)


def _create(operation_id: int, location: str) -> None:
    where = offsite_repo.describe()
    if where != location:
        words = f"BACKUP_RESTIC_REPOSITORY is now {where}, not {location}; nothing was made."
        operation_fail(operation_id, error=words)
        return
    try:
        repo = offsite_repo.repository()
        repo_id = restic.init(repo)
    except offsite_repo.OffsiteNotConfigured as exc:
        operation_fail(operation_id, error=str(exc))
        return
    except RepositoryExists as exc:
        read_repository(operation_id)
        operation_fail(operation_id, error=offsite_repo.explain(exc))
        return
    except HostOpsError as exc:
        operation_fail(operation_id, error=offsite_repo.explain(exc))
        return
    operation_progress(operation_id, percent=60, log=f"Created the repository at {where} (id {repo_id[:8]}).")
    row = read_repository(operation_id)
    operation_succeed(operation_id, message=f"Repository created at {where}. {summary(row)}")


def _unlock(operation_id: int, lock_id: str) -> None:
    try:
        repo = offsite_repo.repository()
        found = next((lock for lock in restic.list_locks(repo) if lock.id == lock_id), None)
    except offsite_repo.OffsiteNotConfigured as exc:
        operation_fail(operation_id, error=str(exc))
        return
    except HostOpsError as exc:
        operation_fail(operation_id, error=offsite_repo.explain(exc))
        return
    if found is None:
        read_repository(operation_id)
        words = f"Lock {lock_id[:8]} is gone already: its job ended, or it was removed."
        operation_succeed(operation_id, message=words)
        return
    if not restic.is_stale(found):
        read_repository(operation_id)
        holder = holder_words(username=found.username, hostname=found.hostname, pid=found.pid)
        age = offsite_repo.age_words(found.age_s)
        operation_fail(operation_id, error=f"Lock {lock_id[:8]} is held by {holder} for {age}: a job is running.")
        return
    try:
        removed = restic.unlock(repo)
    except HostOpsError as exc:
        operation_fail(operation_id, error=offsite_repo.explain(exc))
        return
    logger.info("removed %d stale lock(s) of %s", removed, offsite_repo.describe())
    row = read_repository(operation_id)
    operation_succeed(
        operation_id, message=f"Removed {removed} stale lock{'' if removed == 1 else 's'}. {summary(row)}"
    )
