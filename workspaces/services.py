"""Every request to change a workspace goes through one function here, whoever asks (a
member's click, an admin, the reconciler or the idle policy with no actor). Each runs in a
transaction with the workspace row locked, refuses a second concurrent operation, writes its
audit row and sends its task on the host's queue after commit (portal.operations). The work
itself runs in the worker (workspaces/lifecycle.py); this module never imports the tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.audit import AuditContext, audit_record
from portal.models import Host, Operation, Quota, User
from portal.operations import QUEUE_DOWN, operation_create, operation_enqueue, operation_fail, operation_resend
from workspaces.admission import WorkspaceError, admission_check
from workspaces.desktop import desktop_url
from workspaces.kinds import KINDS, WorkspaceOp
from workspaces.locks import operation_abandoned
from workspaces.models import WORKSPACE_NAME_RE, Workspace, workspace_slug
from workspaces.records import workspace_gpus_granted, workspace_mark_active

RESUMING = (
    "{workspace}'s \u201c{kind}\u201d was interrupted when its worker stopped; it is being finished now. "
    "Watch its progress on the card."
)


class WorkspaceBusy(WorkspaceError):
    """Another operation on the workspace has not finished."""


class DesktopSignInOff(WorkspaceError):
    """GUACAMOLE_JSON_SECRET_KEY is not set, so the portal can't sign anyone into Guacamole."""


def _quota_of(owner: User) -> Quota:
    try:
        return owner.quota
    except Quota.DoesNotExist:
        raise WorkspaceError(f"{owner} has no quota yet; an admin must set one first.") from None


def _resume_abandoned(workspace: Workspace) -> None:
    """A running operation whose worker died (see workspaces/locks.py) is sent again, so it
    finishes instead of blocking the member, whose request waits for it. Called outside the
    request's transaction, so the resend stands although the request is refused."""
    for op in Operation.objects.for_target(workspace).in_progress():
        if operation_abandoned(op, workspace.pk):
            workspace_resume(op, workspace)
            raise WorkspaceBusy(RESUMING.format(workspace=workspace, kind=op.kind))


def _refuse_if_busy(workspace: Workspace) -> None:
    """One operation per workspace at a time."""
    op = Operation.objects.for_target(workspace).in_progress().first()
    if op is not None:
        raise WorkspaceBusy(
            f"{workspace} is busy: \u201c{op.kind}\u201d has not finished yet. Wait for it, then try again."
        )


def workspace_resume(op: Operation, workspace: Workspace) -> None:
    """Send an abandoned operation's task again; the next worker takes it over."""
    note = "The worker stopped mid-job; sent to another worker to finish it."
    if not operation_resend(op, task=KINDS[op.kind].task, queue=workspace.host.queue, note=note):
        operation_fail(op.pk, message=QUEUE_DOWN, error="abandoned, and the job queue is down")


def _begin(
    *,
    workspace: Workspace,
    kind: str,
    actor: User | None,
    context: AuditContext | None,
    reason: str = "",
    params: dict[str, Any] | None = None,
    undo: Callable[[], object] | None = None,
    **detail: Any,
) -> Operation:
    """Refuse if busy, record what is wanted, create the Operation, audit, and send its task
    after commit (row locked). If the job queue can't take it, the previous wish is restored."""
    _refuse_if_busy(workspace)
    previous = workspace.desired_state
    workspace.desired_state = KINDS[kind].desired
    workspace.save(update_fields=["desired_state"])
    op = operation_create(kind=kind, actor=actor, owner=workspace.owner, target=workspace, params=params)
    if actor is not None and actor.pk != workspace.owner_id:
        detail["owner"] = workspace.owner.username
    if reason:
        detail["reason"] = reason
    audit_record(
        action=f"workspace.{kind}",
        actor=actor,
        target=workspace,
        context=context,
        operation=op.pk,
        **detail,
        **(params or {}),
    )

    def restore() -> None:
        Workspace.objects.filter(pk=workspace.pk).update(desired_state=previous)

    operation_enqueue(op, task=KINDS[kind].task, queue=workspace.host.queue, on_unsent=undo or restore)
    return op


def _lock(workspace: Workspace) -> None:
    """Serialize requests on one workspace and read its current state under the lock."""
    Workspace.objects.select_for_update().filter(pk=workspace.pk).values_list("pk").first()
    workspace.refresh_from_db(fields=["state", "desired_state", "state_reason", "container_id"])


def _check_owner_may_run(workspace: Workspace) -> None:
    if not workspace.owner.is_active:
        raise WorkspaceError(f"{workspace.owner}'s account is suspended; their workspace can't be started.")
    _quota_of(workspace.owner)
    if workspace.state not in Workspace.HOLDING_MEMORY:
        admission_check(workspace=workspace)


