"""Backups in two tiers: read-only BTRFS snapshots of each member's home and of the shared
datasets on the server (tier 1, hourly), and restic to Google Drive (tier 2, daily). Each tier
has one policy row (schedule, retention, limits), every run is a BackupRun, and each local
snapshot is a row, so the pages never ask the host what exists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from portal.models import Operation, User

_KEEP = [MinValueValidator(-1), MaxValueValidator(100_000)]
KEEP_FIELDS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


class BackupPolicy(models.Model):
    """One tier's policy. The seed's defaults: snapshots hourly, keeping 24 hourly / 7 daily /
    4 weekly; restic daily at 06:00 at 100 Mbit/s, keeping 7 daily / 52 weekly."""

    class Tier(models.TextChoices):
        SNAPSHOT = "snapshot", "Local snapshots (BTRFS)"
        RESTIC = "restic", "Offsite backup (restic)"

    tier = models.CharField(max_length=16, choices=Tier.choices, unique=True)
    enabled = models.BooleanField(default=True)
    # Retention, as restic's --keep-* counts: -1 keeps every period, 0 turns the rule off.
    keep_last = models.IntegerField(default=0, validators=_KEEP)
    keep_hourly = models.IntegerField(default=0, validators=_KEEP)
    keep_daily = models.IntegerField(default=0, validators=_KEEP)
    keep_weekly = models.IntegerField(default=0, validators=_KEEP)
    keep_monthly = models.IntegerField(default=0, validators=_KEEP)
    keep_yearly = models.IntegerField(default=0, validators=_KEEP)
    # A tier whose last good run is older than this is overdue (an alert).
    max_age_hours = models.PositiveIntegerField(default=2, validators=[MinValueValidator(1)])
    # restic only: the upload limit (Mbit/s; restic's --limit-upload is KiB/s) and what goes in.
    upload_limit_mbps = models.PositiveIntegerField(default=100, validators=[MinValueValidator(1)])
    excludes = models.JSONField(default=list, blank=True)
    # The django-celery-beat row that runs the tier, kept in step by backups.policies.
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The open incident of this tier (failed or overdue), so each is told once and its end too.
    incident = models.CharField(max_length=16, blank=True)
    incident_since = models.DateTimeField(null=True, blank=True)
    # The offsite tier's row only: since when its restore drill is overdue (an incident of its
    # own, told once when it opens and once when a drill passes; backups.alerts).
    drill_overdue_since = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "backup policies"

    def __str__(self) -> str:
        return self.get_tier_display()

    def keep(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in KEEP_FIELDS}

    @classmethod
    def in_order(cls, queryset: models.QuerySet[BackupPolicy] | None = None) -> list[BackupPolicy]:
        """The tiers as the pages list them: local snapshots first, then offsite."""
        rows = list(queryset if queryset is not None else cls.objects.all())
        order = list(cls.Tier.values)
        return sorted(rows, key=lambda row: order.index(row.tier) if row.tier in order else len(order))

    @classmethod
    def of(cls, tier: str) -> BackupPolicy:
        """The tier's row (made by a migration; made again with the seed's defaults if gone)."""
        defaults: dict[str, Any] = dict(SEED_DEFAULTS[tier])
        policy, _ = cls.objects.get_or_create(tier=tier, defaults=defaults)
        return policy


SEED_DEFAULTS: dict[str, dict[str, Any]] = {
    BackupPolicy.Tier.SNAPSHOT: {"keep_hourly": 24, "keep_daily": 7, "keep_weekly": 4, "max_age_hours": 2},
    BackupPolicy.Tier.RESTIC: {
        "keep_daily": 7,
        "keep_weekly": 52,
        "max_age_hours": 26,
        "upload_limit_mbps": 100,
        "excludes": [".cache", "__pycache__", "node_modules", ".local/share/Trash"],
    },
}


class BackupRun(models.Model):
    """One run of a tier (or of the restore drill), kept as its history."""

    class Kind(models.TextChoices):
        SNAPSHOT = "snapshot", "Local snapshots"
        RESTIC = "restic", "Offsite backup"
        DRILL = "drill", "Restore drill"

    class Result(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partly done"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    operation = models.OneToOneField(Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.RUNNING, db_index=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # What the run made and removed: snapshots taken / deleted (tier 1); files and bytes new,
    # the restic snapshot's id (tier 2).
    snapshots_made = models.PositiveIntegerField(default=0)
    snapshots_removed = models.PositiveIntegerField(default=0)
    files_new = models.PositiveBigIntegerField(default=0)
    bytes_new = models.PositiveBigIntegerField(default=0)
    bytes_total = models.PositiveBigIntegerField(default=0)
    snapshot_id = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    # What a run found, for its page: the offsite run's sources, the drill's sampled files with
    # their checksums and the slice of the repository it read.
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["kind", "result", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None


class Snapshot(models.Model):
    """A read-only BTRFS snapshot of one subvolume, at ``<root>/.snapshots/<source>/<UTC time>``."""

    # The subvolume, relative to the storage root: "homes/alice" or "datasets".
    source = models.CharField(max_length=200, db_index=True)
    owner = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots")
    path = models.CharField(max_length=500, unique=True)
    taken_at = models.DateTimeField(db_index=True)
    run = models.ForeignKey(BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots")
    # Kept whatever the retention says while set: a restore reading it, tonight's restic source.
    pinned = models.CharField(max_length=200, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["source", "-taken_at"]
        constraints = [models.UniqueConstraint(fields=["source", "taken_at"], name="snapshot_once_per_source_time")]

    def __str__(self) -> str:
        return f"{self.source} at {self.taken_at:%Y-%m-%d %H:%M}"


class ResticSnapshot(models.Model):
    """A snapshot in the offsite restic repository: one per source and night, made from that
    hour's BTRFS snapshot mounted at the source's fixed path. Rows are written by the run that
    made them and reconciled with ``restic snapshots`` after each forget, so the pages never
    ask the repository (on Drive, seconds away) what exists."""

    snapshot_id = models.CharField(max_length=64, unique=True)
    # The subvolume, as Snapshot.source: "homes/alice", "datasets", "portal".
    source = models.CharField(max_length=200, db_index=True)
    owner = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="restic_snapshots")
    # The path restic stored (the fixed mount point), which ls and restore name.
    path = models.CharField(max_length=500)
    # restic's --time: the BTRFS snapshot's own time, so both tiers name the same moment.
    taken_at = models.DateTimeField(db_index=True)
    run = models.ForeignKey(
        BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="restic_snapshots"
    )
    # The local snapshot it was made from (the restore drill compares against it).
    local = models.ForeignKey(Snapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    files = models.PositiveBigIntegerField(default=0)
    size = models.PositiveBigIntegerField(default=0)
    forgotten_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["source", "-taken_at"]

    def __str__(self) -> str:
        return f"{self.source} at {self.taken_at:%Y-%m-%d %H:%M} ({self.snapshot_id[:8]})"

    @property
    def short_id(self) -> str:
        return self.snapshot_id[:8]


class BackupSecret(models.Model):
    """A credential an admin pasted once (the Google Drive token of an rclone remote), kept
    encrypted (backups.offsite_repo); the pages show only when and by whom it was set."""

    name = models.CharField(max_length=100, unique=True)
    ciphertext = models.TextField()
    set_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    set_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class RepositoryReading(models.Model):
    """The offsite repository as the worker last read it (its "Check repository" Operation,
    or the end of a create or unlock): the page shows this row and never runs restic itself.
    One row per location, so a changed BACKUP_RESTIC_REPOSITORY starts unread."""

    class State(models.TextChoices):
        EXISTS = "exists", "Exists"
        MISSING = "missing", "Missing"
        UNREADABLE = "unreadable", "Could not be read"

    location = models.CharField(max_length=500, unique=True)
    state = models.CharField(max_length=16, choices=State.choices)
    read_at = models.DateTimeField(default=timezone.now)
    # What kept the worker from reading it (wrong password, locked, …), in words.
    problem = models.TextField(blank=True)
    snapshot_count = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    # The locks: [{"id", "time" (ISO), "hostname", "username", "pid", "exclusive", "stale"}].
    locks = models.JSONField(default=list, blank=True)
    operation = models.ForeignKey(Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return self.location
