"""Planning the storage array on the server's disks (admins), and applying the plan.

The web process never reads the disks (in production it has no /dev): the local host's worker
reads them when an admin asks ("storage.disks_scan") and stores a DiskScan, and the page shows
the plan hostops.disks proposes on the newest scan for the admin's choice. An apply needs a scan
under SCAN_FRESH old with no apply begun since, and is checked here first (the typed
confirmation, the disks confirmed by name, the plan unchanged since the page showed it), so a
mistake is explained before anything is queued. The worker then reads the disks again and
rebuilds the plan itself from the saved choice: it never runs commands that came from a browser,
and it refuses to start when the disks changed in between. Wiping disks is not a job to run
twice: a second delivery of the message finds the row claimed and does nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from hostops import disks as hd
from hostops.errors import HostOpsError
from portal.audit import AuditContext, audit_record
from portal.models import Host, Notification, Operation, User
from portal.operations import (
    operation_claim,
    operation_create,
    operation_enqueue,
    operation_fail,
    operation_progress,
    operation_succeed,
)
from portal.services import notify_admins
from storage.models import DiskScan

logger = logging.getLogger(__name__)

KIND = "storage.disks_apply"
TASK = "storage.disk_tasks.disk_plan_apply_task"
SCAN_KIND = "storage.disks_scan"
SCAN_TASK = "storage.disk_tasks.disk_scan_task"
# A plan is applied only from a reading this recent: a disk swapped since is not wiped unseen.
SCAN_FRESH = timedelta(minutes=10)
SCANS_KEPT = 20  # per host; older readings are of no use to anyone
READ_AGAIN = "Read the disks again first"
NOT_READ = "The server's disks have not been read yet: the server's worker reads them when you ask."
AUTO = "auto"  # the profile hostops chooses by the number of disks
PROFILES = (AUTO, *hd.PROFILE_MIN_DISKS)
DEFAULT_LABEL = "data"


class DiskPlanError(Exception):
    """A refused request, in words for the admin; nothing was queued or run."""


class DiskScanBusy(DiskPlanError):
    """A reading of the disks is queued or running already; the page shows it."""


@dataclass(frozen=True)
class DiskChoice:
    """What the admin chose on the page: the disks (empty: every free one), the profile, the
    filesystem's label and where it is mounted."""

    devices: tuple[str, ...] = ()
    profile: str = AUTO
    label: str = DEFAULT_LABEL
    mount_target: str = ""

    @property
    def target(self) -> str:
        return self.mount_target or settings.STORAGE_ROOT


@dataclass(frozen=True)
class DiskRow:
    """One disk of the table: what is on it, and why it may not be used (in words)."""

    disk: hd.Disk
    contents: list[str]
    reasons: list[str]
    usable: bool  # free to be in an array (old signatures are wiped only once confirmed)


@dataclass(frozen=True)
class Survey:
    """The host's disks as the worker read them at ``read_at`` (None: never read, and ``error``
    says so); ``error`` says why they could not be read."""

    disks: list[hd.Disk] = field(default_factory=list)
    rows: list[DiskRow] = field(default_factory=list)
    error: str = ""
    bcache: bool = False  # the host's kernel has bcache (only named in the plan, never set up)
    read_at: datetime | None = None
    host: str = ""

    @property
    def candidates(self) -> list[str]:
        return [row.disk.path for row in self.rows if row.usable]

    @property
    def stale(self) -> bool:
        """Too old to apply a plan from (or never read)."""
        return self.read_at is None or timezone.now() - self.read_at > SCAN_FRESH


def survey_of(
    disks: list[hd.Disk], *, bcache: bool, read_at: datetime | None = None, host: str = "", error: str = ""
) -> Survey:
    """The table's rows for disks read on a host (pure). Loop devices count only with
    STORAGE_DISKS_INCLUDE_LOOP."""
    include_loop = settings.STORAGE_DISKS_INCLUDE_LOOP
    rows = []
    for disk in disks:
        left_out = hd.left_out(disk, disks, include_loop=include_loop)
        if left_out is None:
            continue
        reasons = left_out or hd.in_use(disk, disks)
        rows.append(DiskRow(disk, _contents(disk), reasons, usable=not left_out))
    return Survey(disks, rows, error, bcache, read_at, host)