def _allocate_ssh_port() -> int:
    used = set(
        Workspace.objects.filter(
            ssh_port__range=(settings.WORKSPACE_SSH_PORT_BASE, settings.WORKSPACE_SSH_PORT_MAX)
        ).values_list("ssh_port", flat=True)
    )
    for port in range(settings.WORKSPACE_SSH_PORT_BASE, settings.WORKSPACE_SSH_PORT_MAX + 1):
        if port not in used:
            return port
    raise WorkspaceError("Every SSH port of the server is taken; an admin must widen WORKSPACE_SSH_PORT_MAX.")


def _check_new_workspace(*, owner: User, name: str, slug: str) -> None:
    quota = _quota_of(owner)
    if Workspace.objects.filter(owner=owner, name=name).exists():
        raise WorkspaceError(
            f"{owner} already has a workspace {name!r}." if name else f"{owner} already has a workspace."
        )
    if Workspace.objects.filter(owner=owner).count() >= quota.max_workspaces:
        raise WorkspaceError(f"{owner}'s quota allows {quota.max_workspaces} workspace(s); remove one or ask an admin.")
    if Workspace.objects.filter(slug=slug).exists():
        raise WorkspaceError(
            f"The web address \u201c{slug}\u201d is already used by another workspace; choose another name."
        )


def _insert_workspace(*, owner: User, name: str, slug: str, host: Host) -> Workspace:
    """Insert with the lowest free SSH port. Two members starting at once may both pick the
    same port: the unique constraint stops the second, which takes the next free one."""
    for _attempt in range(10):
        port = _allocate_ssh_port()
        try:
            with transaction.atomic():
                return Workspace.objects.create(
                    owner=owner,
                    name=name,
                    slug=slug,
                    host=host,
                    image=settings.WORKSPACE_IMAGE,
                    ssh_port=port,
                    desired_state=Workspace.Desired.RUNNING,
                )
        except IntegrityError:
            if not Workspace.objects.filter(ssh_port=port).exists():
                raise WorkspaceError("That workspace was just created by another request.") from None
    raise WorkspaceError("Could not reserve an SSH port; try again.")


@transaction.atomic
def workspace_create(
    *, owner: User, actor: User, name: str = "", host: Host | None = None, context: AuditContext | None = None
) -> Operation:
    """Create the member's workspace row (default when ``name`` is empty) and start it, on
    the member's server unless ``host`` says otherwise (tests and the benchmark)."""
    if name and not WORKSPACE_NAME_RE.fullmatch(name):
        raise WorkspaceError("A workspace name is 1 to 20 lowercase letters and digits.")
    try:
        slug = workspace_slug(owner.username, name)
    except ValueError as exc:
        raise WorkspaceError(f"{exc}; ask an admin.") from None
    _check_new_workspace(owner=owner, name=name, slug=slug)
    # The owner's row is locked as a move to another server locks it (workspaces/placement.py):
    # a workspace made during a move is on the server the move then refuses, or on the new one.
    placed = User.objects.select_for_update().get(pk=owner.pk).placed_host()
    workspace = Workspace(owner=owner, name=name, host=host or placed)
    _check_owner_may_run(workspace)
    workspace = _insert_workspace(owner=owner, name=name, slug=slug, host=workspace.host)
    # If the job can't be sent, the new row goes again: nothing is left half-made.
    undo = Workspace.objects.filter(pk=workspace.pk).delete
    return _begin(workspace=workspace, kind=WorkspaceOp.CREATE, actor=actor, context=context, undo=undo)


def workspace_act(
    *, workspace: Workspace, kind: str, actor: User | None, context: AuditContext | None = None, reason: str = ""
) -> Operation:
    """Start, stop, restart or rebuild (``kind``, see workspaces/kinds.py). ``actor`` None
    means the system (the reconciler, the idle policy): audited the same way."""
    _resume_abandoned(workspace)
    with transaction.atomic():
        return _act(workspace=workspace, kind=kind, actor=actor, context=context, reason=reason)


def _act(
    *, workspace: Workspace, kind: str, actor: User | None, context: AuditContext | None, reason: str
) -> Operation:
    _lock(workspace)
    detail: dict[str, Any] = {}
    if KINDS[kind].brings_up:
        _check_owner_may_run(workspace)
    if kind == WorkspaceOp.REBUILD:
        detail["image"] = settings.WORKSPACE_IMAGE
    return _begin(workspace=workspace, kind=kind, actor=actor, context=context, reason=reason, **detail)


