"""The host's figures over time: one compact table of (series, resolution, at, value) rows.

A series is a dotted name ("host.cpu.percent", "host.mem.used_bytes",
"host.psi.memory.some10", "disk.srv.used_bytes"). The worker writes one raw row per series a
minute (monitoring/collect.py); rollups (monitoring/rollup.py) average them into 5-minute and
hourly rows, each kept for its own time. A figure the host does not have is no row at all,
never a zero, so a chart shows a gap and not a drop. GPUs are not here: the gpus app samples
them (gpus.models.GpuSample) and the charts read its rows."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.models import User

SERIES_MAX_LENGTH = 64
# Lowercase words of letters, digits and "_", joined by dots, two to five of them.
SERIES_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9][a-z0-9_]*){1,4}")


def series_problem(name: str) -> str | None:
    """Why ``name`` can't be a series name, or None when it can."""
    if len(name) > SERIES_MAX_LENGTH:
        return f"a series name is at most {SERIES_MAX_LENGTH} characters, {name[:80]!r} is {len(name)}"
    if not SERIES_NAME.fullmatch(name):
        return f"{name[:80]!r} is not a series name (lowercase words joined by dots, like host.cpu.percent)"
    return None


def validate_series(name: str) -> None:
    problem = series_problem(name)
    if problem:
        raise ValidationError(problem)


class Resolution(models.IntegerChoices):
    """How much time one row stands for, in seconds (the value is the bucket's width)."""

    RAW = 60, "one a minute"
    FIVE_MINUTES = 300, "5-minute averages"
    HOUR = 3600, "hourly averages"

    @property
    def step(self) -> timedelta:
        return timedelta(seconds=self.value)

    @property
    def keep(self) -> timedelta:
        """How long rows of this resolution are kept (monitoring.rollup.samples_prune)."""
        return KEEP[self]


KEEP = {
    Resolution.RAW: timedelta(hours=48),
    Resolution.FIVE_MINUTES: timedelta(days=30),
    Resolution.HOUR: timedelta(days=365),
}


class Sample(models.Model):
    """One figure of one series: a minute's reading (raw), or the average of a bucket's raw
    readings (5 minutes, 1 hour) stamped with the bucket's start."""

    series = models.CharField(max_length=SERIES_MAX_LENGTH, validators=[validate_series])
    resolution = models.PositiveIntegerField(choices=Resolution.choices, default=Resolution.RAW)
    at = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        constraints = [
            # One row per series and bucket: a rollup run twice writes nothing the second time
            # (ON CONFLICT DO NOTHING). Its index also serves reading a series over a range.
            models.UniqueConstraint(fields=["series", "resolution", "at"], name="monitoring_sample_one_per_bucket"),
        ]
        # Rollups and pruning read one resolution over a range of time, across all series.
        indexes = [models.Index(fields=["resolution", "at"], name="monitoring_sample_res_at")]

    def __str__(self) -> str:
        return f"{self.series} at {self.at:%Y-%m-%d %H:%M} ({self.get_resolution_display()}): {self.value:g}"


def _money(label: str, *, default: str, help_text: str = "") -> models.DecimalField[Decimal, Decimal]:
    return models.DecimalField(
        label,
        max_digits=10,
        decimal_places=2,
        default=Decimal(default),
        validators=[MinValueValidator(Decimal(0), "A price can't be negative.")],
        help_text=help_text,
    )


