"""The doctor's checks of this machine's parts (monitoring/doctor.py runs them): the database
and the clock, the cache and the broker, workers and beat, Docker and the workspace image per
host, the storage root and free disk. Each is a Probe whose function returns Check rows, each
failure with the fix an operator types; doctor_config.py checks the settings, doctor_remote.py
the services outside (restic, rclone, Slack, Guacamole).

A probe's function runs in a thread of its own with a time limit, so it must not need the
caller's database transaction: what a probe needs from the database (the hosts, the heartbeats,
a stored Drive token) is read by its builder, in the caller's thread, before the threads start."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from kombu import Connection

from hostops import btrfs, docker, metrics
from hostops.errors import HostOpsError, ImageMissing, QuotasDisabled
from monitoring import heartbeats
from portal.models import Host

# The database's clock against this process's: NTP keeps a server within milliseconds, so 2 s
# means it is not syncing; past 30 s the parts that compare the two clocks go wrong (heartbeats
# judged late, bookings starting a tick late, the gate's cookies and Guacamole's 60 s tokens).
SKEW_WARN = timedelta(seconds=2)
SKEW_FAIL = timedelta(seconds=30)
# Free space: under 10% is a warning; under 3% (or 1 GiB) BTRFS and PostgreSQL start to refuse writes.
FREE_WARN = 0.10
FREE_FAIL = 0.03
FREE_FAIL_BYTES = 1 << 30


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not set up here, or depends on a part that failed


@dataclass(frozen=True)
class Check:
    """One answer: ``key`` is stable for scripts ("docker.local"), ``name`` says what was
    checked, ``detail`` what was found, ``fix`` what to do (for a warning or failure)."""

    key: str
    name: str
    status: Status
    detail: str = ""
    fix: str = ""


@dataclass(frozen=True)
class Probe:
    """Work for a thread: ``run`` returns its Checks within ``timeout`` seconds, or the doctor
    records it as hung (``hung_fix`` says what to do then)."""

    key: str
    name: str
    run: Callable[[], list[Check]]
    timeout: float = 15.0
    hung_fix: str = ""


# --- database, clock, cache, broker -----------------------------------------------------------


def database_probe() -> Probe:
    return Probe(
        "database",
        "Database",
        _database,
        timeout=10,
        hung_fix="The database accepts connections but does not answer: look at `docker compose logs db` "
        "(a full disk, a long lock) and restart it.",
    )


def _database() -> list[Check]:
    connection = connections["default"]
    try:
        before = time.time()
        with connection.cursor() as cursor:
            cursor.execute("SELECT now()" if connection.vendor == "postgresql" else "SELECT CURRENT_TIMESTAMP")
            (db_now,) = cursor.fetchone()
        after = time.time()
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:  # the driver's OperationalError and friends
        return [
            Check(
                "database",
                "Database",
                Status.FAIL,
                f"{type(exc).__name__}: {str(exc).strip()[:300]}",
                "Start PostgreSQL (docker compose up -d db) and check DATABASE_URL (host, port, user, password).",
            ),
            Check("clock", "Clock against the database", Status.SKIP, "needs the database"),
        ]
    vendor = connection.vendor
    if pending:
        database = Check(
            "database",
            "Database",
            Status.FAIL,
            f"{len(pending)} migration(s) not applied, the first {pending[0][0].app_label}.{pending[0][0].name}.",
            "Run `python manage.py migrate` (the portal container runs it at start: restart it).",
        )
    else:
        database = Check("database", "Database", Status.OK, f"{vendor}, answering, migrations applied")
    return [database, _clock(db_now, before, after, vendor=vendor)]


def _clock(db_now: datetime | str, before: float, after: float, *, vendor: str) -> Check:
    if vendor != "postgresql" or not isinstance(db_now, datetime):
        return Check(
            "clock", "Clock against the database", Status.SKIP, f"{vendor}: the database has no clock of its own"
        )
    local = datetime.fromtimestamp((before + after) / 2, tz=UTC)
    skew = db_now - local
    words = f"the database is {abs(skew.total_seconds()):.2f} s {'ahead' if skew > timedelta(0) else 'behind'}"
    status = Status.FAIL if abs(skew) > SKEW_FAIL else Status.WARN if abs(skew) > SKEW_WARN else Status.OK
    fix = ""
    if status != Status.OK:
        fix = (
            "Sync both machines' clocks with NTP (timedatectl set-ntp true; chronyc tracking shows the offset); "
            "containers take the host's clock."
        )
    return Check("clock", "Clock against the database", status, words, fix)


def cache_probe() -> Probe:
    return Probe("cache", "Cache (Redis)", _cache, timeout=10, hung_fix=_REDIS_FIX)


_REDIS_FIX = (
    "Start Redis (docker compose up -d redis) and check REDIS_URL; `docker compose logs redis` says why it stopped."
)


def _cache() -> list[Check]:
    cache = caches["default"]
    try:
        token = f"{time.time()}"
        cache.set("monitoring.doctor.ping", token, timeout=60)
        read = cache.get("monitoring.doctor.ping")
    except Exception as exc:  # redis-py's ConnectionError, a full disk under the file cache
        return [Check("cache", "Cache (Redis)", Status.FAIL, f"{type(exc).__name__}: {str(exc)[:300]}", _REDIS_FIX)]
    if read != token:
        return [Check("cache", "Cache (Redis)", Status.FAIL, "a value written was not read back", _REDIS_FIX)]
    return [Check("cache", "Cache (Redis)", Status.OK, f"{type(cache).__name__}, answering")]


def broker_probe() -> Probe:
    return Probe("broker", "Job queue (broker)", _broker, timeout=10, hung_fix=_REDIS_FIX)


def _broker() -> list[Check]:
    url = settings.CELERY_BROKER_URL
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    try:
        with Connection(url, transport_options=options, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=5)
            transport = connection.transport_cls
    except Exception as exc:  # kombu's OperationalError, whatever the transport raises
        return [
            Check("broker", "Job queue (broker)", Status.FAIL, f"{type(exc).__name__}: {str(exc)[:300]}", _REDIS_FIX)
        ]
    return [Check("broker", "Job queue (broker)", Status.OK, f"{transport} transport, answering")]


# --- workers and beat -------------------------------------------------------------------------


def heartbeat_checks(*, now: datetime | None = None) -> list[Check]:
    """Each queue's worker and beat, from the heartbeat rows (two queries, caller's thread)."""
    moment = now or timezone.now()
    beats = heartbeats.queue_beats(now=moment)
    rows = [_worker_check(beat, moment) for beat in beats]
    if heartbeats.beat_is_late(beats):
        rows.append(
            Check(
                "beat",
                "Beat (the scheduler)",
                Status.FAIL,
                f"no queue has had a heartbeat for {_minutes(heartbeats.LATE)}: beat sends them all, so it is down "
                "(or every worker is).",
                "Start beat (docker compose up -d beat) and read `docker compose logs beat`.",
            )
        )
    else:
        rows.append(Check("beat", "Beat (the scheduler)", Status.OK, "sending: a queue had its heartbeat lately"))
    return rows


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"


def _worker_check(beat: heartbeats.QueueBeat, now: datetime) -> Check:
    name = f"Worker of queue {beat.queue}"
    if not beat.late and beat.at is not None:
        age = int((now - beat.at).total_seconds())
        return Check(f"worker.{beat.queue}", name, Status.OK, f"heartbeat {age} s ago from {beat.worker or 'a worker'}")
    seen = "never had a heartbeat" if beat.at is None else f"last heartbeat {_minutes(now - beat.at)} ago"
    if beat.queue == settings.CELERY_TASK_DEFAULT_QUEUE:
        fix = "Start the portal's worker (docker compose up -d worker) and read `docker compose logs worker`."
    else:
        fix = (
            f"Start the worker that takes queue {beat.queue} on its host (docker compose up -d worker there) and "
            "read its log; if beat is down too, start beat first."
        )
    return Check(f"worker.{beat.queue}", name, Status.FAIL, f"{seen}: no worker is taking its tasks.", fix)


# --- Docker and the workspace image, per host -----------------------------------------------------


def docker_probes() -> list[Probe]:
    return [_docker_probe(host.name, host.docker_url) for host in Host.objects.order_by("name")]


def _docker_probe(host: str, docker_url: str) -> Probe:
    return Probe(
        f"docker.{host}",
        f"Docker engine of {host}",
        lambda: _docker(host, docker_url),
        timeout=15,
        hung_fix=f"The engine of {host} took the connection but did not answer: restart it (systemctl restart docker).",
    )


def _engine_words(docker_url: str, exc: HostOpsError) -> str:
    """Why the engine did not answer. A local socket that is not there at all is told apart from
    one nobody listens on: the first is dockerd never started, or its socket not mounted into
    this container; the second a dockerd that stopped (its socket file is left behind)."""
    path = docker_url.removeprefix("unix://")
    if docker_url.startswith("unix://") and not os.path.exists(path):
        return (
            f"There is no socket at {path}: dockerd is not running, or its socket is not mounted into this container."
        )
    return str(exc)[:400]


def _docker(host: str, docker_url: str) -> list[Check]:
    image = settings.WORKSPACE_IMAGE
    image_key, image_name = f"image.{host}", f"Workspace image on {host}"
    try:
        info = docker.engine_info(docker_url=docker_url)
    except HostOpsError as exc:
        return [
            Check(
                f"docker.{host}",
                f"Docker engine of {host}",
                Status.FAIL,
                _engine_words(docker_url, exc),
                f"Start Docker on {host} (systemctl start docker) or correct the host's address ({docker_url}) in "
                "Django admin → Hosts; the worker needs the engine's socket mounted.",
            ),
            Check(image_key, image_name, Status.SKIP, "needs the Docker engine"),
        ]
    engine = Check(
        f"docker.{host}", f"Docker engine of {host}", Status.OK, f"Docker {info.server_version}, {info.cpus} CPUs"
    )
    try:
        found = docker.image_inspect(image, docker_url=docker_url)
    except ImageMissing:
        fix = settings.WORKSPACE_IMAGE_BUILD_HINT or (
            f"Build it on {host}: docker buildx build --load -t {image} workspaces/image (workspaces/image/README.md), "
            "or set WORKSPACE_IMAGE to an image the engine has."
        )
        return [
            engine,
            Check(image_key, image_name, Status.FAIL, f"{image} is not on this engine: no workspace can start.", fix),
        ]
    except HostOpsError as exc:
        return [
            engine,
            Check(image_key, image_name, Status.FAIL, str(exc)[:400], "Read the engine's log (journalctl -u docker)."),
        ]
    return [engine, Check(image_key, image_name, Status.OK, f"{image} ({found.id[7:19]}, built {found.created[:10]})")]


# --- storage and disks ------------------------------------------------------------------------


def storage_probe() -> Probe:
    return Probe(
        "storage",
        "Storage root",
        _storage,
        timeout=30,
        hung_fix=f"btrfs did not answer on {settings.STORAGE_ROOT}: `dmesg` shows a hung filesystem or failing disk.",
    )


def _storage() -> list[Check]:
    root = settings.STORAGE_ROOT
    quotas_skip = Check("storage.quotas", "BTRFS quotas", Status.SKIP, "needs BTRFS at the storage root")
    if not os.path.isdir(root):
        return [
            Check(
                "storage.btrfs",
                "Storage root on BTRFS",
                Status.FAIL,
                f"STORAGE_ROOT {root} does not exist here.",
                f"Mount the data filesystem at {root} (mount {root}; see /etc/fstab) and give the worker container "
                "that folder, or set STORAGE_ROOT.",
            ),
            quotas_skip,
        ]
    if not btrfs.is_btrfs(root):
        plain = settings.DEBUG  # make run: plain folders on purpose
        return [
            Check(
                "storage.btrfs",
                "Storage root on BTRFS",
                Status.WARN if plain else Status.FAIL,
                f"{root} is a plain folder on {btrfs.mount_point_of(root)}, not BTRFS: the data filesystem is not "
                "mounted there, so homes are not the members' subvolumes and nothing is measured or limited.",
                f"Mount the data filesystem at {root} (mount {root}; `dmesg` says why a mount failed), then "
                "restart the worker so its container sees the mount.",
            ),
            quotas_skip,
        ]
    mounted = Check(
        "storage.btrfs", "Storage root on BTRFS", Status.OK, f"{root} on BTRFS mounted at {btrfs.mount_point_of(root)}"
    )
    try:
        groups, inconsistent = btrfs.qgroup_report(root, timeout=settings.STORAGE_COMMAND_TIMEOUT)
    except QuotasDisabled:
        return [
            mounted,
            Check(
                "storage.quotas",
                "BTRFS quotas",
                Status.FAIL,
                f"Quotas are off on {root}: members' usage is not measured and their hard limits do not hold.",
                f"btrfs quota enable {root} (the storage pass turns them on within 10 minutes if the worker runs).",
            ),
        ]
    if inconsistent:
        return [
            mounted,
            Check(
                "storage.quotas",
                "BTRFS quotas",
                Status.WARN,
                "on, but the counts are being rebuilt (a rescan)",
                "Wait for the rescan: btrfs quota rescan -s " + root,
            ),
        ]
    return [mounted, Check("storage.quotas", "BTRFS quotas", Status.OK, f"on, {len(groups)} qgroups")]


def disk_probe() -> Probe:
    return Probe(
        "disk",
        "Free disk space",
        _disks,
        timeout=10,
        hung_fix="A filesystem does not answer statfs: check `dmesg` and the NFS/disk under it.",
    )


def _disks() -> list[Check]:
    rows = []
    for disk in metrics.read_disks(list(settings.MONITORING_DISK_PATHS)):
        share = disk.available / disk.total if disk.total else 0.0
        words = f"{_gib(disk.available)} free of {_gib(disk.total)} ({share:.0%})"
        status = Status.OK
        if share < FREE_FAIL or disk.available < FREE_FAIL_BYTES:
            status = Status.FAIL
        elif share < FREE_WARN:
            status = Status.WARN
        fix = (
            ""
            if status == Status.OK
            else (
                f"Free space on {disk.path}: old scratch data (the Storage page shows who holds most), unused images "
                "(docker image prune), or add a disk."
            )
        )
        rows.append(Check(f"disk.{disk.path}", f"Free space on {disk.path}", status, words, fix))
    return rows or [Check("disk", "Free disk space", Status.SKIP, "none of MONITORING_DISK_PATHS is here")]


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB"
