"""The portal's core: members and their Linux identity, SSH keys, quotas, hosts, the audit
log, notifications and the generic Operation that every long job reports progress through."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from portal.identity import validate_linux_username
from portal.validators import validate_docker_url, validate_ssh_address


class User(AbstractUser):
    """A team member. ``username`` is also their Linux login inside the workspace."""

    class Status(models.TextChoices):
        INVITED = "invited", "Invited"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    username = models.CharField(
        max_length=32,
        unique=True,
        validators=[validate_linux_username],
        help_text="Linux login: lowercase letters, digits, _ and -, starting with a letter or _.",
    )
    email = models.EmailField(unique=True)
    # The username as a DNS label ("_" -> "-") in the member's service hosts; unique so that
    # "a_b" and "a-b" can never share alice-code.<domain>.
    dns_label = models.CharField(max_length=32, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INVITED)
    uid = models.PositiveIntegerField(unique=True, editable=False)
    can_sudo = models.BooleanField("sudo inside the workspace", default=False)
    can_docker = models.BooleanField("Docker inside the workspace", default=False)
    # Bumped to end every session of the member (suspension, "log out everywhere").
    session_version = models.PositiveIntegerField(default=0)
    invited_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The GPU server the member works on: their new workspaces, the making of their folders and
    # their GPU bookings go there (workspaces/placement.py). Empty: the local server.
    host = models.ForeignKey(
        "Host", null=True, blank=True, on_delete=models.PROTECT, related_name="members", verbose_name="server"
    )

    objects: ClassVar[UserManager[User]] = UserManager()  # type: ignore[assignment]

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username

    @property
    def gid(self) -> int:
        """Every member has a private group with the same number as their UID."""
        return self.uid

    def placed_host(self) -> Host:
        """The member's server: ``host``, or the local one when none was chosen."""
        return self.host if self.host is not None else Host.local()

    def get_session_auth_hash(self) -> str:
        # Sessions carry this hash; changing session_version invalidates all of them.
        return f"{super().get_session_auth_hash()}:{self.session_version}"

    def clean(self) -> None:
        super().clean()
        label = self.username.replace("_", "-")
        if User.objects.exclude(pk=self.pk).filter(dns_label=label).exists():
            raise ValidationError(
                {"username": f"'{self.username}' would share web addresses with an existing member; pick another."}
            )

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.dns_label = self.username.replace("_", "-")
        if self.uid is None:
            self.uid = IdCounter.allocate("uid")
        super().save(*args, **kwargs)


class IdCounter(models.Model):
    """Monotonic counters (UIDs). Never decremented, so a deleted member's UID is never reused
    and files they left behind can't become someone else's."""

    name = models.CharField(max_length=32, primary_key=True)
    next_value = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.name}: next {self.next_value}"

    @classmethod
    def allocate(cls, name: str) -> int:
        from django.db import transaction

        with transaction.atomic():
            counter, _ = cls.objects.select_for_update().get_or_create(
                name=name, defaults={"next_value": settings.UID_START}
            )
            value = counter.next_value
            counter.next_value = value + 1
            counter.save(update_fields=["next_value"])
        return value


class SSHKey(models.Model):
    """A member's public key, installed into their workspace's authorized_keys."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="ssh_keys")
    name = models.CharField(max_length=100)
    key_type = models.CharField(max_length=40)
    bits = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=100, unique=True)  # SHA256:..., one owner per key
    public_key = models.TextField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"


_CPUSET_RE = r"^$|^\d+(-\d+)?(,\d+(-\d+)?)*$"


class Quota(models.Model):
    """Resource limits of one member. Sizes are bytes; forms speak "32G"."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="quota")
    mem_guarantee = models.PositiveBigIntegerField("memory guaranteed")
    mem_limit = models.PositiveBigIntegerField("memory limit")
    swap = models.PositiveBigIntegerField("swap")
    cpuset = models.CharField(
        "CPU set",
        max_length=200,
        blank=True,
        validators=[RegexValidator(_CPUSET_RE, "Use CPU numbers and ranges like 0-7 or 0-3,8-11.")],
        help_text="Empty means every CPU of the host.",
    )
    max_gpus = models.PositiveSmallIntegerField("max GPUs")
    max_workspaces = models.PositiveSmallIntegerField(
        "max workspaces", default=1, help_text="The default workspace counts; more allows extra named ones."
    )
    storage_soft = models.PositiveBigIntegerField("storage soft limit")
    storage_hard = models.PositiveBigIntegerField("storage hard limit", null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(mem_guarantee__lte=models.F("mem_limit")),
                name="quota_guarantee_within_limit",
            ),
        ]

    def __str__(self) -> str:
        return f"quota of {self.user}"

    @classmethod
    def team_defaults(cls) -> dict[str, Any]:
        return dict(settings.QUOTA_DEFAULTS)


