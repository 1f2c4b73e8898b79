"""Every request to change a workspace goes through one function here. Each runs in a
transaction with the workspace row locked, refuses a second concurrent operation, writes its
audit row and enqueues its task on the host's queue after commit. The work itself runs in
the worker (workspaces/lifecycle.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from portal.audit import audit_record
from portal.models import Host, Operation, Quota, User
from portal.operations import operation_create, operation_fail
from workspaces.admission import WorkspaceError, admission_check
from workspaces.desktop import desktop_url
from workspaces.locks import operation_abandoned
from workspaces.models import WORKSPACE_NAME_RE, Workspace, workspace_slug

ABANDONED = "The worker stopped while working on this; it was given up so you can try again."


class WorkspaceBusy(WorkspaceError):
    """Another operation on the workspace has not finished."""


class DesktopSignInOff(WorkspaceError):
    """GUACAMOLE_JSON_SECRET_KEY is not set, so the portal can't sign anyone into Guacamole."""


def _quota_of(owner: User) -> Quota:
    try:
        return owner.quota
    except Quota.DoesNotExist:
        raise WorkspaceError(f"{owner} has no quota yet; an admin must set one first.") from None


def _refuse_if_busy(workspace: Workspace) -> None:
    """One operation per workspace at a time. A running one whose worker died is failed here
    (see workspaces/locks.py) rather than blocking the member until the reaper runs."""
    pending = Operation.objects.filter(target_type="workspace", target_id=str(workspace.pk)).exclude(
        state__in=Operation.FINAL_STATES
    )
    for op in pending:
        if operation_abandoned(op, workspace.pk):
            operation_fail(op.pk, error=ABANDONED)
            continue
        raise WorkspaceBusy(
            f"{workspace} is busy: \u201c{op.kind}\u201d has not finished yet. Wait for it, then try again."
        )


def _enqueue(kind: str, operation: Operation, workspace: Workspace, **kwargs: Any) -> None:
    from workspaces.tasks import LIFECYCLE_TASKS  # the tasks module imports the worker side

    task = LIFECYCLE_TASKS[kind]
    queue = workspace.host.queue
    transaction.on_commit(lambda: task.apply_async(args=[operation.pk], kwargs=kwargs, queue=queue))


def _begin(
    *,
    workspace: Workspace,
    kind: str,
    actor: User | None,
    desired: str,
    request: HttpRequest | None,
    reason: str = "",
    **detail: Any,
) -> Operation:
    """Refuse if busy, record what is wanted, create the Operation and audit (row locked)."""
    _refuse_if_busy(workspace)
    workspace.desired_state = desired
    workspace.save(update_fields=["desired_state"])
    op = operation_create(kind=kind, actor=actor, owner=workspace.owner, target=workspace)
    if actor is not None and actor.pk != workspace.owner_id:
        detail["owner"] = workspace.owner.username
    if reason:
        detail["reason"] = reason
    audit_record(action=f"workspace.{kind}", actor=actor, target=workspace, request=request, operation=op.pk, **detail)
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
    *, owner: User, actor: User, name: str = "", host: Host | None = None, request: HttpRequest | None = None
) -> Operation:
    """Create the member's workspace row (default when ``name`` is empty) and start it."""
    if name and not WORKSPACE_NAME_RE.fullmatch(name):
        raise WorkspaceError("A workspace name is 1 to 20 lowercase letters and digits.")
    try:
        slug = workspace_slug(owner.username, name)
    except ValueError as exc:
        raise WorkspaceError(f"{exc}; ask an admin.") from None
    _check_new_workspace(owner=owner, name=name, slug=slug)
    workspace = Workspace(owner=owner, name=name, host=host or Host.local())
    _check_owner_may_run(workspace)
    workspace = _insert_workspace(owner=owner, name=name, slug=slug, host=workspace.host)
    op = _begin(workspace=workspace, kind="create", actor=actor, desired=Workspace.Desired.RUNNING, request=request)
    _enqueue("create", op, workspace)
    return op