class CostSettings(models.Model):
    """What the server costs (a single row, pk 1), edited on the Cost page. The defaults are the
    team's first plan: a 5,000 server (an RTX 5080, 1 TB NVMe and four 20 TB disks) written off over
    three years, and 300 Mbps internet. Everything here is configured, never measured: the page
    says so next to each figure it feeds."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "A currency is three capital letters, like USD or EUR.")],
        help_text="Shown after every amount; prices are all in this currency.",
    )
    hardware_price = _money("hardware price", default="5000", help_text="What the server cost to buy.")
    purchased = models.DateField(
        "bought on", default=timezone.localdate, help_text="Its amortisation starts in this month."
    )
    amortisation_months = models.PositiveSmallIntegerField(
        "written off over (months)",
        default=36,
        validators=[
            MinValueValidator(1, "Write the server off over at least 1 month."),
            MaxValueValidator(240, "Write the server off over 240 months (20 years) at most."),
        ],
    )
    base_watts = models.PositiveIntegerField(
        "server's draw without GPUs (W)",
        default=150,
        validators=[MaxValueValidator(20000, "20,000 W at most.")],
        help_text="CPU, memory, disks and fans, on average. Never measured.",
    )
    gpu_watts = models.PositiveIntegerField(
        "GPUs' draw (W)",
        default=360,
        validators=[MaxValueValidator(20000, "20,000 W at most.")],
        help_text="All GPUs together, on average; used only for months without GPU power samples.",
    )
    kwh_price = models.DecimalField(
        "price per kWh",
        max_digits=7,
        decimal_places=4,
        default=Decimal("0.15"),
        validators=[MinValueValidator(Decimal(0), "A price can't be negative.")],
    )
    internet_monthly = _money("internet per month", default="60")
    other_monthly = _money("other per month", default="0", help_text="Rack space, insurance, support contracts.")
    updated = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = "cost settings"
        verbose_name_plural = "cost settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="costsettings_single_row")]

    def __str__(self) -> str:
        return "cost settings"

    @classmethod
    def current(cls) -> CostSettings:
        row, _ = cls.objects.get_or_create(pk=1)
        return row


class CloudInstance(models.Model):
    """A cloud instance the team would rent instead of the server, at its hourly price. A row
    without GPUs prices a workspace-hour; a row with GPUs prices a GPU-hour at what it costs
    above the cheapest row without (per GPU). The cheapest row of each kind is the one used."""

    name = models.CharField(max_length=80, unique=True, error_messages={"unique": "Another price row has this name."})
    gpus = models.PositiveSmallIntegerField("GPUs", default=0, validators=[MaxValueValidator(16, "16 GPUs at most.")])
    hourly_price = models.DecimalField(
        "price per hour",
        max_digits=8,
        decimal_places=4,
        validators=[MinValueValidator(Decimal(0), "A price can't be negative.")],
    )
    stands_for = models.CharField("stands for", max_length=200, blank=True)

    class Meta:
        ordering = ["gpus", "hourly_price", "name"]

    def __str__(self) -> str:
        return self.name


class AlertKind(models.TextChoices):
    """The fixed registry of what can be alerted on (monitoring/rules.py says how each is measured)."""

    DISK_USAGE = "disk_usage", "Disk usage"
    GPU_TEMPERATURE = "gpu_temperature", "GPU temperature"
    MEMORY_PRESSURE = "memory_pressure", "Memory pressure"
    BTRFS_ERRORS = "btrfs_errors", "BTRFS device errors"
    SMART_FAILED = "smart_failed", "SMART failure"
    BACKUP = "backup", "Backup overdue or failed"
    SCRUB_ERRORS = "scrub_errors", "Scrub errors"
    CRASH_LOOP = "crash_loop", "Workspace crash loop"
    HOST_UNREACHABLE = "host_unreachable", "Host unreachable"
    HEARTBEAT = "heartbeat", "Worker or beat down"


class AlertRule(models.Model):
    """One row per kind (made by the migration with the defaults of monitoring/rules.py); admins
    edit the threshold, the window, the "for" duration and whether it is on."""

    kind = models.CharField(max_length=32, choices=AlertKind.choices, unique=True)
    enabled = models.BooleanField(default=True)
    threshold = models.FloatField(null=True, blank=True)  # in the kind's unit; None: a yes/no kind
    window_minutes = models.PositiveIntegerField(null=True, blank=True)  # the crash loop's window
    for_minutes = models.PositiveIntegerField(default=0)  # the condition holds this long before it fires
    notes = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return self.get_kind_display()

    @property
    def for_duration(self) -> timedelta:
        return timedelta(minutes=self.for_minutes)


class Alert(models.Model):
    """One incident of one rule on one subject ("disk root", "GPU 0", "queue host.local"): pending
    while the condition has held less than the rule's "for", firing after, resolved once it
    clears. At most one open (pending or firing) row per (rule, subject), so each incident is
    told once when it fires and once when it resolves."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    OPEN_STATES = (State.PENDING, State.FIRING)

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject = models.CharField(max_length=120)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    started_at = models.DateTimeField()  # the condition was first seen
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)  # the latest reading while open
    peak = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)  # the rule's, when it opened
    message = models.TextField(blank=True)
    # When the firing message went out (None: not yet, silenced, or never fired): the resolved
    # one goes out only after a firing one did.
    notified_at = models.DateTimeField(null=True, blank=True)
    silenced = models.BooleanField(default=False)  # a silence held it back when it fired
    resolution = models.CharField(max_length=200, blank=True)  # why it closed, in words

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(state__in=["pending", "firing"]),
                name="monitoring_alert_one_open_per_subject",
            ),
        ]
        indexes = [models.Index(fields=["state", "started_at"], name="monitoring_alert_state_at")]

    def __str__(self) -> str:
        return f"{self.rule}: {self.subject} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @property
    def duration(self) -> timedelta | None:
        begin = self.fired_at or self.started_at
        return self.resolved_at - begin if self.resolved_at else None


class SilenceQuerySet(models.QuerySet["Silence"]):
    def active(self, now: datetime) -> SilenceQuerySet:
        return self.filter(starts_at__lte=now, ends_at__gt=now)


class Silence(models.Model):
    """Hold back the notifications of one rule's incidents (all its subjects, or one) until
    ``ends_at``. Incidents still open and close, and show in the history."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="silences")
    subject = models.CharField(max_length=120, blank=True)  # "": every subject of the rule
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey("portal.User", null=True, on_delete=models.SET_NULL, related_name="+")

    objects = SilenceQuerySet.as_manager()

    class Meta:
        ordering = ["-ends_at", "-id"]

    def __str__(self) -> str:
        return f"{self.rule} {self.subject or '(all)'} until {self.ends_at:%Y-%m-%d %H:%M}"

    def covers(self, alert: Alert, now: datetime) -> bool:
        return (
            self.rule_id == alert.rule_id
            and self.subject in ("", alert.subject)
            and self.starts_at <= now < self.ends_at
        )