class Host(models.Model):
    """A GPU server with a Docker engine and a Celery queue of its own."""

    class State(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        ONLINE = "online", "Online"
        UNREACHABLE = "unreachable", "Unreachable"

    name = models.CharField(max_length=63, unique=True, validators=[RegexValidator(r"^[a-z][a-z0-9-]{0,62}$")])
    docker_url = models.CharField(
        max_length=255,
        default="unix:///var/run/docker.sock",
        validators=[validate_docker_url],
        help_text="unix:///path/of/docker.sock, tcp://host:port or ssh://[user@]host[:port].",
    )
    queue = models.CharField(max_length=100, unique=True)
    # Each server publishes its members' SSH ports on its own address; the portal's own
    # (SSH_HOST) fits the server the portal runs on.
    ssh_address = models.CharField(
        "SSH address",
        max_length=253,
        blank=True,
        validators=[validate_ssh_address],
        help_text="Where members SSH to for workspaces on this server (a DNS name or IP). Empty: SSH_HOST.",
    )
    cpu_count = models.PositiveIntegerField(null=True, blank=True)
    memory_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.UNKNOWN)
    state_detail = models.TextField(blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def local(cls) -> Host:
        """The server the portal runs on (created by a migration; recreated if deleted)."""
        host, _ = cls.objects.get_or_create(name="local", defaults={"queue": "host.local"})
        return host


class AuditEvent(models.Model):
    """Who did what to which target, from where; refusals of security-relevant requests too."""

    class Outcome(models.TextChoices):
        OK = "ok", "Done"
        REFUSED = "refused", "Refused"

    created = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=254, blank=True)  # kept when the actor is deleted
    action = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.OK)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target_label}"


class Notification(models.Model):
    """A message for one member, shown in the portal (and sent to Slack where configured)."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.title


class AccessRequest(models.Model):
    """Someone from the right Google domain without an invitation asked to be let in."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.email


class OperationQuerySet(models.QuerySet["Operation"]):
    def for_target(self, target: models.Model) -> OperationQuerySet:
        """The operations on one model instance (any app's)."""
        return self.filter(target_type=target._meta.model_name, target_id=str(target.pk))

    def for_targets(self, model: type[models.Model], ids: Iterable[Any] | None = None) -> OperationQuerySet:
        """The operations on instances of ``model`` (those with ``ids``, if given)."""
        rows = self.filter(target_type=model._meta.model_name)
        return rows if ids is None else rows.filter(target_id__in=[str(pk) for pk in ids])

    def in_progress(self) -> OperationQuerySet:
        return self.exclude(state__in=Operation.FINAL_STATES)


class Operation(models.Model):
    """Progress of one user-visible long job. The UI reads only this row."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    FINAL_STATES = (State.SUCCEEDED, State.FAILED)
    CLAIMABLE_STATES = (State.QUEUED, State.RETRYING)
    LOG_LIMIT = 16_000  # characters of log tail kept

    kind = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    percent = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=300, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The owner may watch their own jobs even when an admin started them.
    owner = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="operations")
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    # The task's keyword arguments, so a job whose worker died can be sent again.
    params = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True, db_index=True)

    objects = OperationQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["target_type", "target_id", "-created"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.target_label} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


class WorkerHeartbeat(models.Model):
    """Last time a worker of a queue ran the heartbeat task (written by the worker itself)."""

    queue = models.CharField(max_length=100, primary_key=True)
    worker = models.CharField(max_length=255, blank=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.queue} @ {self.seen_at:%H:%M:%S}"


IDLE_HOURS_MAX = 720  # 30 days; a longer limit is the same as none
IDLE_GRACE_MINUTES_MIN = 5  # time enough to read the warning and click "Keep running"
IDLE_GRACE_MINUTES_MAX = 1440


def initial_idle_hours() -> int:
    """WORKSPACE_IDLE_HOURS seeds the policy row (migrations name this function); from then on
    admins set the value on the Policies page."""
    return min(settings.WORKSPACE_IDLE_HOURS, IDLE_HOURS_MAX)


class SitePolicy(models.Model):
    """Team-wide policies admins set on the Policies page. A single row (pk 1): read it with
    ``SitePolicy.current()``."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    idle_stop_hours = models.PositiveSmallIntegerField(
        "stop idle workspaces after (hours)",
        default=initial_idle_hours,
        validators=[MaxValueValidator(IDLE_HOURS_MAX)],
        help_text="0 = never stop idle workspaces.",
    )
    idle_grace_minutes = models.PositiveSmallIntegerField(
        "warning ahead of the stop (minutes)",
        default=60,
        validators=[MinValueValidator(IDLE_GRACE_MINUTES_MIN), MaxValueValidator(IDLE_GRACE_MINUTES_MAX)],
    )
    updated = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = "site policy"
        verbose_name_plural = "site policies"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="sitepolicy_single_row")]

    def __str__(self) -> str:
        return "site policy"

    @classmethod
    def current(cls) -> SitePolicy:
        """The policy row, created with the initial values from the settings if missing."""
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy

    @property
    def idle_after(self) -> timedelta | None:
        """How long without a session makes a running workspace idle; None when never."""
        return timedelta(hours=self.idle_stop_hours) if self.idle_stop_hours else None

    @property
    def idle_grace(self) -> timedelta:
        """Between the idle warning and the stop."""
        return timedelta(minutes=self.idle_grace_minutes)
