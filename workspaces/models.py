"""Members' containers: the Workspace row (desired vs observed state, its SSH port, its web
address) and the labelled containers found on a host with no row (orphans)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Cast
from django.utils import timezone

from portal.models import Host, Operation, User

WORKSPACE_NAME_RE = re.compile(r"^[a-z0-9]{1,20}$")
# DNS labels: "jupyter-" + slug must stay within 63 characters.
SLUG_MAX = 55
STATS_FRESH_FOR = timedelta(minutes=5)
_SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class InvalidTransition(Exception):
    """A state change the workspace state machine does not allow."""


def workspace_slug(username: str, name: str = "") -> str:
    """The workspace's part of its web addresses: ``alice``, ``alice-gpu``, ``j-doe``.

    Hostnames can't hold '_', so it becomes '-' (the same mapping as the gate's host index,
    service_hosts and the gate's index). Two workspaces can map to the same slug (member 'a_b' and
    'a-b', or alice's workspace 'gpu' and member 'alice-gpu'): the unique constraint on
    Workspace.slug refuses the second, so two members never share an address. A slug that is
    not a valid DNS label (a username starting or ending with '_') raises ValueError.
    """
    base = f"{username}-{name}" if name else username
    slug = base.replace("_", "-")
    if len(slug) > SLUG_MAX or not _SLUG_RE.fullmatch(slug):
        raise ValueError(f"{base!r} can't be used in a web address (it must start and end with a letter or digit)")
    return slug


def service_hosts(slug: str, domain: str) -> dict[str, str]:
    """A workspace's web addresses, {host: service}: the one naming used by the Traefik
    labels, the links on the card and the gate's host index. FileBrowser runs in the member's
    own workspace, as the member, so the kernel's permissions (homes are 0750, the member's)
    keep everyone else's files out of it whatever links or symlinks a home holds."""
    return {f"{slug}-code.{domain}": "code", f"jupyter-{slug}.{domain}": "jupyter", f"files-{slug}.{domain}": "files"}


def container_name(username: str, name: str = "") -> str:
    """Deterministic container name, so a retried create finds its own earlier work."""
    return f"ws-{username}-{name}" if name else f"ws-{username}"


def member_network(username: str, prefix: str) -> str:
    """The Docker network all of a member's workspaces on a host share, and no one else's."""
    return f"{prefix}-{username}"


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def visible_to(self, user: User) -> WorkspaceQuerySet:
        """Admins see every workspace; a member sees only their own."""
        if user.is_staff:
            return self.all()
        return self.filter(owner=user)

    def with_related(self) -> WorkspaceQuerySet:
        return self.select_related("owner", "owner__quota", "host")

    def for_cards(self) -> list[Workspace]:
        """The rows with owner, host and their latest Operation (``last_op``): two queries,
        however many workspaces."""
        latest = Operation.objects.filter(
            target_type="workspace", target_id=Cast(models.OuterRef("pk"), models.CharField())
        ).order_by("-created", "-pk")
        rows = list(self.with_related().annotate(last_op_pk=models.Subquery(latest.values("pk")[:1])))
        operations = Operation.objects.in_bulk([row.last_op_pk for row in rows if row.last_op_pk])
        result: list[Workspace] = []
        for row in rows:
            row.last_op = operations.get(row.last_op_pk)
            result.append(row)
        return result


