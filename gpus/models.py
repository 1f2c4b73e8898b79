"""GPUs and their bookings: the inventory per host (from NVML, or from configuration where no
driver is present), one-minute samples of each GPU's use, the team's booking policy, and
bookings with one row per (booking, GPU), on which PostgreSQL's exclusion constraints make a
double booking impossible."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary, RangeOperators
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Func, Q
from django.utils import timezone

from portal.models import Host, User


class TsTzRange(Func):
    """``tstzrange(start, end, '[)')``: a half-open span, so back-to-back bookings touch
    without overlapping."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class PostgresExclusion(ExclusionConstraint):
    """An exclusion constraint that exists on PostgreSQL and is skipped on SQLite (``make
    run``), where the booking service's serialized write transaction keeps the same rule."""

    def _on_postgres(self, schema_editor: Any) -> bool:
        return schema_editor.connection.vendor == "postgresql"

    def create_sql(self, model: Any, schema_editor: Any) -> Any:
        return super().create_sql(model, schema_editor) if self._on_postgres(schema_editor) else None

    def remove_sql(self, model: Any, schema_editor: Any) -> Any:
        return super().remove_sql(model, schema_editor) if self._on_postgres(schema_editor) else None

    def constraint_sql(self, model: Any, schema_editor: Any) -> Any:
        return super().constraint_sql(model, schema_editor) if self._on_postgres(schema_editor) else None

    def validate(self, *args: Any, **kwargs: Any) -> None:
        return None  # the database is the guard; the service explains a conflict itself