def workspace_start(
    *, workspace: Workspace, actor: User | None, context: AuditContext | None = None, reason: str = ""
) -> Operation:
    """Start (creating the container if needed)."""
    return workspace_act(workspace=workspace, kind=WorkspaceOp.START, actor=actor, context=context, reason=reason)


def workspace_stop(
    *, workspace: Workspace, actor: User | None, context: AuditContext | None = None, reason: str = ""
) -> Operation:
    """Stop the container; the home and the container itself are kept."""
    return workspace_act(workspace=workspace, kind=WorkspaceOp.STOP, actor=actor, context=context, reason=reason)


def workspace_restart(*, workspace: Workspace, actor: User, context: AuditContext | None = None) -> Operation:
    """Stop and start again; new SSH keys or quota limits are applied on the way."""
    return workspace_act(workspace=workspace, kind=WorkspaceOp.RESTART, actor=actor, context=context)


def workspace_rebuild(*, workspace: Workspace, actor: User, context: AuditContext | None = None) -> Operation:
    """Recreate the container from the current image; home, scratch and SSH host keys stay."""
    return workspace_act(workspace=workspace, kind=WorkspaceOp.REBUILD, actor=actor, context=context)


def workspace_remove(
    *, workspace: Workspace, actor: User | None, context: AuditContext | None = None, delete_data: bool = False
) -> Operation:
    """Remove the container (and the row once it is gone). The member's home and scratch
    stay unless an admin asks to delete them, which needs this to be their last workspace
    (the home is shared by all of a member's workspaces)."""
    _resume_abandoned(workspace)
    with transaction.atomic():
        return _remove(workspace=workspace, actor=actor, context=context, delete_data=delete_data)


def _remove(*, workspace: Workspace, actor: User | None, context: AuditContext | None, delete_data: bool) -> Operation:
    _lock(workspace)
    if delete_data:
        if actor is None or not actor.is_staff:
            raise WorkspaceError("Only an admin can delete a member's data.")
        others = Workspace.objects.filter(owner=workspace.owner).exclude(pk=workspace.pk)
        if others.exists():
            names = ", ".join(str(other) for other in others)
            raise WorkspaceError(
                f"{workspace.owner}'s home is shared with {names}; remove those first or keep the data."
            )
    params = {"delete_data": True} if delete_data else None
    return _begin(workspace=workspace, kind=WorkspaceOp.REMOVE, actor=actor, context=context, params=params)


@transaction.atomic
def workspace_keep_running(*, workspace: Workspace, actor: User, context: AuditContext | None = None) -> None:
    """The member's answer to an idle warning: count now as activity."""
    workspace_mark_active(workspace, now=timezone.now())
    audit_record(action="workspace.keep_running", actor=actor, target=workspace, context=context)


def workspace_desktop_open(*, workspace: Workspace, actor: User, context: AuditContext | None = None) -> str:
    """A one-click Guacamole link into the running workspace's desktop (single-use, valid for
    a minute), with an audit row naming who opened whose desktop."""
    if not workspace.is_running:
        raise WorkspaceError("Start your workspace first: its desktop runs inside it.")
    if not settings.GUACAMOLE_JSON_SECRET_KEY:
        raise DesktopSignInOff(
            "One-click sign-in to the desktop isn't configured on this portal; sign in to Guacamole yourself."
        )
    url = desktop_url(workspace, now=timezone.now())
    audit_record(action="workspace.desktop_open", actor=actor, target=workspace, context=context)
    return url


def workspace_grant_gpus(*, workspace: Workspace, gpu_ids: list[str], reason: str) -> str:
    """Let the workspace hold exactly ``gpu_ids`` (device ids: UUIDs, or indexes). GPUs
    can't be added to or taken from a running container, so a running workspace whose
    container carries other GPUs is restarted (its home and scratch stay; the caller warns
    the member beforehand). Idempotent: returns "unchanged", "granted" (applied at the next
    start), "restarting", or "busy" (another operation runs; the next pass tries again)."""
    outcome = "unchanged"
    if list(workspace.granted_gpus) != list(gpu_ids):
        workspace_gpus_granted(workspace, gpu_ids=list(gpu_ids), reason=reason)
        outcome = "granted"
    running = workspace.state == Workspace.State.RUNNING and workspace.desired_state == Workspace.Desired.RUNNING
    if running and list(workspace.applied_gpus) != list(gpu_ids):
        try:
            workspace_act(workspace=workspace, kind=WorkspaceOp.RESTART, actor=None, reason=reason)
        except WorkspaceError:
            return "busy"
        return "restarting"
    return outcome