class Workspace(models.Model):
    """One member's VM-like container. ``desired_state`` is what the member asked for,
    ``state`` what was last observed or done; tasks and the reconciler move ``state`` only
    along TRANSITIONS."""

    class State(models.TextChoices):
        ABSENT = "absent", "Not created"
        CREATING = "creating", "Starting"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"
        REMOVING = "removing", "Removing"
        ERROR = "error", "Needs attention"

    class Desired(models.TextChoices):
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"
        ABSENT = "absent", "Removed"

    # The one place the state machine lives. A container can be found (or lost) behind the
    # portal's back, so observed states may follow from almost anywhere; what is never
    # allowed is coming back from "removing" other than to absent (or an error).
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        State.ABSENT: frozenset({State.CREATING, State.RUNNING, State.STOPPED, State.REMOVING, State.ERROR}),
        State.CREATING: frozenset({State.RUNNING, State.STOPPED, State.ABSENT, State.REMOVING, State.ERROR}),
        State.RUNNING: frozenset({State.CREATING, State.STOPPED, State.ABSENT, State.REMOVING, State.ERROR}),
        State.STOPPED: frozenset({State.CREATING, State.RUNNING, State.ABSENT, State.REMOVING, State.ERROR}),
        State.REMOVING: frozenset({State.ABSENT, State.ERROR}),
        State.ERROR: frozenset({State.CREATING, State.RUNNING, State.STOPPED, State.ABSENT, State.REMOVING}),
    }
    # Workspaces holding their memory guarantee on the host (admission control counts these).
    HOLDING_MEMORY = (State.CREATING, State.RUNNING)

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="workspaces")
    name = models.CharField(
        max_length=20,
        blank=True,
        validators=[RegexValidator(r"^[a-z0-9]{0,20}$", "Use up to 20 lowercase letters and digits.")],
        help_text='Empty for the member\'s default workspace; extra ones are named, like "gpu2".',
    )
    slug = models.CharField(max_length=SLUG_MAX, unique=True, editable=False)
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="workspaces")
    image = models.CharField(max_length=255)
    desired_state = models.CharField(max_length=8, choices=Desired.choices, default=Desired.STOPPED)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ABSENT)
    state_reason = models.TextField(blank=True)
    ssh_port = models.PositiveIntegerField(unique=True)
    container_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    idle_warned_at = models.DateTimeField(null=True, blank=True)
    # Written by the periodic stats task, so pages never call Docker.
    cpu_percent = models.FloatField(null=True, blank=True)
    mem_usage = models.PositiveBigIntegerField(null=True, blank=True)
    stats_at = models.DateTimeField(null=True, blank=True)
    # GPUs (device ids: UUIDs, or indexes) the workspace may hold, set by the GPU booking
    # (gpus app) through workspaces.services.workspace_grant_gpus; the container carries
    # ``applied_gpus``, the grant of its last (re)creation.
    granted_gpus = models.JSONField(default=list, blank=True)
    applied_gpus = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(default=timezone.now)

    objects = WorkspaceQuerySet.as_manager()
    last_op: Operation | None = None  # set by WorkspaceQuerySet.for_cards

    class Meta:
        ordering = ["owner__username", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="workspace_unique_owner_name"),
            models.CheckConstraint(
                condition=models.Q(ssh_port__gte=1024, ssh_port__lte=65535), name="workspace_ssh_port_range"
            ),
        ]

    def __str__(self) -> str:
        return self.container_name

    @property
    def container_name(self) -> str:
        return container_name(self.owner.username, self.name)

    def _service_url(self, service: str) -> str:
        """Always https (the proxy terminates TLS for every member host); on the portal's
        port when the proxy listens on one other than 443, as the portal's URL says."""
        hosts = service_hosts(self.slug, settings.PORTAL_DOMAIN)
        portal = urlsplit(settings.PORTAL_URL)
        port = f":{portal.port}" if portal.scheme == "https" and portal.port not in (None, 443) else ""
        return next(f"https://{host}{port}" for host, kind in hosts.items() if kind == service)

    @property
    def code_url(self) -> str:
        return self._service_url("code")

    @property
    def jupyter_url(self) -> str:
        return self._service_url("jupyter")

    @property
    def files_url(self) -> str:
        return self._service_url("files")

    @property
    def ssh_host(self) -> str:
        """Where the owner SSHes to: the workspace's server's address, or SSH_HOST."""
        return self.host.ssh_address or str(settings.SSH_HOST)

    @property
    def op_to_show(self) -> Operation | None:
        """The latest operation while it runs, or when it failed (needs for_cards)."""
        if self.last_op is not None and (self.busy or self.last_op.state == Operation.State.FAILED):
            return self.last_op
        return None

    @property
    def is_running(self) -> bool:
        return self.state == self.State.RUNNING

    @property
    def busy(self) -> bool:
        """An operation is under way (needs ``last_op`` from for_cards)."""
        return self.last_op is not None and not self.last_op.is_final

    @property
    def stats_fresh(self) -> bool:
        """Whether the CPU and memory figures are recent enough to show and to judge idleness
        by: measured lately, and since the container (re)started, not before a restart."""
        measured = self.stats_at
        if not self.is_running or measured is None:
            return False
        return timezone.now() - measured < STATS_FRESH_FOR and (self.started_at is None or measured >= self.started_at)

    def can_move_to(self, state: str) -> bool:
        return state == self.state or state in self.TRANSITIONS[self.state]

    def move_to(self, state: str, *, reason: str = "") -> list[str]:
        """Change ``state`` (not saved); returns the fields to save. Raises InvalidTransition."""
        if not self.can_move_to(state):
            raise InvalidTransition(f"workspace {self.slug or self.pk}: {self.state} -> {state} is not allowed")
        self.state = state
        self.state_reason = reason
        return ["state", "state_reason"]


class OrphanContainer(models.Model):
    """A container labelled portal.managed on a host with no workspace row. Admins are told
    once when it is first seen; the row goes when the container does."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="orphan_containers")
    container_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    labels = models.JSONField(default=dict)
    status = models.CharField(max_length=32, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["host__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["host", "container_id"], name="orphan_unique_host_container"),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.host}"
