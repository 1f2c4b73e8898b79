"""What each alert kind measures, and its defaults: the fixed registry behind AlertRule.kind.

A kind's ``measure`` returns the current reading of every subject it has figures for ("disk
root": 91.0). A subject with no fresh figure is absent: it is not a zero and it does not fire,
and an incident whose subject goes absent resolves ("no reading any more"). Yes/no kinds read
1.0 for bad and 0.0 for good and have no editable threshold.

Defaults (the migration seeds them): disk 85 % for 10 min, GPU 85 °C for 5 min, memory
pressure (PSI some, 10 s average) 20 % for 5 min, any BTRFS device error, a SMART failure, a
backup tier's incident, any scrub error, 3 crashes in 15 min, a host unreachable for 5 min,
a queue's heartbeat late (3 min) for 2 min more."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count
from django.urls import reverse

from backups.models import BackupPolicy
from gpus.models import GpuSample
from monitoring import heartbeats
from monitoring.models import AlertKind, AlertRule, Resolution, Sample
from portal.models import AuditEvent, Host
from storage.models import ScrubRun
from workspaces.models import Workspace

# A reading older than this is not "now": the sampler stopped (the heartbeat rule tells that).
FRESH = timedelta(minutes=5)
Readings = dict[str, float]


@dataclass(frozen=True)
class Kind:
    """One alert kind: how it reads, its unit and the range an admin may set."""

    measure: Callable[[AlertRule, datetime], Readings]
    about: str  # what it watches, in words (the rule pages)
    unit: str = ""  # "" for a yes/no kind (no threshold)
    threshold: float | None = None
    low: float = 0
    high: float = 0
    for_minutes: int = 0
    window_minutes: int | None = None
    # A yes/no kind fires on 1.0; the others when the reading is above the threshold
    # ("above 0 errors" is any error) or, with ``at_least``, reaches it (3 crashes).
    at_least: bool = False
    # Who tells admins of it instead ("the backups app"): its incidents are recorded and shown
    # here, never sent from here, so nobody is told twice.
    told_elsewhere: str = ""
    page: str = ""  # URL name of the page to look at

    @property
    def yes_no(self) -> bool:
        return self.threshold is None

    def breached(self, value: float, threshold: float | None) -> bool:
        if threshold is None:
            return value >= 1.0
        return value >= threshold if self.at_least else value > threshold

    def url(self) -> str:
        return reverse(self.page) if self.page else reverse("monitoring:alerts")


def _latest_series(prefix: str, suffix: str, now: datetime) -> dict[str, float]:
    """The newest fresh raw value of each ``<prefix><word><suffix>`` series, by word."""
    pattern = re.compile(rf"{re.escape(prefix)}([a-z0-9_]+){re.escape(suffix)}")
    rows = Sample.objects.filter(
        resolution=Resolution.RAW, at__gte=now - FRESH, at__lte=now, series__startswith=prefix
    ).order_by("at")
    values: dict[str, float] = {}
    for series, value in rows.values_list("series", "value"):
        match = pattern.fullmatch(series)
        if match:
            values[match.group(1)] = value  # ordered by time: the newest wins
    return values


def disk_usage(rule: AlertRule, now: datetime) -> Readings:
    used = _latest_series("disk.", ".used_bytes", now)
    total = _latest_series("disk.", ".total_bytes", now)
    return {f"disk {name}": 100 * used[name] / total[name] for name in used if total.get(name)}


def gpu_temperature(rule: AlertRule, now: datetime) -> Readings:
    rows = GpuSample.objects.filter(at__gte=now - FRESH, at__lte=now, temperature__isnull=False)
    readings: Readings = {}
    for index, host, temperature in rows.order_by("at").values_list("gpu__index", "gpu__host__name", "temperature"):
        readings[f"GPU {index} on {host}"] = float(temperature or 0)  # ordered by time: the newest wins
    return readings


def memory_pressure(rule: AlertRule, now: datetime) -> Readings:
    value = _latest_series("host.psi.", ".some10", now).get("memory")
    return {} if value is None else {"host memory": value}


def btrfs_errors(rule: AlertRule, now: datetime) -> Readings:
    return {f"filesystem {name}": value for name, value in _latest_series("btrfs.", ".errors", now).items()}


def smart_failed(rule: AlertRule, now: datetime) -> Readings:
    return {f"disk {name}": value for name, value in _latest_series("smart.", ".failed", now).items()}


def backup(rule: AlertRule, now: datetime) -> Readings:
    """The backups app's own verdict, as its alert pass left it on the policy rows."""
    readings: Readings = {}
    for policy in BackupPolicy.objects.filter(enabled=True).order_by("tier"):
        readings[policy.get_tier_display()] = 1.0 if policy.incident else 0.0
        if policy.tier == BackupPolicy.Tier.RESTIC:
            readings["restore drill"] = 1.0 if policy.drill_overdue_since else 0.0
    return readings


def scrub_errors(rule: AlertRule, now: datetime) -> Readings:
    """Errors found by the newest finished scrub of each filesystem (a clean scrub ends it)."""
    finished = ScrubRun.objects.exclude(result__in=[ScrubRun.Result.RUNNING, ScrubRun.Result.CANCELLED])
    readings: Readings = {}
    for run in finished.exclude(result=ScrubRun.Result.FAILED).order_by("started_at"):
        readings[f"scrub of {run.mount}"] = float(run.errors)
    return readings