@transaction.atomic
def workspace_start(
    *, workspace: Workspace, actor: User | None, request: HttpRequest | None = None, reason: str = ""
) -> Operation:
    """Start (creating the container if needed). ``actor`` None means the reconciler."""
    _lock(workspace)
    _check_owner_may_run(workspace)
    op = _begin(
        workspace=workspace,
        kind="start",
        actor=actor,
        desired=Workspace.Desired.RUNNING,
        request=request,
        reason=reason,
    )
    _enqueue("start", op, workspace)
    return op


@transaction.atomic
def workspace_stop(
    *, workspace: Workspace, actor: User | None, request: HttpRequest | None = None, reason: str = ""
) -> Operation:
    """Stop the container; the home and the container itself are kept."""
    _lock(workspace)
    op = _begin(
        workspace=workspace, kind="stop", actor=actor, desired=Workspace.Desired.STOPPED, request=request, reason=reason
    )
    _enqueue("stop", op, workspace)
    return op


@transaction.atomic
def workspace_restart(*, workspace: Workspace, actor: User, request: HttpRequest | None = None) -> Operation:
    """Stop and start again; new SSH keys or quota limits are applied on the way."""
    _lock(workspace)
    _check_owner_may_run(workspace)
    op = _begin(workspace=workspace, kind="restart", actor=actor, desired=Workspace.Desired.RUNNING, request=request)
    _enqueue("restart", op, workspace)
    return op


@transaction.atomic
def workspace_rebuild(*, workspace: Workspace, actor: User, request: HttpRequest | None = None) -> Operation:
    """Recreate the container from the current image; home, scratch and SSH host keys stay."""
    _lock(workspace)
    _check_owner_may_run(workspace)
    op = _begin(
        workspace=workspace,
        kind="rebuild",
        actor=actor,
        desired=Workspace.Desired.RUNNING,
        request=request,
        image=settings.WORKSPACE_IMAGE,
    )
    _enqueue("rebuild", op, workspace)
    return op


@transaction.atomic
def workspace_remove(
    *, workspace: Workspace, actor: User | None, request: HttpRequest | None = None, delete_data: bool = False
) -> Operation:
    """Remove the container (and the row once it is gone). The member's home and scratch
    stay unless an admin asks to delete them, which needs this to be their last workspace
    (the home is shared by all of a member's workspaces)."""
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
    op = _begin(
        workspace=workspace,
        kind="remove",
        actor=actor,
        desired=Workspace.Desired.ABSENT,
        request=request,
        delete_data=delete_data,
    )
    _enqueue("remove", op, workspace, delete_data=delete_data)
    return op


@transaction.atomic
def workspace_keep_running(*, workspace: Workspace, actor: User, request: HttpRequest | None = None) -> None:
    """The member's answer to an idle warning: count now as activity."""
    workspace.last_activity_at = timezone.now()
    workspace.idle_warned_at = None
    workspace.save(update_fields=["last_activity_at", "idle_warned_at"])
    audit_record(action="workspace.keep_running", actor=actor, target=workspace, request=request)


def workspace_desktop_open(*, workspace: Workspace, actor: User, request: HttpRequest | None = None) -> str:
    """A one-click Guacamole link into the running workspace's desktop (single-use, valid for
    a minute), with an audit row naming who opened whose desktop."""
    if not workspace.is_running:
        raise WorkspaceError("Start your workspace first: its desktop runs inside it.")
    if not settings.GUACAMOLE_JSON_SECRET_KEY:
        raise DesktopSignInOff(
            "One-click sign-in to the desktop isn't configured on this portal; sign in to Guacamole yourself."
        )
    url = desktop_url(workspace, now=timezone.now())
    audit_record(action="workspace.desktop_open", actor=actor, target=workspace, request=request)
    return url