class GpuHost(models.Model):
    """The GPU side of a host: how bookings are enforced there and where its inventory came
    from. Created with the first inventory refresh."""

    class Enforcement(models.TextChoices):
        ENFORCED = "enforced", "Enforced: containers get exactly the booked GPUs"
        ADVISORY = "advisory", "Advisory: every container sees every GPU; bookings only notify"

    class Source(models.TextChoices):
        NONE = "", "Not read yet"
        NVML = "nvml", "NVIDIA driver (NVML)"
        CONFIG = "config", "Configuration (GPU_INVENTORY)"

    host = models.OneToOneField(Host, on_delete=models.CASCADE, primary_key=True, related_name="gpu_host")
    enforcement = models.CharField(max_length=10, choices=Enforcement.choices, default=Enforcement.ENFORCED)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.NONE, blank=True)
    driver_version = models.CharField(max_length=40, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"GPUs of {self.host}"

    @property
    def enforced(self) -> bool:
        return self.enforcement == self.Enforcement.ENFORCED

    @property
    def sampled(self) -> bool:
        """Whether use is measured here: only NVML gives samples."""
        return self.source == self.Source.NVML


class GpuQuerySet(models.QuerySet["GPU"]):
    def bookable(self) -> GpuQuerySet:
        return self.filter(present=True)


class GPU(models.Model):
    """One physical GPU (or MIG instance) of a host. Rows are never deleted while bookings
    point at them: a GPU that left the inventory is kept as not present."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="gpus")
    index = models.PositiveSmallIntegerField()
    uuid = models.CharField(max_length=96, blank=True, help_text="NVML's UUID (GPU-…, MIG-…); empty if unknown.")
    name = models.CharField(max_length=100)
    memory_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    mig_mode = models.CharField(max_length=10, blank=True)  # "enabled", "disabled", "" = not supported
    source = models.CharField(max_length=8, choices=GpuHost.Source.choices, default=GpuHost.Source.CONFIG)
    present = models.BooleanField(default=True)
    last_seen = models.DateTimeField(default=timezone.now)

    objects = GpuQuerySet.as_manager()

    class Meta:
        ordering = ["host__name", "index"]
        verbose_name = "GPU"
        constraints = [
            models.UniqueConstraint(fields=["host", "index"], condition=Q(present=True), name="gpu_unique_index"),
            models.UniqueConstraint(fields=["host", "uuid"], condition=~Q(uuid=""), name="gpu_unique_uuid"),
        ]

    def __str__(self) -> str:
        return f"GPU {self.index} of {self.host_id and self.host}"

    @property
    def label(self) -> str:
        return f"GPU {self.index}"

    @property
    def device_id(self) -> str:
        """How a container asks the engine for it: the UUID where known (stable across
        reboots and re-plugging), else the index."""
        return self.uuid or str(self.index)


class GpuSample(models.Model):
    """One minute of one GPU, from NVML. Absent where NVML is (never zeros)."""

    gpu = models.ForeignKey(GPU, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField()
    utilization = models.PositiveSmallIntegerField()  # percent of the last sample period
    memory_used = models.PositiveBigIntegerField()
    temperature = models.PositiveSmallIntegerField(null=True)  # °C
    power_watts = models.PositiveSmallIntegerField(null=True)
    # Workspaces (ids) with a process on the GPU, from NVML's PIDs through their cgroups.
    workspaces = models.JSONField(default=list)
    # Processes on the GPU that belong to no workspace (the host's own, another container's).
    other_processes = models.PositiveSmallIntegerField(default=0)

    class Meta:
        # (gpu, at): one GPU's history; (at): a week of every GPU's samples (the usage page,
        # /metrics, pruning), which the first can't serve without scanning each GPU's rows.
        indexes = [models.Index(fields=["gpu", "at"]), models.Index(fields=["at"], name="gpus_gpusample_at")]
        ordering = ["gpu", "at"]

    def __str__(self) -> str:
        return f"{self.gpu} at {self.at:%Y-%m-%d %H:%M}: {self.utilization}%"


def _hours(*, low: int, high: int) -> list[Any]:
    return [MinValueValidator(low), MaxValueValidator(high)]


class BookingPolicy(models.Model):
    """The team's booking rules (a single row, pk 1), edited on the Policies page. Defaults
    come from prior art: a 30-minute grid, a week at most, a no-show after 15 minutes, idle
    after 45 minutes under 5 % utilisation."""

    SLOT_CHOICES = [(15, "15 minutes"), (30, "30 minutes"), (60, "1 hour")]

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    slot_minutes = models.PositiveSmallIntegerField("slot granularity", choices=SLOT_CHOICES, default=30)
    max_booking_hours = models.PositiveSmallIntegerField(
        "longest booking (hours)", default=168, validators=_hours(low=1, high=24 * 31)
    )
    max_hours_per_week = models.PositiveSmallIntegerField(
        "GPU-hours per member per week",
        default=80,
        validators=_hours(low=1, high=24 * 7 * 16),
        help_text="A two-GPU booking of 4 hours counts 8. Weeks start on Monday in the team's time zone.",
    )
    horizon_days = models.PositiveSmallIntegerField(
        "book at most this far ahead (days)", default=28, validators=_hours(low=1, high=366)
    )
    min_notice_minutes = models.PositiveSmallIntegerField(
        "minimum notice (minutes)",
        default=0,
        validators=_hours(low=0, high=24 * 60),
        help_text="0 lets members book a GPU from the current slot on.",
    )
    shared_slots = models.PositiveSmallIntegerField(
        "members per shared GPU",
        default=0,
        validators=_hours(low=0, high=16),
        help_text="0 allows only exclusive bookings. 2 or more lets that many members share one GPU by "
        "time-slicing: no memory isolation, one member can take all of its memory.",
    )
    noshow_minutes = models.PositiveSmallIntegerField(
        "no-show after (minutes)", default=15, validators=_hours(low=5, high=240)
    )
    noshow_release = models.BooleanField("release a no-show", default=True, help_text="Off: the holder is only told.")
    idle_percent = models.PositiveSmallIntegerField(
        "idle below (% utilisation)", default=5, validators=_hours(low=1, high=100)
    )
    idle_minutes = models.PositiveSmallIntegerField(
        "idle for (minutes)", default=45, validators=_hours(low=10, high=24 * 60)
    )
    idle_release = models.BooleanField(
        "release the rest of an idle booking",
        default=True,
        help_text="After a warning and another idle period of the same length. Off: the holder is only told.",
    )
    updated = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = "booking policy"
        verbose_name_plural = "booking policies"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="bookingpolicy_single_row")]

    def __str__(self) -> str:
        return "booking policy"

    @classmethod
    def current(cls) -> BookingPolicy:
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy

    @property
    def slot(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    @property
    def sharing(self) -> bool:
        return self.shared_slots >= 2


class BookingQuerySet(models.QuerySet["Booking"]):
    def holding(self) -> BookingQuerySet:
        """Bookings that hold their GPUs: not yet started, or under way."""
        return self.filter(state__in=Booking.HOLDING)

    def overlapping(self, start: datetime, end: datetime) -> BookingQuerySet:
        return self.filter(start__lt=end, end__gt=start)

    def visible_to(self, user: User) -> BookingQuerySet:
        """Everyone sees who holds which GPU when (that is what replaces Slack); only the
        holder and admins can change a booking (gpus.access)."""
        return self.all()

    def with_gpus(self) -> BookingQuerySet:
        return self.select_related("user", "host").prefetch_related(
            models.Prefetch("gpu_rows", queryset=BookingGPU.objects.select_related("gpu").order_by("gpu__index"))
        )


class Booking(models.Model):
    """A member's hold on one or more GPUs of a host for ``[start, end)``, in UTC."""

    class State(models.TextChoices):
        BOOKED = "booked", "Booked"
        ACTIVE = "active", "Under way"
        RELEASED = "released", "Released early"
        CANCELLED = "cancelled", "Cancelled"
        COMPLETED = "completed", "Completed"
        NO_SHOW = "no_show", "No-show"

    HOLDING: ClassVar[tuple[str, ...]] = (State.BOOKED, State.ACTIVE)
    FINAL: ClassVar[tuple[str, ...]] = (State.RELEASED, State.CANCELLED, State.COMPLETED, State.NO_SHOW)

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="bookings")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="bookings")
    start = models.DateTimeField(db_index=True)
    end = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.BOOKED, db_index=True)
    shared = models.BooleanField(default=False, help_text="Time-sliced with other shared bookings of the GPU.")
    # How many BookingGPU rows it has (fixed at creation), so weekly sums need no join.
    gpu_count = models.PositiveSmallIntegerField(default=1)
    note = models.CharField(max_length=200, blank=True)
    override = models.BooleanField(default=False, help_text="An admin booked past the policy.")
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The end the booking had when it was released early, for the accounting.
    released_end = models.DateTimeField(null=True, blank=True)
    # What the minute tick has done, so a missed or repeated tick does each thing once.
    start_warned = models.BooleanField(default=False)
    end_warned_minutes = models.PositiveSmallIntegerField(null=True, blank=True)  # 15, then 5
    used_at = models.DateTimeField(null=True, blank=True)  # first sample with the holder on the GPU
    noshow_warned_at = models.DateTimeField(null=True, blank=True)
    idle_warned_at = models.DateTimeField(null=True, blank=True)

    objects = BookingQuerySet.as_manager()

    class Meta:
        ordering = ["start", "pk"]
        constraints = [models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="booking_ends_after_start")]
        indexes = [models.Index(fields=["user", "end", "start"]), models.Index(fields=["host", "end", "start"])]

    def __str__(self) -> str:
        return f"booking {self.pk} of {self.user_id and self.user}"

    @property
    def holds(self) -> bool:
        return self.state in self.HOLDING

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def gpu_list(self) -> list[GPU]:
        """The booked GPUs in index order (needs with_gpus for one query)."""
        return [row.gpu for row in self.gpu_rows.all()]

    @property
    def gpu_labels(self) -> str:
        return ", ".join(gpu.label for gpu in self.gpu_list)


