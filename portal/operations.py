"""The life of an Operation row: create, claim, report progress, finish, reap.

Tasks claim their row with a conditional UPDATE, so a second delivery of the same message
finds nothing to claim and returns; every write here is a single UPDATE, safe to call from
any process while a page polls the row.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Concat, Right
from django.utils import timezone

from portal.models import Operation, User


def operation_create(
    *, kind: str, actor: User | None, owner: User | None = None, target: Any = None, message: str = ""
) -> Operation:
    """A queued Operation for ``target`` (any model instance)."""
    return Operation.objects.create(
        kind=kind,
        actor=actor,
        owner=owner if owner is not None else actor,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:254] if target is not None else "",
        message=message or "Waiting for a worker",
    )


def operation_claim(operation_id: int) -> bool:
    """Move a queued or retrying row to running. False if another worker has it or it is final."""
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, state__in=Operation.CLAIMABLE_STATES).update(
        state=Operation.State.RUNNING,
        started=now,
        attempts=models.F("attempts") + 1,
        message="Started",
        updated=now,  # QuerySet.update() skips auto_now; the reaper judges by this column
    )
    return claimed == 1


def operation_progress(operation_id: int, *, percent: int | None = None, message: str = "", log: str = "") -> None:
    """Record progress; ``log`` lines are appended and the log is trimmed to its tail."""
    fields: dict[str, Any] = {"updated": timezone.now()}
    if percent is not None:
        fields["percent"] = max(0, min(100, percent))
    if message:
        fields["message"] = message[:300]
    if log:
        line = log if log.endswith("\n") else log + "\n"
        fields["log"] = Right(Concat(models.F("log"), models.Value(line)), Operation.LOG_LIMIT)
    # A late report from a worker must not rewrite a row that is already final (or reaped).
    Operation.objects.filter(pk=operation_id).exclude(state__in=Operation.FINAL_STATES).update(**fields)


def operation_succeed(operation_id: int, *, message: str = "Done") -> None:
    """Final success; a row already final (failed by the reaper, say) keeps its outcome."""
    now = timezone.now()
    Operation.objects.filter(pk=operation_id).exclude(state__in=Operation.FINAL_STATES).update(
        state=Operation.State.SUCCEEDED, percent=100, message=message[:300], finished=now, updated=now
    )


def operation_fail(operation_id: int, *, error: str, message: str = "") -> None:
    """Final failure: ``message`` in words for the member, ``error`` with the details."""
    now = timezone.now()
    Operation.objects.filter(pk=operation_id).exclude(state__in=Operation.FINAL_STATES).update(
        state=Operation.State.FAILED,
        message=(message or error)[:300],
        error=error,
        finished=now,
        updated=now,
    )


def operation_retrying(operation_id: int, *, error: str, countdown: int) -> None:
    Operation.objects.filter(pk=operation_id, state=Operation.State.RUNNING).update(
        state=Operation.State.RETRYING,
        message=f"Temporary problem; trying again in {countdown} s",
        error=error,
        updated=timezone.now(),
    )


def operation_reap(*, now: Any = None) -> int:
    """Fail rows stuck in running (their worker died) or queued for far too long."""
    now = now or timezone.now()
    stuck_after = timedelta(seconds=settings.OPERATION_STUCK_SECONDS)
    reason = "The worker stopped reporting progress; the job was abandoned. Try again."
    running = Operation.objects.filter(state=Operation.State.RUNNING, updated__lt=now - stuck_after)
    queued = Operation.objects.filter(state__in=Operation.CLAIMABLE_STATES, updated__lt=now - 4 * stuck_after)
    count = 0
    for queryset in (running, queued):
        count += queryset.update(state=Operation.State.FAILED, message=reason, error=reason, finished=now, updated=now)
    return count
