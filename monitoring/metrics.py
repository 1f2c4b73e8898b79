"""What /metrics tells Prometheus: the portal's state, read from the database at scrape time.

Nothing is counted in the web process: gunicorn runs several workers, and a counter in one of
them would be a different number on every scrape. Each scrape builds the figures afresh from
rows, in a fixed number of small aggregate queries whatever the number of rows (the test pins
it). A figure the portal does not have is no series at all, never a zero: a host with no fresh
sample has no portal_host_* series, GPUs nobody samples have no temperature, a tier that never
succeeded has no last-success time.

Rows that are pruned (operations after 90 days, GPU samples after GPU_SAMPLE_DAYS) can't give
counters that only go up, so those figures are gauges over a stated window (the last day, the
team week) rather than ``*_total`` counters that would drop when a row is deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backups.alerts import DRILL_MAX_AGE
from backups.models import BackupPolicy, BackupRun
from gpus import accounting
from gpus.models import GPU, Booking, GpuSample
from monitoring import heartbeats
from monitoring.charts import FRESH
from monitoring.models import Alert, AlertKind, AlertRule, Resolution, Sample
from portal.models import Host, Operation, User
from storage.models import MemberStorage
from workspaces.models import Workspace

DAY = timedelta(days=1)
UNFINISHED = (Operation.State.QUEUED, Operation.State.RUNNING, Operation.State.RETRYING)

# The host's raw series (monitoring/collect.py) as Prometheus metrics: pattern, metric, help,
# and the names of the labels the pattern's groups fill.
HOST_SERIES: list[tuple[re.Pattern[str], str, str, tuple[str, ...]]] = [
    (re.compile(r"host\.cpu\.percent"), "portal_host_cpu_busy_percent", "CPU busy, percent of all cores", ()),
    (re.compile(r"host\.mem\.used_bytes"), "portal_host_memory_used_bytes", "Memory in use", ()),
    (re.compile(r"host\.mem\.total_bytes"), "portal_host_memory_total_bytes", "Memory installed", ()),
    (re.compile(r"host\.swap\.used_bytes"), "portal_host_swap_used_bytes", "Swap in use", ()),
    (re.compile(r"host\.swap\.total_bytes"), "portal_host_swap_total_bytes", "Swap configured", ()),
    (re.compile(r"host\.load\.(1|5|15)"), "portal_host_load_average", "Load average", ("minutes",)),
    (
        re.compile(r"host\.psi\.(cpu|memory|io)\.(some|full)10"),
        "portal_host_pressure_percent",
        "Pressure stall (PSI avg10): percent of time some or all tasks waited",
        ("resource", "kind"),
    ),
    (re.compile(r"disk\.([a-z0-9_]+)\.used_bytes"), "portal_host_disk_used_bytes", "Filesystem space used", ("disk",)),
    (re.compile(r"disk\.([a-z0-9_]+)\.total_bytes"), "portal_host_disk_total_bytes", "Filesystem size", ("disk",)),
]


def metrics_text(*, now: datetime) -> bytes:
    """The Prometheus text exposition of every portal figure at ``now``."""
    registry = CollectorRegistry()
    registry.register(PortalCollector(now=now))
    return generate_latest(registry)


def _gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _seconds(duration: timedelta | float | None) -> float:
    # PostgreSQL averages intervals into a timedelta; SQLite gives microseconds.
    if isinstance(duration, timedelta):
        return duration.total_seconds()
    return float(duration or 0) / 1_000_000


class PortalCollector(Collector):
    """Every family, computed when Prometheus asks (``collect``), from the rows as of ``now``."""

    def __init__(self, *, now: datetime) -> None:
        self.now = now

    def collect(self) -> Iterator[Metric]:
        hosts = list(Host.objects.order_by("name").values_list("name", "state", "last_seen"))
        yield from self._hosts(hosts)
        yield from self._workspaces([name for name, _, _ in hosts])
        yield from self._operations()
        yield from self._bookings()
        yield from self._gpu_week()
        yield from self._gpu_latest()
        yield from self._backups()
        yield from self._storage()
        yield from self._heartbeats()
        yield from self._host_samples()
        yield from self._alerts()

    def _hosts(self, hosts: list[tuple[str, str, datetime | None]]) -> Iterator[Metric]:
        reachable = _gauge("portal_host_reachable", "1 when the host's Docker engine answered, 0 when not", ("host",))
        seen = _gauge("portal_host_last_seen_timestamp_seconds", "When the host's engine last answered", ("host",))
        for name, state, last_seen in hosts:
            if state != Host.State.UNKNOWN:  # not checked yet: no figure rather than a false 0
                reachable.add_metric([name], 1.0 if state == Host.State.ONLINE else 0.0)
            if last_seen is not None:
                seen.add_metric([name], _epoch(last_seen))
        yield reachable
        yield seen

    def _workspaces(self, host_names: list[str]) -> Iterator[Metric]:
        counts = {
            (row["host__name"], row["state"]): row["n"]
            for row in Workspace.objects.values("host__name", "state").annotate(n=Count("id"))
        }
        family = _gauge("portal_workspaces", "Workspaces by host and state", ("host", "state"))
        for host in host_names:  # every state of every host, 0 included, so stacked charts don't gap
            for state in Workspace.State.values:
                family.add_metric([host, state], float(counts.get((host, state), 0)))
        yield family

    def _operations(self) -> Iterator[Metric]:
        unfinished = _gauge("portal_operations_unfinished", "Jobs queued, running or retrying", ("kind", "state"))
        rows = Operation.objects.filter(state__in=UNFINISHED).values("kind", "state").annotate(n=Count("id"))
        for row in rows:
            unfinished.add_metric([row["kind"], row["state"]], float(row["n"]))
        yield unfinished
        duration = ExpressionWrapper(F("finished") - Coalesce("started", "created"), output_field=DurationField())
        finished = (
            Operation.objects.filter(state__in=Operation.FINAL_STATES, finished__gte=self.now - DAY)
            .values("kind", "state")
            .annotate(n=Count("id"), mean=Avg(duration), longest=Max(duration))
        )
        count = _gauge("portal_operations_last_day", "Jobs that ended in the last 24 hours", ("kind", "state"))
        mean = _gauge(
            "portal_operation_duration_seconds_mean",
            "Mean run time of the jobs that ended in the last 24 hours",
            ("kind", "state"),
        )
        longest = _gauge(
            "portal_operation_duration_seconds_max",
            "Longest run time of the jobs that ended in the last 24 hours",
            ("kind", "state"),
        )
        for row in finished:
            labels = [row["kind"], row["state"]]
            count.add_metric(labels, float(row["n"]))
            mean.add_metric(labels, _seconds(row["mean"]))
            longest.add_metric(labels, _seconds(row["longest"]))
        yield from (count, mean, longest)

    def _bookings(self) -> Iterator[Metric]:
        figures = Booking.objects.filter(state__in=(Booking.State.BOOKED, Booking.State.ACTIVE)).aggregate(
            active=Count("id", filter=Q(state=Booking.State.ACTIVE)),
            upcoming=Count("id", filter=Q(state=Booking.State.BOOKED)),
        )
        yield GaugeMetricFamily("portal_bookings_active", "GPU bookings under way", value=figures["active"])
        yield GaugeMetricFamily("portal_bookings_upcoming", "GPU bookings not started yet", value=figures["upcoming"])

    def _gpu_week(self) -> Iterator[Metric]:
        """The usage page's figures for the team week holding now (gpus/accounting.py)."""
        members = dict(User.objects.filter(is_active=True).values_list("pk", "username"))
        week, figures = accounting.team_week(members, self.now)
        yield GaugeMetricFamily(
            "portal_gpu_week_start_timestamp_seconds", "Start of the GPU-hours team week", value=_epoch(week[0])
        )
        # In GPU-seconds, Prometheus' base unit (a dashboard divides by 3600 for GPU-hours).
        booked = _gauge("portal_gpu_week_booked_seconds", "GPU-seconds booked in this team week", ("member",))
        used = _gauge("portal_gpu_week_used_seconds", "GPU-seconds used this team week (sampled GPUs)", ("member",))
        for member, row in sorted(figures.items(), key=lambda item: members[item[0]]):
            booked.add_metric([members[member]], row.booked * 3600)
            if row.used is not None:  # no GPU is sampled: not measured, not 0
                used.add_metric([members[member]], row.used * 3600)
        yield booked
        yield used

    def _gpu_latest(self) -> Iterator[Metric]:
        """Each GPU's newest sample, if it came in the last FRESH."""
        # One sample per GPU, each found through the (gpu, at) index: months of samples stay unread.
        latest = GpuSample.objects.filter(gpu=OuterRef("pk"), at__gte=self.now - FRESH).order_by("-at").values("pk")
        rows = GpuSample.objects.filter(pk__in=GPU.objects.values(latest=Subquery(latest[:1]))).values_list(
            "gpu__host__name", "gpu__index", "utilization", "memory_used", "temperature", "power_watts"
        )
        newest = {(host, str(index)): figures for host, index, *figures in rows}
        labels = ("host", "gpu")
        families = [
            _gauge("portal_gpu_utilization_percent", "GPU busy in the last sample period", labels),
            _gauge("portal_gpu_memory_used_bytes", "GPU memory in use", labels),
            _gauge("portal_gpu_temperature_celsius", "GPU temperature", labels),
            _gauge("portal_gpu_power_watts", "GPU power draw", labels),
        ]
        for key, figures in sorted(newest.items()):
            for family, value in zip(families, figures, strict=True):
                if value is not None:
                    family.add_metric(list(key), float(value))
        yield from families

    def _backups(self) -> Iterator[Metric]:
        last_good = dict(
            BackupRun.objects.filter(result=BackupRun.Result.SUCCEEDED)
            .values("kind")
            .annotate(at=Max(Coalesce("finished_at", "started_at")))
            .values_list("kind", "at")
        )
        labels = ("tier",)
        success = _gauge("portal_backup_last_success_timestamp_seconds", "When the tier's last good run ended", labels)
        age = _gauge("portal_backup_age_seconds", "Time since the tier's last good run ended", labels)
        max_age = _gauge("portal_backup_max_age_seconds", "The tier's policy: a good run at least this often", labels)
        enabled = _gauge("portal_backup_enabled", "1 when the tier's policy is on", labels)
        incident = _gauge("portal_backup_incident", "1 while the tier has an open incident", (*labels, "incident"))
        for kind, at in sorted(last_good.items()):
            success.add_metric([kind], _epoch(at))
            age.add_metric([kind], (self.now - at).total_seconds())
        for policy in BackupPolicy.objects.order_by("tier"):
            enabled.add_metric([policy.tier], float(policy.enabled))
            if policy.enabled:
                max_age.add_metric([policy.tier], policy.max_age_hours * 3600.0)
            if policy.incident:
                incident.add_metric([policy.tier, policy.incident], 1.0)
            if policy.drill_overdue_since is not None:
                incident.add_metric([BackupRun.Kind.DRILL.value, "overdue"], 1.0)
        yield GaugeMetricFamily(
            "portal_backup_drill_max_age_seconds",
            "A restore drill should pass at least this often",
            value=DRILL_MAX_AGE.total_seconds(),
        )
        yield from (success, age, max_age, enabled, incident)

    def _storage(self) -> Iterator[Metric]:
        rows = (
            MemberStorage.objects.filter(state=MemberStorage.State.PRESENT, referenced__isnull=False)
            .order_by("user__username")
            .values_list("user__username", "referenced", "hard_limit_applied", "measured_at")
        )
        used = _gauge("portal_storage_used_bytes", "A member's home and scratch together", ("member",))
        limit = _gauge("portal_storage_limit_bytes", "A member's hard limit (qgroup)", ("member",))
        measured = _gauge("portal_storage_measured_timestamp_seconds", "When the member's usage was read", ("member",))
        for member, referenced, hard_limit, measured_at in rows:
            used.add_metric([member], float(referenced or 0))  # never null: filtered above
            if hard_limit:
                limit.add_metric([member], float(hard_limit))
            if measured_at is not None:
                measured.add_metric([member], _epoch(measured_at))
        yield from (used, limit, measured)

    def _heartbeats(self) -> Iterator[Metric]:
        age = _gauge("portal_heartbeat_age_seconds", "Time since a worker last took the queue's heartbeat", ("queue",))
        late = _gauge(
            "portal_heartbeat_late",
            f"1 when the queue's heartbeat is older than {heartbeats.LATE} or missing",
            ("queue",),
        )
        for beat in heartbeats.queue_beats(now=self.now):
            late.add_metric([beat.queue], float(beat.late))
            if beat.at is not None:
                age.add_metric([beat.queue], (self.now - beat.at).total_seconds())
        yield age
        yield late

    def _host_samples(self) -> Iterator[Metric]:
        """The newest raw reading of each host series (monitoring/collect.py), if fresh."""
        newest = Sample.objects.filter(resolution=Resolution.RAW).aggregate(at=Max("at"))["at"]
        if newest is None:
            return
        yield GaugeMetricFamily(
            "portal_host_sample_timestamp_seconds", "When the worker last sampled the host", value=_epoch(newest)
        )
        rows = Sample.objects.filter(resolution=Resolution.RAW, at__gte=self.now - FRESH).order_by("at")
        values = dict(rows.values_list("series", "value"))
        families: dict[str, GaugeMetricFamily] = {}
        for series, value in sorted(values.items()):
            for pattern, name, documentation, labels in HOST_SERIES:
                match = pattern.fullmatch(series)
                if match:
                    family = families.setdefault(name, _gauge(name, documentation, labels))
                    family.add_metric(list(match.groups()), value)
        yield from families.values()

    def _alerts(self) -> Iterator[Metric]:
        """Open incidents by rule and state, every rule's pending and firing listed (0 included),
        and whether each rule is on: one query over the open rows (the partial unique index)."""
        counts = {
            (row["rule__kind"], row["state"]): row["n"]
            for row in Alert.objects.filter(state__in=Alert.OPEN_STATES)
            .values("rule__kind", "state")
            .annotate(n=Count("id"))
        }
        enabled = dict(AlertRule.objects.values_list("kind", "enabled"))
        family = _gauge("portal_alerts", "Open alert incidents by rule and state", ("rule", "state"))
        on = _gauge("portal_alert_rule_enabled", "1 when the alert rule is on", ("rule",))
        for kind in AlertKind.values:
            for state in Alert.OPEN_STATES:
                family.add_metric([kind, state], float(counts.get((kind, state), 0)))
            if kind in enabled:
                on.add_metric([kind], 1.0 if enabled[kind] else 0.0)
        yield family
        yield on
