"""The reconciler: compares what a host's Docker engine runs with the database, one list call
per host however many workspaces it has.

- observed state follows the containers (a container removed, stopped or started behind the
  portal's back is recorded as such), except while an operation is working on the workspace;
- a workspace that should run but doesn't gets a start operation (at most AUTO_START_LIMIT
  per AUTO_START_WINDOW, so a workspace that dies at once is not restarted forever);
- a labelled container with no workspace is an orphan: admins are told once, and it is
  listed on the workspaces page until it goes;
- an engine that doesn't answer marks its host unreachable and changes no workspace.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from hostops import docker
from hostops.errors import EngineUnreachable, HostOpsError, HostOpsTransient
from hostops.types import ContainerState
from portal.models import Host, Notification, Operation
from portal.services import notify_admins
from workspaces.admission import WorkspaceError
from workspaces.locks import operation_abandoned
from workspaces.models import OrphanContainer, Workspace
from workspaces.records import workspace_observed, workspace_removed
from workspaces.services import workspace_remove, workspace_resume, workspace_start

logger = logging.getLogger(__name__)

AUTO_START_LIMIT = 3
AUTO_START_WINDOW = timedelta(minutes=15)
_STARTABLE = (Workspace.State.STOPPED, Workspace.State.ABSENT, Workspace.State.CREATING)


@dataclass
class ReconcileReport:
    """What one pass over a host saw and did (for logs, tests and the benchmark)."""

    host: str
    reachable: bool = True
    containers: int = 0
    changed: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


def managed_containers(host: Host) -> list[ContainerState]:
    """The portal's containers on ``host``: ONE engine call."""
    return docker.list_by_label(["portal.managed=true", f"portal.host={host.name}"], docker_url=host.docker_url)


def reconcile_host(host: Host) -> ReconcileReport:
    """One pass over ``host``; see the module docstring."""
    report = ReconcileReport(host=host.name)
    try:
        containers = managed_containers(host)
    except (EngineUnreachable, HostOpsTransient) as exc:
        host_unreachable(host, str(exc))
        report.reachable = False
        return report
    host_online(host)
    report.containers = len(containers)
    now = timezone.now()
    by_workspace: dict[str, list[ContainerState]] = defaultdict(list)
    for found in containers:
        by_workspace[found.labels.get("portal.workspace", "")].append(found)
    workspaces = list(Workspace.objects.filter(host=host).select_related("owner", "host"))
    busy, recent_starts = _operations(workspaces)
    for workspace in workspaces:
        container = _take(by_workspace, workspace)
        if workspace.pk not in busy:
            _observe(workspace, container, report)
            _repair(workspace, container, recent_starts, report)
    Workspace.objects.filter(host=host).update(observed_at=now)
    record_orphans(host, [c for rest in by_workspace.values() for c in rest], report)
    return report


def _take(by_workspace: dict[str, list[ContainerState]], workspace: Workspace) -> ContainerState | None:
    """The workspace's container: labelled with its id AND named as it. Anything else left in
    ``by_workspace`` (a copy under another name, an unknown id) ends up an orphan."""
    candidates = by_workspace.get(str(workspace.pk), [])
    for container in candidates:
        if container.name == workspace.container_name:
            candidates.remove(container)
            return container
    return None


def host_unreachable(host: Host, detail: str) -> None:
    """Mark the host unreachable (admins are told once, when it goes)."""
    was = host.state
    host.state, host.state_detail = Host.State.UNREACHABLE, detail[:2000]
    host.save(update_fields=["state", "state_detail"])
    if was != Host.State.UNREACHABLE:
        notify_admins(
            title=f"Server {host.name} does not answer",
            body=f"Its Docker engine at {host.docker_url} is unreachable: {detail[:300]}. "
            "Workspaces there are left as they were until it answers again.",
            url="/workspaces/",
            level=Notification.Level.ERROR,
        )


def host_online(host: Host) -> None:
    """Mark the host online; re-read its CPUs and memory when it (re)appears."""
    fields = ["state", "state_detail", "last_seen"]
    if host.state != Host.State.ONLINE or host.memory_bytes is None or host.cpu_count is None:
        try:
            info = docker.engine_info(docker_url=host.docker_url)
        except HostOpsError as exc:
            logger.warning("reading engine info of %s: %s", host.name, exc)
        else:
            host.cpu_count, host.memory_bytes = info.cpus, info.memory_bytes
            fields += ["cpu_count", "memory_bytes"]
    host.state, host.state_detail, host.last_seen = Host.State.ONLINE, "", timezone.now()
    host.save(update_fields=fields)


