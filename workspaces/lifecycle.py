"""The worker side of workspace operations: claim the Operation, run its kind's steps
(workspaces/kinds.py, workspaces/steps.py), and end it with words for the member.

Safe to run twice: the worker holds the workspace's lock (workspaces/locks.py) while it
works, claims the Operation first (a second delivery finds nothing to do), and a row left
"running" by a killed worker is taken over and finished by the next delivery.
"""

from __future__ import annotations

from django.conf import settings

from hostops.errors import (
    EngineUnreachable,
    HostOpsError,
    HostOpsTransient,
    ImageMissing,
    NetworkBusy,
    OutOfMemory,
    PortTaken,
    SubnetPoolFull,
)
from portal.models import Operation
from portal.operations import operation_claim, operation_fail, operation_progress, operation_takeover
from workspaces.admission import WorkspaceError
from workspaces.kinds import KINDS
from workspaces.locks import workspace_lock
from workspaces.models import Workspace
from workspaces.steps import Run

ABANDONED_TOO_OFTEN = (
    "Its worker stopped {attempts} times while working on this (out of memory, or a crash); "
    "it was given up. Try again, and tell an admin if it happens again."
)


class WorkspaceLocked(HostOpsTransient):
    """Another worker is working on this workspace; try again shortly."""


def workspace_execute(operation_id: int) -> None:
    """Run the operation. Transient host errors propagate (the task retries them); every other
    failure ends the Operation with a message for the member."""
    op, workspace = _load(operation_id)
    if op is None or workspace is None:
        return
    with workspace_lock(workspace.pk) as mine:
        if not mine:
            if op.state in Operation.CLAIMABLE_STATES:
                raise WorkspaceLocked(f"{workspace} is busy with another job")
            return  # a duplicate delivery while the first one still works: nothing to do
        if not _claim(op):
            return
        run = Run(op=op, workspace=workspace)
        try:
            KINDS[op.kind].steps(run)
        except HostOpsTransient:
            raise
        except (HostOpsError, WorkspaceError, ValueError) as exc:
            workspace_fail(run, exc)


def _load(operation_id: int) -> tuple[Operation | None, Workspace | None]:
    op = Operation.objects.for_targets(Workspace).filter(pk=operation_id).first()
    workspace = Workspace.objects.with_related().filter(pk=op.target_id).first() if op else None
    if op is not None and workspace is None:
        operation_fail(op.pk, error="The workspace no longer exists.")
    return op, workspace


def workspace_give_up(operation_id: int, exc: Exception) -> None:
    """The last retry of a transient error failed too: end the operation as failed."""
    op, workspace = _load(operation_id)
    if op is not None and workspace is not None:
        workspace_fail(Run(op=op, workspace=workspace), exc)


def _claim(op: Operation) -> bool:
    """Claim the row; with the lock held, a row already "running" lost its worker (killed
    mid-job), so this delivery takes it over and finishes the job (a few times at most)."""
    if operation_claim(op.pk):
        return True
    op.refresh_from_db(fields=["state", "attempts"])
    if op.state != Operation.State.RUNNING:
        return False
    if operation_takeover(op.pk):
        operation_progress(op.pk, log="The previous worker stopped mid-job; resuming.")
        return True
    operation_fail(op.pk, error=ABANDONED_TOO_OFTEN.format(attempts=op.attempts))
    return False


def workspace_fail(run: Run, exc: Exception) -> None:
    """End the operation with words for the member; the workspace stays as it was unless the
    container had already been touched (then it is in error, with the reason)."""
    message = explain(exc, run.workspace)
    workspace = run.workspace
    workspace.refresh_from_db(fields=["state"])
    if KINDS[run.op.kind].brings_up:
        workspace.desired_state = Workspace.Desired.STOPPED  # given up: the reconciler mustn't retry forever
    if run.touched or workspace.state in (Workspace.State.CREATING, Workspace.State.REMOVING):
        workspace.move_to(Workspace.State.ERROR, reason=message)
    else:
        workspace.state_reason = message
    workspace.save(update_fields=["desired_state", "state", "state_reason"])
    operation_fail(run.op.pk, message=message, error=f"{type(exc).__name__}: {exc}")


def explain(exc: Exception, workspace: Workspace) -> str:
    """A failure in the member's words (the details stay in the Operation's error)."""
    host = workspace.host.name
    if isinstance(exc, WorkspaceError):
        return str(exc)
    if isinstance(exc, ImageMissing) and workspace.image != settings.WORKSPACE_IMAGE:
        return (
            f"Its image {workspace.image} is gone from server {host}; "
            "Rebuild moves it to the current image (your files stay)."
        )
    if isinstance(exc, ImageMissing):
        return f"The workspace image {workspace.image} is not on server {host}; an admin must build it."
    if isinstance(exc, PortTaken):
        return f"SSH port {workspace.ssh_port} is taken by another program on {host}; an admin must free it."
    if isinstance(exc, OutOfMemory):
        return "The server ran out of memory while starting your workspace. Try again in a few minutes."
    if isinstance(exc, EngineUnreachable):
        return f"Server {host}'s container engine does not answer. Admins have been told; try again later."
    if isinstance(exc, NetworkBusy):
        return (
            f"Your private network on server {host} could not be set up: many workspaces were starting at once. "
            "Try again in a minute; if it persists an admin must check the server's Docker networks."
        )
    if isinstance(exc, SubnetPoolFull):
        return f"Server {host} has no addresses left for your network; an admin must widen WORKSPACE_SUBNET_POOL."
    if isinstance(exc, HostOpsTransient):
        return f"Your workspace did not become ready in time: {exc}"
    if isinstance(exc, ValueError):
        return f"Your workspace's settings are not valid: {exc}. Ask an admin."
    return f"Docker refused: {exc}"
