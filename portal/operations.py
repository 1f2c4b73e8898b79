"""The life of an Operation row: create, claim, report progress, finish, reap.

Tasks claim their row with a conditional UPDATE, so a second delivery of the same message
finds nothing to claim and returns; every write here is a single UPDATE, safe to call from
any process while a page polls the row.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connections, models, transaction
from django.db.models.functions import Concat, Right
from django.utils import timezone

from portal.models import Operation, User

logger = logging.getLogger(__name__)

QUEUE_DOWN = "The job queue is not answering, so this did not start and nothing changed. Try again in a minute."
# Sending waits at most about a second for the broker: a member's click must not hang.
SEND_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}


def operation_create(
    *,
    kind: str,
    actor: User | None,
    owner: User | None = None,
    target: Any = None,
    message: str = "",
    params: dict[str, Any] | None = None,
) -> Operation:
    """A queued Operation for ``target`` (any model instance). ``params`` are the task's
    keyword arguments, kept so the job can be sent again (see operation_resend)."""
    return Operation.objects.create(
        kind=kind,
        params=params or {},
        actor=actor,
        owner=owner if owner is not None else actor,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:254] if target is not None else "",
        message=message or "Waiting for a worker",
    )


def operation_enqueue(
    operation: Operation, *, task: str, queue: str, on_unsent: Callable[[], object] | None = None
) -> None:
    """Send the operation's task once the transaction commits. If the broker can't take it,
    the operation fails at once with QUEUE_DOWN (the in-memory row too, so the caller can tell
    the member) and ``on_unsent`` undoes what the service recorded: nothing is left waiting
    for a job nobody will run."""

    def send() -> None:
        problem = _send(operation, task=task, queue=queue)
        if problem:
            with transaction.atomic():
                operation_fail(operation.pk, message=QUEUE_DOWN, error=f"{task} could not be sent: {problem}")
                if on_unsent is not None:
                    on_unsent()
            operation.state, operation.message = Operation.State.FAILED, QUEUE_DOWN

    transaction.on_commit(send)


def operation_resend(operation: Operation, *, task: str, queue: str, note: str) -> bool:
    """Send a running operation's task again (its worker died): the next worker takes the
    row over and finishes the job, so the history shows what really happened."""
    operation_progress(operation.pk, log=note)
    return not _send(operation, task=task, queue=queue)


def _send(operation: Operation, *, task: str, queue: str) -> str:
    """Publish the task; what went wrong, or "" once the broker has it."""
    try:
        current_app.send_task(  # by name: the web process never imports the apps' task modules
            task, args=[operation.pk], kwargs=operation.params, queue=queue, retry=True, retry_policy=SEND_RETRY
        )
    except Exception as exc:  # kombu's OperationalError, or whatever the transport raises
        logger.warning("could not send %s for operation %s: %s", task, operation.pk, exc)
        return f"{type(exc).__name__}: {exc}"
    return ""


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


def operation_takeover(operation_id: int) -> bool:
    """A running row whose worker is gone (the caller holds its lock) becomes this worker's;
    counted as an attempt, so a job that kills its workers is not resumed forever."""
    claimed = Operation.objects.filter(
        pk=operation_id, state=Operation.State.RUNNING, attempts__lt=settings.OPERATION_MAX_ATTEMPTS
    ).update(attempts=models.F("attempts") + 1, updated=timezone.now())
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


@contextlib.contextmanager
def operation_keepalive(operation_id: int | None, *, every: float = 60.0) -> Iterator[None]:
    """While a step runs that reports nothing for a long time (restic forget --prune on Drive,
    restic check), touch the row every ``every`` seconds from a thread, so the reaper, which
    fails rows not updated for OPERATION_STUCK_SECONDS, knows the worker is still at it."""
    if operation_id is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                Operation.objects.filter(pk=operation_id).exclude(state__in=Operation.FINAL_STATES).update(
                    updated=timezone.now()
                )
        finally:
            connections.close_all()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"keepalive-{operation_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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