def _operations(workspaces: list[Workspace]) -> tuple[set[int], Counter[int]]:
    """Workspaces an operation is working on now (an abandoned one is sent to a live worker
    again), and how many operations each had in the auto-start window. One query."""
    by_id = {str(w.pk): w for w in workspaces}
    since = timezone.now() - AUTO_START_WINDOW
    mine = Operation.objects.for_targets(Workspace, by_id)
    ops = mine.filter(created__gte=since) | mine.in_progress()
    busy: set[int] = set()
    recent: Counter[int] = Counter()
    for op in ops.only("pk", "kind", "state", "created", "updated", "target_id", "params"):
        workspace = by_id[op.target_id]
        if op.created >= since:
            recent[workspace.pk] += 1
        if op.state in Operation.FINAL_STATES:
            continue
        if operation_abandoned(op, workspace.pk):
            workspace_resume(op, workspace)  # its worker died: the next one finishes it
        busy.add(workspace.pk)
    return busy, recent


def observed_state(container: ContainerState | None) -> tuple[str, str]:
    """The Workspace state a container shows, with a reason when it is not a plain one."""
    if container is None:
        return Workspace.State.ABSENT, ""
    if container.status == "restarting":
        return Workspace.State.ERROR, "The container keeps stopping; Docker is restarting it. See the log or rebuild."
    if container.running and container.health == "unhealthy":
        return Workspace.State.ERROR, "The workspace runs, but SSH or Jupyter inside do not answer. Try Restart."
    if container.running:
        return Workspace.State.RUNNING, ""
    return Workspace.State.STOPPED, ""


def _observe(workspace: Workspace, container: ContainerState | None, report: ReconcileReport) -> None:
    state, reason = observed_state(container)
    if workspace.state == Workspace.State.REMOVING or (container and container.health == "starting"):
        return  # a removal to finish (see _repair), or not ready yet: nothing to record
    if state == workspace.state or not workspace.can_move_to(state):
        return
    report.changed.append(f"{workspace}: {workspace.state} -> {state}")
    workspace_observed(workspace, state=state, reason=reason, container_id=container.id if container else "")


def _repair(
    workspace: Workspace, container: ContainerState | None, recent: Counter[int], report: ReconcileReport
) -> None:
    """Finish removals and start what should run, at most AUTO_START_LIMIT times per window
    (an operation that fails every time must not be retried every minute)."""
    if workspace.desired_state == Workspace.Desired.ABSENT and container is None:
        workspace_removed(workspace, reason="its container is gone; the removal is complete")
        report.removed.append(str(workspace))
        return
    if recent[workspace.pk] >= AUTO_START_LIMIT:
        return
    if workspace.desired_state == Workspace.Desired.ABSENT:
        workspace_remove(workspace=workspace, actor=None)
        report.removed.append(str(workspace))
    elif workspace.desired_state == Workspace.Desired.RUNNING and workspace.state in _STARTABLE:
        why = "its container was missing" if container is None else "its container was stopped"
        try:
            workspace_start(workspace=workspace, actor=None, reason=f"reconciler: {why}")
        except WorkspaceError as exc:
            Workspace.objects.filter(pk=workspace.pk).update(state_reason=str(exc))
            return
        report.started.append(str(workspace))


def record_orphans(host: Host, containers: list[ContainerState], report: ReconcileReport) -> None:
    """Keep OrphanContainer rows equal to ``containers``; tell admins about new ones once."""
    now = timezone.now()
    seen = {c.id for c in containers}
    OrphanContainer.objects.filter(host=host).exclude(container_id__in=seen).delete()
    known = set(OrphanContainer.objects.filter(host=host).values_list("container_id", flat=True))
    OrphanContainer.objects.filter(host=host, container_id__in=seen).update(last_seen=now)
    for container in containers:
        report.orphans.append(container.name)
        if container.id not in known:
            _new_orphan(host, container, now)


@transaction.atomic
def _new_orphan(host: Host, container: ContainerState, now: datetime) -> None:
    _, created = OrphanContainer.objects.get_or_create(
        host=host,
        container_id=container.id,
        defaults={
            "name": container.name,
            "labels": container.labels,
            "status": container.status,
            "first_seen": now,
            "last_seen": now,
        },
    )
    if created:
        notify_admins(
            title=f"Unknown container {container.name} on {host.name}",
            body="It carries the portal's label but belongs to no workspace. Check what it holds, then remove it.",
            url="/workspaces/",
            level=Notification.Level.WARNING,
        )
