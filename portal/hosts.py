"""The GPU servers admins manage on the Servers page: adding one, editing it, deleting one
nothing lives on, and what the page shows about each (state, its worker's heartbeat, who and
what is placed there) in a fixed number of queries.

The core knows nothing of workspaces or bookings, yet must not delete or rename a server that
still has them. Their models protect ``Host`` (``on_delete=PROTECT``), so Django's own
deletion collector names them without this module importing a feature app."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import router, transaction
from django.db.models import Count, Model, ProtectedError
from django.db.models.deletion import Collector
from django.utils import timezone

from portal.audit import AuditContext, audit_record
from portal.models import Host, User, WorkerHeartbeat

LOCAL = "local"
_NAMED = 5  # what a refusal names of each kind before it says "and N more"


class HostRefused(Exception):
    """A change to a server that would strand what lives on it; the message says what."""


@dataclass(frozen=True)
class Heartbeat:
    """A server's queue as its worker last answered: when, which worker, and whether that is late."""

    at: datetime | None
    worker: str
    late: bool

    @property
    def words(self) -> str:
        if self.at is None:
            return "worker never seen"
        return "worker down" if self.late else "worker up"


@dataclass(frozen=True)
class HostRow:
    host: Host
    members: int
    heartbeat: Heartbeat


def host_rows(*, now: datetime | None = None) -> list[HostRow]:
    """Every server with its placed members and its queue's heartbeat (three queries)."""
    hosts = list(Host.objects.order_by("name"))
    placed = dict(User.objects.values_list("host_id").annotate(count=Count("id")).order_by())
    beats = {row.queue: row for row in WorkerHeartbeat.objects.filter(queue__in=[h.queue for h in hosts])}
    rows = []
    for host in hosts:
        members = placed.get(host.pk, 0) + (placed.get(None, 0) if host.name == LOCAL else 0)  # None: the local one
        rows.append(HostRow(host, members, heartbeat_of(beats.get(host.queue), now=now)))
    return rows


def heartbeat_of(row: WorkerHeartbeat | None, *, now: datetime | None = None) -> Heartbeat:
    """Late past WORKER_HEARTBEAT_STALE_SECONDS, the age /healthz calls a worker down."""
    if row is None:
        return Heartbeat(None, "", late=True)
    stale = timedelta(seconds=settings.WORKER_HEARTBEAT_STALE_SECONDS)
    return Heartbeat(row.seen_at, row.worker, late=(now or timezone.now()) - row.seen_at > stale)


def worker_command(host: Host) -> str:
    """The Celery worker a server runs next to its Docker engine (docker-compose.host.yml runs it)."""
    return f"celery -A project worker -Q {host.queue} --hostname {host.name}@%h"


def compose_env(host: Host) -> list[str]:
    """The lines of the server's .env that docker-compose.host.yml reads for its worker."""
    lines = [f"PORTAL_HOST_NAME={host.name}"]
    if host.queue != default_queue(host.name):
        lines.append(f"PORTAL_HOST_QUEUE={host.queue}")
    return lines


def default_queue(name: str) -> str:
    return f"host.{name}"


def host_create(*, actor: User, context: AuditContext, values: dict[str, Any]) -> Host:
    """A new server, its queue ``host.<name>`` unless one is given. The caller validated ``values``."""
    with transaction.atomic():
        host = Host(**values)
        host.queue = host.queue or default_queue(host.name)
        host.full_clean()  # another admin may have taken the name or queue a moment ago
        host.save()
        audit_record(action="host.create", actor=actor, target=host, context=context, server=_described(host))
    return host


def host_update(*, host: Host, actor: User, context: AuditContext, values: dict[str, Any]) -> Host:
    """Change a server. A rename is refused for the local server, and for any server with
    workspaces, bookings or members: its containers carry its name (label ``portal.host``)."""
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        before = _described(locked)
        wanted = values.get("name", locked.name)
        reason = _rename_refusal(locked) if wanted != locked.name else ""
        if not reason:
            for field, value in values.items():
                setattr(locked, field, value)
            locked.queue = locked.queue or default_queue(locked.name)
            locked.full_clean()
            locked.save()
            after = _described(locked)
            changes = {field: [before[field], after[field]] for field in after if before[field] != after[field]}
            if changes:
                audit_record(action="host.update", actor=actor, target=locked, context=context, changes=changes)
            return locked
    _audit_refusal("host.update", locked, actor=actor, context=context, reason=reason, wanted=wanted)
    raise HostRefused(reason)


def _rename_refusal(host: Host) -> str:
    if host.name == LOCAL:
        return "The local server is the one the portal runs on; it keeps the name local."
    if there := host_dependents(host):
        return f"{host.name} can't be renamed while it has {there}: their containers carry its name."
    return ""


def host_delete(*, host: Host, actor: User, context: AuditContext) -> None:
    """Delete a server nothing lives on: no member placed there, no workspace, no booking.
    Its GPU inventory, disk readings and heartbeat row go with it."""
    with transaction.atomic():
        locked = Host.objects.select_for_update().get(pk=host.pk)
        if locked.name == LOCAL:
            reason = "The local server can't be deleted: the portal and its storage run there."
        elif there := host_dependents(locked):
            reason = f"{locked.name} still has {there}. Move or remove them first."
        else:
            WorkerHeartbeat.objects.filter(queue=locked.queue).delete()
            audit_record(action="host.delete", actor=actor, target=locked, context=context, server=_described(locked))
            locked.delete()
            return
    _audit_refusal("host.delete", locked, actor=actor, context=context, reason=reason)
    raise HostRefused(reason)


def host_dependents(host: Host) -> str:
    """What keeps the server from going, in words ("2 members placed there (alice, bob) and
    1 workspace (ws-alice)"), or "" when nothing does. Found by Django's deletion collector:
    every model that protects Host, whichever app it is in."""
    collector = Collector(using=router.db_for_write(Host))
    try:
        collector.collect([host])
    except ProtectedError as exc:
        return _words(exc.protected_objects)
    return ""


def _words(objects: set[Model]) -> str:
    kinds: dict[type[Model], list[str]] = defaultdict(list)
    for thing in objects:
        kinds[type(thing)].append(str(thing))
    parts = []
    for model, labels in sorted(kinds.items(), key=lambda item: (item[0] is not User, item[0].__name__)):
        shown = ", ".join(sorted(labels)[:_NAMED])
        more = f" and {len(labels) - _NAMED} more" if len(labels) > _NAMED else ""
        parts.append(f"{len(labels)} {_kind(model, len(labels))} ({shown}{more})")
    return " and ".join(parts)


def _kind(model: type[Model], count: int) -> str:
    if model is User:
        return "member placed there" if count == 1 else "members placed there"
    meta = model._meta
    return str(meta.verbose_name if count == 1 else meta.verbose_name_plural)


def _audit_refusal(action: str, host: Host, *, actor: User, context: AuditContext, reason: str, **detail: Any) -> None:
    # Outside the refused transaction, so the row stays.
    audit_record(action=action, actor=actor, target=host, context=context, refused=True, reason=reason, **detail)


def _described(host: Host) -> dict[str, str]:
    return {"name": host.name, "docker_url": host.docker_url, "queue": host.queue, "ssh_address": host.ssh_address}