def disk_survey(scan: DiskScan | None) -> Survey:
    """The survey of a stored scan (None: the disks were never read)."""
    if scan is None:
        return Survey(error=NOT_READ)
    if scan.error:
        return Survey(error=scan.error, read_at=scan.read_at, host=scan.host.name)
    disks = disks_from_json(scan.disks)
    return survey_of(disks, bcache=scan.bcache_supported, read_at=scan.read_at, host=scan.host.name)


def disk_scan_latest(host: Host | None = None) -> DiskScan | None:
    """The newest reading of the host's disks (the local host's by default)."""
    host = host or Host.local()
    return DiskScan.objects.filter(host=host).select_related("host").first()


def disk_scan_operation_latest() -> Operation | None:
    """The running or last reading of the disks, for the page."""
    return Operation.objects.filter(kind=SCAN_KIND).order_by("-created").first()


# --- storing a Disk as JSON -----------------------------------------------------------------


def disk_to_json(disk: hd.Disk) -> dict[str, Any]:
    """A Disk as JSON, its partitions and holders nested; disk_from_json gives it back equal."""
    return {
        "name": disk.name,
        "path": disk.path,
        "size": disk.size,
        "rotational": disk.rotational,
        "model": disk.model,
        "serial": disk.serial,
        "transport": disk.transport,
        "type": disk.type,
        "mountpoints": list(disk.mountpoints),
        "fstype": disk.fstype,
        "children": [disk_to_json(child) for child in disk.children],
        "removable": disk.removable,
        "read_only": disk.read_only,
        "uuid": disk.uuid,
        "signatures": list(disk.signatures),
        "probe_error": disk.probe_error,
    }


def disk_from_json(data: dict[str, Any]) -> hd.Disk:
    return hd.Disk(
        name=str(data["name"]),
        path=str(data["path"]),
        size=int(data["size"]),
        rotational=bool(data["rotational"]),
        model=str(data["model"]),
        serial=str(data["serial"]),
        transport=str(data["transport"]),
        type=str(data["type"]),
        mountpoints=tuple(str(point) for point in data.get("mountpoints", ())),
        fstype=None if data.get("fstype") is None else str(data["fstype"]),
        children=tuple(disk_from_json(child) for child in data.get("children", ())),
        removable=bool(data.get("removable", False)),
        read_only=bool(data.get("read_only", False)),
        uuid=None if data.get("uuid") is None else str(data["uuid"]),
        signatures=tuple(str(kind) for kind in data.get("signatures", ())),
        probe_error=str(data.get("probe_error", "")),
    )


def disks_to_json(disks: Iterable[hd.Disk]) -> list[dict[str, Any]]:
    return [disk_to_json(disk) for disk in disks]


def disks_from_json(data: Iterable[dict[str, Any]]) -> list[hd.Disk]:
    return [disk_from_json(entry) for entry in data]


def _contents(disk: hd.Disk) -> list[str]:
    """What is on a disk, for people: its own signatures, then each partition's."""
    said = []
    tables = [kind for kind in disk.signatures if kind != disk.fstype]
    if tables:
        said.append(f"partition table ({', '.join(tables)})")
    if disk.fstype:
        said.append(f"{disk.fstype} filesystem" + (f" at {', '.join(disk.mountpoints)}" if disk.mountpoints else ""))
    elif disk.mountpoints:
        said.append(f"in use at {', '.join(disk.mountpoints)}")
    for child in disk.children:
        what = child.fstype or ("partition" if child.type == "part" else child.type)
        where = f" at {', '.join(child.mountpoints)}" if child.mountpoints else ""
        said.append(f"{child.name}: {what}{where}")
    return said


