"""The worker side of workspace operations: each kind runs its steps against the host's
Docker engine through hostops, writes readable progress into its Operation, and leaves the
final state on the Workspace row.

Safe to run twice: the worker holds the workspace's lock (workspaces/locks.py) while it
works, claims the Operation first (a second delivery finds nothing to do), and every host
step is idempotent (a deterministic container name, ensure_container by spec hash), so a
retry or a takeover after a killed worker finds its own earlier work and finishes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from hostops import docker
from hostops.errors import (
    EngineUnreachable,
    HostOpsError,
    HostOpsTransient,
    ImageMissing,
    NetworkBusy,
    NotFound,
    OutOfMemory,
    PortTaken,
    SubnetPoolFull,
)
from hostops.types import ContainerSpec
from portal.env import format_size
from portal.models import Operation, SSHKey
from portal.operations import operation_claim, operation_fail, operation_progress, operation_succeed
from workspaces.admission import WorkspaceError, admission_check
from workspaces.desktop import desktop_password
from workspaces.folders import delete_member_data, prepare_folders
from workspaces.locks import workspace_lock
from workspaces.models import Workspace
from workspaces.networks import ensure_member_network, release_member_network
from workspaces.spec import SpecConfig, build_spec

STOP_TIMEOUT = 30  # seconds sshd, Jupyter and the desktop get to exit before SIGKILL


class WorkspaceLocked(HostOpsTransient):
    """Another worker is working on this workspace; try again shortly."""


@dataclass
class Run:
    """One execution of an operation: its row, its workspace, and progress reporting."""

    op: Operation
    workspace: Workspace
    delete_data: bool = False
    touched: bool = field(default=False)  # whether a host step changed the container

    @property
    def docker_url(self) -> str:
        return self.workspace.host.docker_url

    def step(self, percent: int, message: str, log: str = "") -> None:
        stamp = timezone.localtime().strftime("%H:%M:%S")
        operation_progress(self.op.pk, percent=percent, message=message, log=f"{stamp} {log or message}")

    def note(self, line: str) -> None:
        stamp = timezone.localtime().strftime("%H:%M:%S")
        operation_progress(self.op.pk, log=f"{stamp}   {line}")

    def set_state(self, state: str, *, reason: str = "", **fields: object) -> None:
        fields_to_save = self.workspace.move_to(state, reason=reason)
        for name, value in fields.items():
            setattr(self.workspace, name, value)
        self.workspace.save(update_fields=[*fields_to_save, *fields])


def workspace_execute(kind: str, operation_id: int, *, delete_data: bool = False) -> None:
    """Run operation ``operation_id`` of ``kind``. Transient host errors propagate (the task
    retries them); every other failure ends the Operation with a message for the member."""
    op = Operation.objects.filter(pk=operation_id, target_type="workspace").first()
    workspace = Workspace.objects.with_related().filter(pk=op.target_id).first() if op else None
    if op is None or workspace is None:
        if op is not None:
            operation_fail(op.pk, error="The workspace no longer exists.")
        return
    with workspace_lock(workspace.pk) as mine:
        if not mine:
            if op.state in Operation.CLAIMABLE_STATES:
                raise WorkspaceLocked(f"{workspace} is busy with another job")
            return  # a duplicate delivery while the first one still works: nothing to do
        if not _claim(op):
            return
        run = Run(op=op, workspace=workspace, delete_data=delete_data)
        try:
            STEPS[kind](run)
        except HostOpsTransient:
            raise
        except (HostOpsError, WorkspaceError, ValueError) as exc:
            workspace_fail(run, exc)


def workspace_give_up(operation_id: int, exc: Exception) -> None:
    """The last retry of a transient error failed too: end the operation as failed."""
    op = Operation.objects.filter(pk=operation_id, target_type="workspace").first()
    workspace = Workspace.objects.with_related().filter(pk=op.target_id).first() if op else None
    if op is not None and workspace is not None:
        workspace_fail(Run(op=op, workspace=workspace), exc)
    elif op is not None:
        operation_fail(op.pk, error=str(exc))


def _claim(op: Operation) -> bool:
    """Claim the row; with the lock held, a row already "running" lost its worker (killed
    mid-job), so this delivery takes it over and finishes the job."""
    if operation_claim(op.pk):
        return True
    op.refresh_from_db(fields=["state"])
    if op.state == Operation.State.RUNNING:
        operation_progress(op.pk, log="The previous worker stopped mid-job; resuming.")
        return True
    return False


def workspace_fail(run: Run, exc: Exception) -> None:
    """End the operation with words for the member; the workspace stays as it was unless the
    container had already been touched (then it is in error, with the reason)."""
    message = explain(exc, run.workspace)
    workspace = run.workspace
    workspace.refresh_from_db(fields=["state"])
    if run.op.kind in ("create", "start", "restart", "rebuild"):
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


# --- steps --------------------------------------------------------------------------------


def _preflight(run: Run) -> None:
    """Checks before touching the container: host size, admission, image."""
    workspace, host = run.workspace, run.workspace.host
    run.step(5, "Checking the server", f"Checking server {host.name}")
    if host.memory_bytes is None or host.cpu_count is None:
        info = docker.engine_info(docker_url=run.docker_url)
        host.cpu_count, host.memory_bytes = info.cpus, info.memory_bytes
        host.save(update_fields=["cpu_count", "memory_bytes"])
        run.note(
            f"{host.name}: {info.cpus} CPUs, {format_size(info.memory_bytes)} memory, Docker {info.server_version}"
        )
    if workspace.state not in Workspace.HOLDING_MEMORY:
        admission_check(workspace=workspace)
    run.note(f"Memory guaranteed to you: {format_size(workspace.owner.quota.mem_guarantee)}")
    run.step(12, "Checking the image", f"Checking image {workspace.image}")
    image = docker.image_inspect(workspace.image, docker_url=run.docker_url)
    run.note(f"{image.id[:19]} ({format_size(image.size)})")


def _spec(run: Run) -> ContainerSpec:
    workspace = run.workspace
    keys = list(SSHKey.objects.filter(user=workspace.owner).values_list("public_key", flat=True))
    return build_spec(
        workspace=workspace,
        quota=workspace.owner.quota,
        gpu_ids=(),  # GPU grants arrive with the booking calendar (gpus app); none before
        authorized_keys=keys,
        desktop_password=desktop_password(workspace),
        config=SpecConfig.from_settings(),
    )


def _launch(run: Run) -> None:
    """Create (or keep) the container, start it and wait for sshd and Jupyter to answer."""
    spec = _spec(run)
    run.set_state(Workspace.State.CREATING)
    run.step(20, "Preparing your folders", "Preparing home and scratch folders")
    prepare_folders(spec=spec, uid=run.workspace.owner.uid)
    run.step(25, "Preparing your network", f"Preparing network {spec.network} (yours alone)")
    network = ensure_member_network(run.workspace)
    run.note(f"{network.name}: {network.subnet}")
    run.step(30, "Creating the container", f"Creating {spec.name} (SSH port {run.workspace.ssh_port})")
    run.touched = True
    state = docker.ensure_container(spec, docker_url=run.docker_url, start=True, on_event=run.note)
    run.workspace.container_id = state.id
    run.workspace.save(update_fields=["container_id"])
    _wait_ready(run)


def _wait_ready(run: Run) -> None:
    run.step(55, "Waiting for SSH and Jupyter", "Waiting for sshd and Jupyter to answer")
    name = run.workspace.container_name
    state = docker.wait_healthy(
        name, docker_url=run.docker_url, timeout=settings.WORKSPACE_START_TIMEOUT, on_event=run.note
    )
    now = timezone.now()
    run.set_state(
        Workspace.State.RUNNING,
        container_id=state.id,
        started_at=state.started_at or now,
        observed_at=now,
        last_activity_at=now,
        idle_warned_at=None,
    )
    operation_succeed(run.op.pk, message="Running: SSH and Jupyter answer")


def _bring_up(run: Run) -> None:
    _preflight(run)
    _launch(run)


def _restart(run: Run) -> None:
    """Stop, then start as a start does: a changed spec (new SSH keys, a new quota) is
    applied by recreating the container, an unchanged one is started again as it is."""
    if run.workspace.state == Workspace.State.RUNNING:
        run.step(3, "Stopping", f"Stopping {run.workspace.container_name}")
        run.touched = True
        with contextlib.suppress(NotFound):
            docker.stop(run.workspace.container_name, docker_url=run.docker_url, timeout=STOP_TIMEOUT)
    _bring_up(run)


def _rebuild(run: Run) -> None:
    """The current image, a fresh container; checks come first so a refusal changes nothing."""
    run.workspace.image = settings.WORKSPACE_IMAGE
    _preflight(run)
    run.workspace.save(update_fields=["image"])
    run.step(
        16,
        "Removing the old container",
        f"Removing {run.workspace.container_name} (home, scratch and SSH host keys stay)",
    )
    run.touched = True
    docker.remove(run.workspace.container_name, docker_url=run.docker_url, force=True, missing_ok=True)
    _launch(run)


def _stop(run: Run) -> None:
    run.step(20, "Stopping", f"Stopping {run.workspace.container_name}")
    try:
        docker.stop(run.workspace.container_name, docker_url=run.docker_url, timeout=STOP_TIMEOUT)
    except NotFound:
        run.set_state(Workspace.State.ABSENT, container_id="", started_at=None, cpu_percent=None, mem_usage=None)
        operation_succeed(run.op.pk, message="There was no container to stop")
        return
    run.set_state(Workspace.State.STOPPED, started_at=None, cpu_percent=None, mem_usage=None, idle_warned_at=None)
    operation_succeed(run.op.pk, message="Stopped")


def _remove(run: Run) -> None:
    workspace = run.workspace
    run.set_state(Workspace.State.REMOVING)
    run.step(20, "Removing the container", f"Removing {workspace.container_name}")
    docker.remove(workspace.container_name, docker_url=run.docker_url, force=True, missing_ok=True)
    if release_member_network(workspace):
        run.note("Removed the network, which no other workspace of theirs used")
    if run.delete_data:
        run.step(50, "Deleting the member's files", "Deleting home and scratch folders")
        for path in delete_member_data(spec=_spec(run)):
            run.note(f"deleted {path}")
    run.set_state(Workspace.State.ABSENT, container_id="")
    workspace.delete()
    operation_succeed(run.op.pk, message="Removed" + (" with its data" if run.delete_data else "; the data is kept"))


STEPS: dict[str, Callable[[Run], None]] = {
    "create": _bring_up,
    "start": _bring_up,
    "restart": _restart,
    "rebuild": _rebuild,
    "stop": _stop,
    "remove": _remove,
}
