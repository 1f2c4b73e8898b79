"""What the backup jobs share (the hourly snapshot pass, the offsite run, the restore drill):
starting one as an Operation with its BackupRun, at most one of a kind at a time, and finding
the runs whose job ended without recording them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from backups.models import BackupRun
from portal.models import Host, Operation, User
from portal.operations import (
    operation_claim,
    operation_create,
    operation_enqueue,
    operation_fail,
    operation_progress,
    operation_takeover,
)

# A run left "running" with no Operation (a pass called directly) for this long is dead.
ORPHAN_AFTER = timedelta(hours=2)
UNSENT = "Not started: the job queue did not answer."

Finish = Callable[..., BackupRun]


def orphan_runs(kind: str, *, after: timedelta = ORPHAN_AFTER) -> QuerySet[BackupRun]:
    """Runs of ``kind`` still "running" whose job is over (reaped after its worker vanished),
    or that have no job and started more than ``after`` ago."""
    old = timezone.now() - after
    return BackupRun.objects.filter(kind=kind, result=BackupRun.Result.RUNNING).filter(
        Q(operation__state__in=Operation.FINAL_STATES) | Q(operation=None, started_at__lt=old)
    )


def start_run(
    *,
    operation_kind: str,
    run_kind: str,
    task: str,
    actor: User | None,
    close_orphans: Callable[[], None],
    finish: Finish,
) -> tuple[Operation | None, BackupRun | None]:
    """Record an Operation and its BackupRun and send ``task`` to the storage host's queue; (None,
    None) while one of ``operation_kind`` is queued or running. Call inside a transaction:
    locking the host row makes two starts at once take turns, so the second sees the first.
    ``close_orphans`` runs under that lock first; ``finish(run, result=, message=)`` records a
    run whose task could not be sent."""
    host = Host.objects.select_for_update().get(pk=Host.local().pk)
    close_orphans()
    if Operation.objects.filter(kind=operation_kind).in_progress().exists():
        return None, None
    op = operation_create(kind=operation_kind, actor=actor, target=host, message=f"Waiting for the worker of {host}")
    run = BackupRun.objects.create(kind=run_kind, operation=op)

    def unsent() -> None:
        finish(run, result=BackupRun.Result.FAILED, message=UNSENT)

    operation_enqueue(op, task=task, queue=host.queue, on_unsent=unsent)
    return op, run


class Progress:
    """A job's progress into its Operation (when it has one) and its module's log."""

    def __init__(self, operation_id: int | None, logger: logging.Logger) -> None:
        self.operation_id = operation_id
        self.logger = logger

    def log(self, line: str) -> None:
        self.logger.info("%s", line)
        if self.operation_id is not None:
            operation_progress(self.operation_id, log=line)

    def percent(self, value: int, message: str) -> None:
        if self.operation_id is not None:
            operation_progress(self.operation_id, percent=value, message=message)


def claim(operation_id: int, *, taking_over: str) -> bool:
    """Claim the job's row; a row left "running" by a worker that died is taken over, with
    ``taking_over`` in its log. False when there is nothing to do (another delivery has it, or
    it is over)."""
    if operation_claim(operation_id):
        return True
    state = Operation.objects.filter(pk=operation_id).values_list("state", flat=True).first()
    if state == Operation.State.RUNNING and operation_takeover(operation_id):
        operation_progress(operation_id, log=taking_over)
        return True
    return False


def give_up(
    operation_id: int, words: str, *, finish: Finish, before: Callable[[BackupRun], None] | None = None
) -> None:
    """End the job and its run (if still running) as failed with ``words``; ``before`` is what
    the kind does first with the run (the offsite run takes its pins off)."""
    with transaction.atomic():
        operation_fail(operation_id, error=words)
        run = BackupRun.objects.filter(operation_id=operation_id, result=BackupRun.Result.RUNNING).first()
        if run is not None:
            if before is not None:
                before(run)
            finish(run, result=BackupRun.Result.FAILED, message=words)