def disk_plan(survey: Survey, choice: DiskChoice) -> hd.Plan:
    """The plan for the admin's choice; DiskPlanError for a choice hostops refuses."""
    if survey.error:
        raise DiskPlanError(survey.error)
    stray = sorted(set(choice.devices) - set(survey.candidates))
    if stray:
        rows = {row.disk.path: row for row in survey.rows}
        said = [f"{path} ({'; '.join(rows[path].reasons)})" if path in rows else path for path in stray]
        raise DiskPlanError(f"{', '.join(said)}: not free for an array; choose among {_names(survey.candidates)}.")
    if choice.profile not in PROFILES:
        raise DiskPlanError(f"{choice.profile!r} is not a profile; choose {', '.join(PROFILES)}.")
    try:
        return hd.propose(
            survey.disks,
            include_loop=settings.STORAGE_DISKS_INCLUDE_LOOP,
            bcache_available=survey.bcache,
            label=choice.label,
            mount_target=choice.target,
            profile=None if choice.profile == AUTO else choice.profile,
            only=set(choice.devices) if choice.devices else None,
        )
    except hd.DiskRefused as exc:
        raise DiskPlanError(str(exc)) from exc


def _check_fresh(scan: DiskScan | None) -> None:
    """A plan is applied only from a reading that still stands for the disks."""
    if scan is None:
        raise DiskPlanError(f"The server's disks have not been read yet. {READ_AGAIN}; nothing was queued.")
    if scan.error:
        raise DiskPlanError(f"The last reading of the disks failed ({scan.error}). {READ_AGAIN}; nothing was queued.")
    age = timezone.now() - scan.read_at
    if age > SCAN_FRESH:
        minutes = int(age.total_seconds() // 60)
        raise DiskPlanError(
            f"The disks were read {minutes} minutes ago; a plan is applied only from a reading under "
            f"{int(SCAN_FRESH.total_seconds() // 60)} minutes old. {READ_AGAIN}; nothing was queued."
        )
    since = Operation.objects.filter(kind=KIND, started__gt=scan.read_at).order_by("-started").first()
    if since is not None:
        raise DiskPlanError(
            f"An apply began at {timezone.localtime(since.started):%H:%M:%S}, after the disks were read, so they "
            f"may have changed. {READ_AGAIN}; nothing was queued."
        )


def _names(paths: Iterable[str]) -> str:
    return ", ".join(paths) or "none (no disk is free)"


def plan_script(plan: hd.Plan) -> str:
    """The plan as a sysadmin reads it: notes as comments, then the commands, one a line."""
    return hd.render(plan)


def plan_digest(plan: hd.Plan) -> str:
    """A fingerprint of the commands, so an apply of a plan that changed since the page showed
    it (a disk plugged in, another mounted) is refused rather than run unseen."""
    return hashlib.sha256(json.dumps(plan.commands).encode()).hexdigest()


def disk_apply_latest() -> Operation | None:
    """The running or last apply, for the page."""
    return Operation.objects.filter(kind=KIND).order_by("-created").first()


def disk_plan_apply(
    *,
    devices: Sequence[str],
    profile: str,
    label: str,
    mount_target: str,
    confirmed_disks: Iterable[str],
    typed_confirmation: str,
    shown_digest: str | None = None,
    actor: User,
    context: AuditContext,
) -> Operation:
    """Queue the plan for the chosen disks on the local host's worker, after checking what the
    admin typed and ticked against the plan made from the disks as they are now. Refused
    (DiskPlanError, nothing queued): a mismatched confirmation, a disk with an old signature not
    ticked, a ticked disk outside the plan, a plan changed since ``shown_digest``, or another
    apply queued or running; a reading of the disks that is missing, failed, older than
    SCAN_FRESH or older than the last apply's start ("Read the disks again first")."""
    choice = DiskChoice(tuple(devices), profile, label, mount_target)
    scan = disk_scan_latest()
    _check_fresh(scan)
    plan = disk_plan(disk_survey(scan), choice)
    if plan.profile == "none":
        raise DiskPlanError("There is no free disk to make an array of. Nothing was queued.")
    if shown_digest is not None and shown_digest != plan_digest(plan):
        raise DiskPlanError(
            "The disks changed since this page showed the plan; read the new plan and confirm again. "
            "Nothing was queued."
        )
    if typed_confirmation != plan.confirmation:
        raise DiskPlanError(f"The confirmation does not match: type {plan.confirmation!r}. Nothing was queued.")
    confirmed = sorted({name if name.startswith("/dev/") else f"/dev/{name}" for name in confirmed_disks})
    stray = [path for path in confirmed if path not in plan.needs_confirmation]
    if stray:
        raise DiskPlanError(f"{_names(stray)}: nothing to confirm there (no old signature). Nothing was queued.")
    missing = [path for path in plan.needs_confirmation if path not in confirmed]
    if missing:
        raise DiskPlanError(
            f"{_names(missing)} hold{'s' if len(missing) == 1 else ''} old signatures: tick "
            f"{'it' if len(missing) == 1 else 'each'} by name to let the apply wipe "
            f"{'it' if len(missing) == 1 else 'them'}. Nothing was queued."
        )
    local = Host.local()
    params: dict[str, Any] = {
        "devices": list(plan.devices),
        "profile": profile,
        "label": plan.label,
        "mount_target": plan.mount_target,
        "confirmed_disks": confirmed,
        "typed_confirmation": typed_confirmation,
        "commands": plan.commands,  # what the admin saw; the worker compares, it never runs these
    }
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=local.pk)  # one apply at a time
        busy = Operation.objects.filter(kind=KIND).in_progress().first()
        if busy is not None:
            raise DiskPlanError(
                f"Another apply is {busy.get_state_display().lower()} (started by {busy.actor or 'the system'}); "
                "wait until it ends. Nothing was queued."
            )
        operation = operation_create(
            kind=KIND, actor=actor, target=host, params=params, message="Waiting for the server's worker"
        )
        audit_record(
            action="storage.disks_apply",
            actor=actor,
            target=host,
            context=context,
            operation=operation.pk,
            devices=list(plan.devices),
            profile=plan.profile,
            label=plan.label,
            mount_target=plan.mount_target,
            wiped=confirmed,
        )
        operation_enqueue(operation, task=TASK, queue=host.queue)
    return operation