def crash_loop(rule: AlertRule, now: datetime) -> Readings:
    """Times each workspace was seen stopped behind the portal's back after running, in the
    window (the reconciler's "workspace.observed" audit rows). Workspaces with none read 0."""
    since = now - timedelta(minutes=rule.window_minutes or 15)
    crashes = (
        AuditEvent.objects.filter(
            action="workspace.observed", target_type="workspace", created__gt=since, created__lte=now
        )
        .filter(detail__before=Workspace.State.RUNNING)
        .values("target_id")
        .annotate(n=Count("id"))
    )
    counts = {row["target_id"]: row["n"] for row in crashes}
    readings: Readings = {}
    for workspace in Workspace.objects.select_related("owner").order_by("pk"):
        readings[f"workspace {workspace.container_name}"] = float(counts.get(str(workspace.pk), 0))
    return readings


def host_unreachable(rule: AlertRule, now: datetime) -> Readings:
    hosts = Host.objects.order_by("name").values_list("name", "state")
    return {f"host {name}": 1.0 if state == Host.State.UNREACHABLE else 0.0 for name, state in hosts}


def heartbeat(rule: AlertRule, now: datetime) -> Readings:
    """A queue whose heartbeat is late; every queue late at once is one incident, of beat."""
    beats = heartbeats.queue_beats(now=now)
    if heartbeats.beat_is_late(beats):
        return {"beat": 1.0}
    return {"beat": 0.0, **{f"queue {beat.queue}": 1.0 if beat.late else 0.0 for beat in beats}}


KINDS: dict[str, Kind] = {
    AlertKind.DISK_USAGE: Kind(
        disk_usage,
        "The share of each sampled filesystem in use (MONITORING_DISK_PATHS).",
        "%",
        85,
        1,
        100,
        for_minutes=10,
        page="monitoring:overview",
    ),
    AlertKind.GPU_TEMPERATURE: Kind(
        gpu_temperature,
        "Each GPU's temperature, from its minute samples (NVML).",
        "°C",
        85,
        30,
        120,
        for_minutes=5,
        page="monitoring:overview",
    ),
    AlertKind.MEMORY_PRESSURE: Kind(
        memory_pressure,
        "The share of time some task waited for memory (PSI memory some, 10 s average).",
        "%",
        20,
        1,
        100,
        for_minutes=5,
        page="monitoring:overview",
    ),
    AlertKind.BTRFS_ERRORS: Kind(
        btrfs_errors,
        "The sum of each BTRFS filesystem's device error counters.",
        "errors",
        0,
        0,
        1_000_000,
        told_elsewhere="the storage app",  # storage/usage.py: each growth of the counters
        page="storage:overview",
    ),
    AlertKind.SMART_FAILED: Kind(smart_failed, "A disk whose SMART self-assessment fails.", page="storage:overview"),
    AlertKind.BACKUP: Kind(
        backup,
        "A backup tier failing or overdue, or the restore drill overdue, as the backups app judges it.",
        told_elsewhere="the backups app",  # backups/alerts.py, with the run's words
        page="backups:history",
    ),
    AlertKind.SCRUB_ERRORS: Kind(
        scrub_errors,
        "Errors found by the newest finished scrub of each filesystem; a clean scrub ends it.",
        "errors",
        0,
        0,
        1_000_000,
        page="storage:overview",
    ),
    AlertKind.CRASH_LOOP: Kind(
        crash_loop,
        "A workspace seen stopped behind the portal's back after running, counted over the window.",
        "crashes",
        3,
        1,
        100,
        window_minutes=15,
        at_least=True,
        page="workspaces:admin-list",
    ),
    AlertKind.HOST_UNREACHABLE: Kind(
        host_unreachable,
        "A host whose Docker engine does not answer the reconciler.",
        for_minutes=5,
        page="workspaces:admin-list",
    ),
    AlertKind.HEARTBEAT: Kind(
        heartbeat,
        "A queue whose worker has not stamped its heartbeat for 3 minutes; every queue at once is beat.",
        for_minutes=2,  # beat restarting (a deploy) sends the evaluation and the heartbeats together
        page="monitoring:overview",
    ),
}
ORDER = list(AlertKind.values)
WINDOW_RANGE = (1, 24 * 60)
FOR_MAX_MINUTES = 24 * 60


def kind_of(rule: AlertRule) -> Kind:
    return KINDS[rule.kind]


def format_value(rule: AlertRule, value: float | None) -> str:
    """A reading in the rule's unit ("91 %", "86 °C", "3 crashes"); "yes"/"no" for yes/no kinds."""
    kind = kind_of(rule)
    if value is None:
        return "—"
    if kind.yes_no:
        return "yes" if value >= 1.0 else "no"
    return f"{value:.1f}".removesuffix(".0") + f" {kind.unit}"


def rules_ensure() -> None:
    """Make any missing rule with its kind's defaults (the migration made them all; a lost row
    comes back rather than leaving its kind unwatched). One query when none is missing."""
    have = set(AlertRule.objects.values_list("kind", flat=True))
    for name, kind in KINDS.items():
        if name not in have:
            AlertRule.objects.get_or_create(
                kind=name,
                defaults={
                    "threshold": kind.threshold,
                    "window_minutes": kind.window_minutes,
                    "for_minutes": kind.for_minutes,
                },
            )
