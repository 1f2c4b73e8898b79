"""What running workspaces are doing: CPU and memory figures for the pages (so views never
call Docker), and the idle policy.

Activity, as the idle policy counts it: an established TCP connection to the workspace's
sshd (SSH, X2Go, VS Code Remote), Jupyter, code-server or xrdp (Guacamole's desktop), from
anywhere but the container itself (its own health check connects over loopback). It is read
from /proc/net/tcp{,6} inside the container, so the image needs no extra tool. A job computing
with nobody connected counts too: CPU use (busy_computing, here), and GPU use, which the gpus
app's minute sample records by calling records.workspace_mark_active for a workspace with a
process on a busy GPU (gpus/sampling.py). That needs the host's GPUs read through NVML;
where they come from configuration, a job that only waits on the GPU counts as idle.

The policy itself (hours until the warning, minutes from the warning to the stop) is the
SitePolicy row admins set on the Policies page, read once per check.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from hostops import docker
from hostops.errors import HostOpsError
from hostops.types import ContainerStats
from portal.models import Host, Notification, SitePolicy
from portal.services import slack_post_later
from workspaces.admission import WorkspaceError
from workspaces.models import Workspace
from workspaces.records import workspace_idle_warned, workspace_mark_active
from workspaces.services import workspace_stop

logger = logging.getLogger(__name__)

ACTIVITY_PORTS = frozenset({22, 8888, 8080, 3389})  # sshd, Jupyter, code-server, xrdp
_ESTABLISHED = "01"
_LOOPBACK = ("0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


def collect_stats(host: Host, *, now: datetime | None = None) -> int:
    """Store CPU and memory use of the host's running workspaces and hand the same reading to
    WORKSPACE_STATS_RECEIVERS (the monitoring app's series); returns how many were read. One
    stats call per container, in parallel, none waited for past WORKSPACE_STATS_DEADLINE: a
    container that is slow to answer is left out of this minute, never holds up the rest."""
    running = list(Workspace.objects.filter(host=host, state=Workspace.State.RUNNING).select_related("owner"))
    if not running:
        return 0
    found = docker.stats_many(
        [workspace.container_name for workspace in running],
        docker_url=host.docker_url,
        timeout=settings.WORKSPACE_STATS_TIMEOUT,
        deadline=settings.WORKSPACE_STATS_DEADLINE,
    )
    at = now or timezone.now()
    readings = {ws.pk: found[ws.container_name] for ws in running if ws.container_name in found}
    updated = []
    for workspace in running:
        if workspace.pk in readings:
            sample = readings[workspace.pk]
            workspace.cpu_percent, workspace.mem_usage, workspace.stats_at = sample.cpu_percent, sample.mem_used, at
            updated.append(workspace)
    Workspace.objects.bulk_update(updated, ["cpu_percent", "mem_usage", "stats_at"])
    _hand_on(readings, at)
    return len(updated)


def _hand_on(readings: dict[int, ContainerStats], at: datetime) -> None:
    """Give the reading to each receiver named in settings; one that fails is logged, and the
    idle policy after it still runs."""
    for path in settings.WORKSPACE_STATS_RECEIVERS:
        try:
            import_string(path)(readings=readings, at=at)
        except Exception:
            logger.exception("workspace stats receiver %s failed", path)


def has_sessions(proc_net_tcp: str) -> bool:
    """Whether /proc/net/tcp(6) text shows an established connection from outside to one of
    ACTIVITY_PORTS."""
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != _ESTABLISHED or ":" not in fields[1]:
            continue
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_address = fields[2].rsplit(":", 1)[0]
        if local_port in ACTIVITY_PORTS and remote_address not in _LOOPBACK:
            return True
    return False


def busy_computing(workspace: Workspace) -> bool:
    """A job running with nobody connected (training overnight) is use, not idleness: the
    last CPU sample (collect_stats, every minute) above WORKSPACE_BUSY_CPU_PERCENT counts.
    GPU use is not read here: the GPU samples mark the workspace active themselves."""
    return workspace.stats_fresh and (workspace.cpu_percent or 0.0) >= settings.WORKSPACE_BUSY_CPU_PERCENT


def workspace_in_use(workspace: Workspace) -> bool | None:
    """True/False from the container's connection table; None when it can't be read."""
    try:
        code, output = docker.exec_run(
            workspace.container_name,
            ["cat", "/proc/net/tcp", "/proc/net/tcp6"],
            docker_url=workspace.host.docker_url,
            timeout=10,
        )
    except HostOpsError as exc:
        logger.info("activity of %s unknown: %s", workspace, exc)
        return None
    return has_sessions(output) if code == 0 else None


def idle_check_host(host: Host, *, now: datetime | None = None, policy: SitePolicy | None = None) -> list[str]:
    """Apply the idle policy to the host's running workspaces; returns what it did."""
    policy = policy or SitePolicy.current()
    if policy.idle_after is None:
        return []
    now = now or timezone.now()
    done = []
    running = Workspace.objects.filter(
        host=host, state=Workspace.State.RUNNING, desired_state=Workspace.Desired.RUNNING
    ).select_related("owner", "host")
    for workspace in running:
        in_use = busy_computing(workspace) or workspace_in_use(workspace)
        if in_use:
            workspace_mark_active(workspace, now=now)
        elif in_use is False:
            done += idle_step(workspace, now=now, policy=policy)
    return done


def idle_step(workspace: Workspace, *, now: datetime, policy: SitePolicy | None = None) -> list[str]:
    """Warn a workspace idle for the policy's hours; stop it the policy's grace after the warning."""
    policy = policy or SitePolicy.current()
    last = workspace.last_activity_at or workspace.started_at or workspace.created
    if policy.idle_after is None or now - last < policy.idle_after:
        return []
    if workspace.idle_warned_at is None:
        idle_warn(workspace, now=now, policy=policy)
        return [f"warned {workspace}"]
    if now - workspace.idle_warned_at < policy.idle_grace:
        return []
    try:
        workspace_stop(workspace=workspace, actor=None, reason=f"idle for {policy.idle_stop_hours} h")
    except WorkspaceError:
        return []  # busy: the next pass decides again
    return [f"stopped {workspace}"]


@transaction.atomic
def idle_warn(workspace: Workspace, *, now: datetime, policy: SitePolicy) -> None:
    """Tell the member (in the portal and on Slack) that the workspace stops soon."""
    stop_at = timezone.localtime(now + policy.idle_grace).strftime("%H:%M")
    hours = policy.idle_stop_hours
    title = f"Your workspace {workspace} stops at {stop_at}"
    body = (
        f"Nobody has used it over SSH, the desktop, Jupyter or code-server for {hours} hour{pluralize(hours)}, "
        "and its memory is reserved for you alone. Click “Keep running” on the dashboard if you still need it."
    )
    workspace_idle_warned(workspace, now=now, stop_at=stop_at)
    Notification.objects.create(
        user=workspace.owner, level=Notification.Level.WARNING, title=title, body=body, url=reverse("dashboard")
    )
    text = f"{workspace.owner.username}: {title}. {body}"
    slack_post_later(text)