def disk_scan_request(*, actor: User, context: AuditContext) -> Operation:
    """Ask the local host's worker to read the disks (lsblk, wipefs) and store what it finds.
    DiskScanBusy while a reading is queued or running: one is enough."""
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=Host.local().pk)  # one reading at a time
        busy = Operation.objects.filter(kind=SCAN_KIND).in_progress().first()
        if busy is not None:
            raise DiskScanBusy(
                f"The disks are being read already ({busy.get_state_display().lower()}, asked by "
                f"{busy.actor or 'the system'}); the page shows them once the worker is done."
            )
        operation = operation_create(
            kind=SCAN_KIND, actor=actor, target=host, message="Waiting for the server's worker"
        )
        audit_record(action="storage.disks_scan", actor=actor, target=host, context=context, operation=operation.pk)
        operation_enqueue(operation, task=SCAN_TASK, queue=host.queue)
    return operation


# --- the worker side ----------------------------------------------------------------------


def disk_scan_store(host: Host, *, operation_id: int | None = None) -> DiskScan:
    """Read this host's disks and store them (the worker only: it runs on the host, as root).
    A failed read is stored too, with its error: the page must not go on showing older disks as
    if they were current. The oldest readings beyond SCANS_KEPT are dropped."""
    try:
        found, bcache = hd.list_disks(), hd.bcache_supported()
    except (HostOpsError, OSError) as exc:
        logger.warning("could not read the disks: %s", exc)
        scan = DiskScan.objects.create(
            host=host, operation_id=operation_id, error=f"The disks could not be read: {exc}"
        )
    else:
        scan = DiskScan.objects.create(
            host=host, operation_id=operation_id, disks=disks_to_json(found), bcache_supported=bcache
        )
    old = DiskScan.objects.filter(host=host).values_list("pk", flat=True)[SCANS_KEPT:]
    DiskScan.objects.filter(pk__in=list(old)).delete()
    return scan


