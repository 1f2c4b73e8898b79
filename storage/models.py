"""Storage on the server's storage root: each member's home and scratch (BTRFS subvolumes with a
qgroup of their own, or plain folders where the root is not BTRFS), their measured usage and
which warnings have been given, the monthly scrub's history, and the data ingestion jobs with
their runs."""

from __future__ import annotations

from datetime import timedelta

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from portal.models import Host, Operation, User


class MemberStorage(models.Model):
    """A member's home (``homes/<username>``) and scratch (``scratch/<username>``).

    On BTRFS both are subvolumes and a level-1 qgroup ``1/<uid>`` holds the two, so one figure
    (and one hard limit) covers all the member's space; home alone is what backups copy. A row
    outlives its member's departure: the subvolumes stay until an admin deletes them."""

    class Kind(models.TextChoices):
        SUBVOLUME = "subvolume", "BTRFS subvolumes"
        FOLDER = "folder", "Plain folders"

    class State(models.TextChoices):
        PRESENT = "present", "Present"
        DELETING = "deleting", "Being deleted"
        DELETED = "deleted", "Deleted"

    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="storage")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PRESENT)
    home_path = models.CharField(max_length=500)
    scratch_path = models.CharField(max_length=500)
    # The level-1 qgroup holding home and scratch ("1/<uid>"); empty for plain folders.
    qgroup = models.CharField(max_length=32, blank=True)
    # Bytes at the last pass: referenced (what the member's files take, shared extents counted)
    # and exclusive (what deleting them would free); home alone for the members' table.
    referenced = models.PositiveBigIntegerField(null=True, blank=True)
    exclusive = models.PositiveBigIntegerField(null=True, blank=True)
    home_referenced = models.PositiveBigIntegerField(null=True, blank=True)
    scratch_referenced = models.PositiveBigIntegerField(null=True, blank=True)
    measured_at = models.DateTimeField(null=True, blank=True)
    # The qgroup limit set on the host (None: none), so a changed quota is applied once.
    hard_limit_applied = models.PositiveBigIntegerField(null=True, blank=True)
    # Over the soft limit / at 90% of the hard limit at the last pass: a warning is sent when
    # one of these turns true, never again until it has turned false in between.
    over_soft = models.BooleanField(default=False)
    near_hard = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"storage of {self.user}"


class ScrubRun(models.Model):
    """One scrub of the storage filesystem: what it read and what it found."""

    class Result(models.TextChoices):
        RUNNING = "running", "Running"
        CLEAN = "clean", "No errors"
        CORRECTED = "corrected", "Errors corrected"
        UNCORRECTABLE = "uncorrectable", "Uncorrectable errors"
        FAILED = "failed", "Could not run"
        CANCELLED = "cancelled", "Cancelled"

    operation = models.OneToOneField(Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    mount = models.CharField(max_length=500)
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    bytes_scrubbed = models.PositiveBigIntegerField(default=0)
    corrected_errors = models.PositiveBigIntegerField(default=0)
    uncorrectable_errors = models.PositiveBigIntegerField(default=0)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"scrub of {self.mount} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None

    @property
    def errors(self) -> int:
        return self.corrected_errors + self.uncorrectable_errors


_JOB_NAME = RegexValidator(r"^[a-z0-9][a-z0-9-]{0,62}$", "Use lowercase letters, digits and '-' (up to 63).")


class IngestionJob(models.Model):
    """Data brought onto the server (or between remotes) by rclone on a schedule: the seed's
    daily 04:00 copy of customer data at 100 Mbit/s, or a one-off migration checked afterwards."""

    class Mode(models.TextChoices):
        COPY = "copy", "Copy (never deletes at the target)"
        SYNC = "sync", "Sync (makes the target match, deleting extra files)"

    class TargetKind(models.TextChoices):
        DATASET = "dataset", "A folder of the shared datasets"
        REMOTE = "remote", "Another rclone remote"

    name = models.CharField(max_length=63, unique=True, validators=[_JOB_NAME])
    description = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=500, help_text="remote:path, a remote of RCLONE_REMOTES.")
    target_kind = models.CharField(max_length=16, choices=TargetKind.choices, default=TargetKind.DATASET)
    # A dataset folder (relative to datasets/) or remote:path.
    target = models.CharField(max_length=500)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.COPY)
    bwlimit_mbps = models.PositiveIntegerField(
        "bandwidth limit (Mbit/s)",
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
        help_text="Megabits per second; rclone's limit is in bytes, so 100 Mbit/s is passed as 12207K (KiB/s).",
    )
    check_after = models.BooleanField(
        default=False, help_text="After copying, compare source and target (size and hash) and fail on a difference."
    )
    # The schedule, as cron fields in the server's time zone; empty minute/hour: run only by hand.
    enabled = models.BooleanField(default=True)
    schedule_minute = models.CharField(max_length=64, default="0", blank=True)
    schedule_hour = models.CharField(max_length=64, default="4", blank=True)
    schedule_day_of_week = models.CharField(max_length=64, default="*", blank=True)
    # The django-celery-beat row that runs it, kept in step with the fields above.
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IngestionRun(models.Model):
    """One run of an ingestion job, kept as its history."""

    class Result(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(IngestionJob, on_delete=models.CASCADE, related_name="runs")
    operation = models.OneToOneField(Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    files = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    argv = models.JSONField(default=list, blank=True)  # what ran (no secrets: the config is a file)
    # An alert was sent that this run would still be going at the backup's start.
    overrun_warned = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.job} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None


class FilesystemState(models.Model):
    """The storage root's filesystem as the worker last read it, for the storage page (the web
    process may run where the disks are not: it never asks the host itself)."""

    root = models.CharField(max_length=500, unique=True)
    on_btrfs = models.BooleanField(default=False)
    label = models.CharField(max_length=256, blank=True)
    uuid = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    used = models.PositiveBigIntegerField(null=True, blank=True)
    free = models.PositiveBigIntegerField(null=True, blank=True)  # estimated, for the profile
    data_profile = models.CharField(max_length=32, blank=True)
    metadata_profile = models.CharField(max_length=32, blank=True)
    missing_devices = models.BooleanField(default=False)
    # [{"devid", "path", "size", "used", "errors": {"write_io_errs": n, ...}}, ...]
    devices = models.JSONField(default=list, blank=True)
    # [{"name", "path", "subvolume"}, ...]: homes, scratch, datasets, portal
    folders = models.JSONField(default=list, blank=True)
    quotas_approximate = models.BooleanField(default=False)  # a rescan was running
    problems = models.JSONField(default=list, blank=True)
    measured_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"filesystem of {self.root}"

    @property
    def device_errors(self) -> int:
        return sum(sum(device.get("errors", {}).values()) for device in self.devices)


class DiskScan(models.Model):
    """A host's disks as its worker read them (lsblk, wipefs): the web process has no /dev, so
    the disk planning page plans from the newest of these rather than asking the host itself."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="+")
    operation = models.ForeignKey(Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    read_at = models.DateTimeField(default=timezone.now, db_index=True)
    # hostops.disks.Disk, children nested (storage.planning: disks_to_json / disks_from_json)
    disks = models.JSONField(default=list, blank=True)
    bcache_supported = models.BooleanField(default=False)
    error = models.TextField(blank=True)  # why the disks could not be read; then no disks

    class Meta:
        ordering = ["-read_at", "-id"]

    def __str__(self) -> str:
        return f"disks of {self.host} at {self.read_at:%Y-%m-%d %H:%M}"
