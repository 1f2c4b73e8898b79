"""The steps of each workspace operation, run by the worker against the host's Docker engine
through hostops. Each writes readable progress into its Operation and leaves the final state
on the Workspace row; every host step is idempotent (a deterministic container name,
ensure_container by spec hash), so a retry or a takeover finds its own earlier work.
Which kind runs which steps is in workspaces/kinds.py."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from hostops import docker
from hostops.errors import NotFound
from hostops.types import ContainerSpec
from portal.env import format_size
from portal.models import Operation, SSHKey
from portal.operations import operation_progress, operation_succeed
from workspaces.admission import admission_check
from workspaces.desktop import desktop_password
from workspaces.folders import delete_member_data, prepare_folders
from workspaces.models import Workspace
from workspaces.networks import ensure_member_network, release_member_network
from workspaces.records import workspace_gpus_granted, workspace_removed
from workspaces.spec import SpecConfig, build_spec, host_keys_volume

STOP_TIMEOUT = 30  # seconds sshd, Jupyter and the desktop get to exit before SIGKILL


@dataclass
class Run:
    """One execution of an operation: its row, its workspace, and progress reporting."""

    op: Operation
    workspace: Workspace
    touched: bool = field(default=False)  # whether a host step changed the container

    @property
    def delete_data(self) -> bool:
        """A removal that deletes the member's files too (an admin's choice, on the row)."""
        return bool(self.op.params.get("delete_data"))

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


def _current_grant(run: Run) -> None:
    """Ask the GPU booking (WORKSPACE_GPU_GRANTS, a function named in settings, so this app
    imports none) which GPUs the workspace may hold right now, so a workspace started during
    its owner's booking gets the GPU at once instead of at the next minute's restart."""
    if not settings.WORKSPACE_GPU_GRANTS:
        return
    gpu_ids = list(import_string(settings.WORKSPACE_GPU_GRANTS)(run.workspace))
    if gpu_ids != list(run.workspace.granted_gpus):
        workspace_gpus_granted(run.workspace, gpu_ids=gpu_ids, reason="GPU booking, read at start")


def _spec(run: Run) -> ContainerSpec:
    workspace = run.workspace
    _current_grant(run)
    keys = list(SSHKey.objects.filter(user=workspace.owner).values_list("public_key", flat=True))
    return build_spec(
        workspace=workspace,
        quota=workspace.owner.quota,
        gpu_ids=tuple(workspace.granted_gpus),  # set by the GPU booking (workspace_grant_gpus)
        authorized_keys=keys,
        desktop_password=desktop_password(workspace),
        config=SpecConfig.from_settings(),
    )


def _launch(run: Run) -> None:
    """Create (or keep) the container, start it and wait for sshd and Jupyter to answer."""
    spec = _spec(run)
    run.set_state(Workspace.State.CREATING)
    run.step(20, "Preparing your folders", "Preparing home and scratch folders")
    if settings.WORKSPACE_STORAGE_PREPARE:  # the storage app: subvolumes with their qgroup
        import_string(settings.WORKSPACE_STORAGE_PREPARE)(run.workspace.owner)
    prepare_folders(spec=spec, uid=run.workspace.owner.uid)
    run.step(25, "Preparing your network", f"Preparing network {spec.network} (yours alone)")
    network = ensure_member_network(run.workspace)
    run.note(f"{network.name}: {network.subnet}")
    run.step(30, "Creating the container", f"Creating {spec.name} (SSH port {run.workspace.ssh_port})")
    run.touched = True
    if spec.gpus.device_ids:
        run.note(f"GPUs granted by your booking: {', '.join(spec.gpus.device_ids)}")
    # The container carries these GPUs from its creation on, even if starting it fails.
    run.workspace.applied_gpus = list(spec.gpus.device_ids)
    run.workspace.save(update_fields=["applied_gpus"])
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


def bring_up(run: Run) -> None:
    _preflight(run)
    _launch(run)


def restart(run: Run) -> None:
    """Stop, then start as a start does: a changed spec (new SSH keys, a new quota) is
    applied by recreating the container, an unchanged one is started again as it is."""
    if run.workspace.state == Workspace.State.RUNNING:
        run.step(3, "Stopping", f"Stopping {run.workspace.container_name}")
        run.touched = True
        with contextlib.suppress(NotFound):
            docker.stop(run.workspace.container_name, docker_url=run.docker_url, timeout=STOP_TIMEOUT)
    bring_up(run)


def rebuild(run: Run) -> None:
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


def stop(run: Run) -> None:
    run.step(20, "Stopping", f"Stopping {run.workspace.container_name}")
    try:
        docker.stop(run.workspace.container_name, docker_url=run.docker_url, timeout=STOP_TIMEOUT)
    except NotFound:
        run.set_state(Workspace.State.ABSENT, container_id="", started_at=None, cpu_percent=None, mem_usage=None)
        operation_succeed(run.op.pk, message="There was no container to stop")
        return
    run.set_state(Workspace.State.STOPPED, started_at=None, cpu_percent=None, mem_usage=None, idle_warned_at=None)
    operation_succeed(run.op.pk, message="Stopped")


def remove(run: Run) -> None:
    workspace = run.workspace
    run.set_state(Workspace.State.REMOVING)
    run.step(20, "Removing the container", f"Removing {workspace.container_name}")
    docker.remove(workspace.container_name, docker_url=run.docker_url, force=True, missing_ok=True)
    if release_member_network(workspace):
        run.note("Removed the network, which no other workspace of theirs used")
    if run.delete_data:
        run.step(50, "Deleting the member's files", "Deleting home and scratch folders")
        spec = _spec(run)
        if settings.WORKSPACE_STORAGE_DELETE:
            deleted = import_string(settings.WORKSPACE_STORAGE_DELETE)(workspace.owner)
        else:
            deleted = delete_member_data(spec=spec)
        for path in deleted:
            run.note(f"deleted {path}")
        volume = host_keys_volume(spec.name)
        if docker.remove_volume(volume, docker_url=run.docker_url):
            run.note(f"deleted volume {volume} (the SSH host keys)")
    run.set_state(Workspace.State.ABSENT, container_id="")
    workspace_removed(workspace, reason="removed by its operation" + (" with its data" if run.delete_data else ""))
    operation_succeed(run.op.pk, message="Removed" + (" with its data" if run.delete_data else "; the data is kept"))