def disk_scan_run(operation_id: int) -> None:
    """Claim the reading, read the disks and store them. Runs once: a row already claimed or
    final is left alone (reading twice would do no harm, but the history would say so)."""
    if not operation_claim(operation_id):
        return
    operation = Operation.objects.get(pk=operation_id)
    host = Host.objects.filter(pk=operation.target_id).first() or Host.local()
    operation_progress(operation_id, percent=10, message="Reading the disks (lsblk, wipefs)")
    scan = disk_scan_store(host, operation_id=operation_id)
    if scan.error:
        operation_fail(operation_id, error=scan.error)
        return
    survey = disk_survey(scan)
    free = len(survey.candidates)
    operation_succeed(
        operation_id,
        message=f"Read {len(survey.rows)} disk{'s' if len(survey.rows) != 1 else ''} on {host}; "
        f"{free} free for an array",
    )


def disk_plan_run(operation_id: int) -> None:
    """Claim the apply, read the disks again, rebuild the plan from the saved choice, refuse if
    it is not the plan the admin confirmed, then run it with each command and its output in the
    Operation's log. Runs once: a row already claimed or final is left alone."""
    if not operation_claim(operation_id):
        return
    operation = Operation.objects.get(pk=operation_id)
    params = operation.params
    host = Host.objects.filter(pk=operation.target_id).first() or Host.local()
    try:
        plan = _rebuilt(params, host)
        _run(operation_id, plan, params)
    except (DiskPlanError, HostOpsError) as exc:  # DiskRefused, DiskSetupFailed, a failed lsblk
        operation_fail(operation_id, error=str(exc))
        disk_scan_store(host)  # the page shows the disks as the failure left them
        notify_admins(
            title="The disk plan was not applied",
            body=str(exc),
            url=reverse("storage:disks"),
            level=Notification.Level.ERROR,
        )
        return
    done = f"btrfs {plan.profile} over {len(plan.devices)} disks, mounted at {plan.mount_target}"
    fstab = f"LABEL={plan.label} {plan.mount_target} btrfs defaults 0 0"
    operation_progress(operation_id, log=f"# then add to /etc/fstab: {fstab}")  # before: a final row takes no log
    operation_succeed(operation_id, message=f"Done: {done}. Add it to /etc/fstab (see the log).")
    disk_scan_store(host)  # the page shows the new filesystem on the disks
    notify_admins(title="The disk plan was applied", body=done + ".", url=reverse("storage:disks"))


def _rebuilt(params: dict[str, Any], host: Host) -> hd.Plan:
    """The plan made again from the disks as the worker reads them now (stored, for the page)."""
    choice = DiskChoice(tuple(params["devices"]), params["profile"], params["label"], params["mount_target"])
    survey = disk_survey(disk_scan_store(host))
    try:
        plan = disk_plan(survey, choice)
    except DiskPlanError as exc:
        raise DiskPlanError(f"The disks changed since the plan was confirmed: {exc} Nothing was run.") from exc
    if plan.devices != choice.devices or plan.commands != params["commands"]:
        gone = [path for path in choice.devices if path not in plan.devices]
        left = [f"{path}: {'; '.join(plan.refused.get(path, ['changed']))}" for path in gone]
        detail = "; ".join(left) or "the commands would differ from those confirmed"
        raise DiskPlanError(
            f"The disks changed since the plan was confirmed ({detail}). Nothing was run; make the plan again."
        )
    return plan


def _run(operation_id: int, plan: hd.Plan, params: dict[str, Any]) -> None:
    total = len(plan.commands)
    started = 0

    def on_output(line: str) -> None:
        nonlocal started
        if line.startswith("$ "):
            operation_progress(
                operation_id, percent=started * 100 // total, message=f"Running {line[2:]}"[:300], log=line
            )
            started += 1
        else:
            operation_progress(operation_id, log=line)

    note = f"# btrfs {plan.profile} over {', '.join(plan.devices)}; confirmed: {plan.confirmation}"
    operation_progress(operation_id, message="Checking the disks again", log=note)
    hd.apply(
        plan,
        confirmed_disks=params["confirmed_disks"],
        typed_confirmation=params["typed_confirmation"],
        expected_confirmation=plan.confirmation,
        on_output=on_output,
    )