class BookingGPU(models.Model):
    """One GPU of a booking. Its span copies the booking's; ``holds`` is cleared when the
    booking ends early, is cancelled or is released as a no-show. The two exclusion
    constraints say: an exclusive hold overlaps no other hold of the GPU; shared holds may
    overlap each other (their number is checked by the service under the GPU's row lock)."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="gpu_rows")
    gpu = models.ForeignKey(GPU, on_delete=models.PROTECT, related_name="booking_rows")
    start = models.DateTimeField()
    end = models.DateTimeField()
    shared = models.BooleanField(default=False)
    holds = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["booking", "gpu"], name="bookinggpu_once_per_booking"),
            PostgresExclusion(
                name="bookinggpu_exclusive_alone",
                expressions=[
                    ("gpu", RangeOperators.EQUAL),
                    (TsTzRange("start", "end", RangeBoundary()), RangeOperators.OVERLAPS),
                ],
                condition=Q(holds=True, shared=False),
            ),
            PostgresExclusion(
                name="bookinggpu_exclusive_vs_shared",
                expressions=[
                    ("gpu", RangeOperators.EQUAL),
                    (TsTzRange("start", "end", RangeBoundary()), RangeOperators.OVERLAPS),
                    ("shared", RangeOperators.NOT_EQUAL),
                ],
                condition=Q(holds=True),
            ),
        ]
        indexes = [models.Index(fields=["gpu", "end", "start"], condition=Q(holds=True), name="bookinggpu_holding")]

    def __str__(self) -> str:
        return f"{self.gpu} for booking {self.booking_id}"


class Token(models.Model):
    """A member's secret for the JSON API or a calendar feed. Only its SHA-256 is stored; the
    secret is shown once, when made. Revoking keeps the row (its last use stays visible)."""

    class Kind(models.TextChoices):
        API = "api", "API"
        FEED = "feed", "My bookings (calendar feed)"
        TEAM_FEED = "team_feed", "Team's bookings (calendar feed)"

    PREFIXES: ClassVar[dict[str, str]] = {Kind.API: "gpa_", Kind.FEED: "gpf_", Kind.TEAM_FEED: "gpt_"}

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="gpu_tokens")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=60)
    prefix = models.CharField(max_length=12)  # the first characters, to tell tokens apart
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} token {self.prefix}… of {self.user_id and self.user}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class SlackLink(models.Model):
    """Which member a Slack user is, found once by e-mail through Slack's users.info."""

    slack_user_id = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="slack_links")
    linked_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.slack_user_id} -> {self.user_id and self.user}"
