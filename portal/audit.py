"""The audit log: one call per admin action or refused security-relevant request."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from portal.models import AuditEvent, User


@dataclass(frozen=True)
class AuditContext:
    """Where a change came from, as the audit log records it. Services take this (with the
    actor) instead of the HttpRequest, so the worker, the reconciler and beat call the same
    actions as the views: with ``SYSTEM`` and no actor."""

    ip: str | None = None

    @classmethod
    def of(cls, request: HttpRequest) -> AuditContext:
        return cls(ip=client_ip(request))


SYSTEM = AuditContext()


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address. A request straight from a client is taken at REMOTE_ADDR. Only when
    REMOTE_ADDR is a trusted proxy (``TRUSTED_PROXIES``) is X-Forwarded-For read, from the right:
    each trusted hop is skipped and the first address a trusted proxy did not write itself is
    the client (anything further left is the client's own claim)."""
    if request is None:
        return None
    remote = request.META.get("REMOTE_ADDR", "") or None
    if not _is_trusted(remote):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop):
            return hop if _is_address(hop) else remote
    return hops[0] if hops and _is_address(hops[0]) else remote


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(text: str | None) -> bool:
    if not text:
        return False
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(address in network for network in settings.TRUSTED_PROXIES)


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    target: Any = None,
    request: HttpRequest | None = None,
    context: AuditContext | None = None,
    refused: bool = False,
    **detail: Any,
) -> AuditEvent:
    """Write one audit row. ``target`` may be any model instance (its type, pk and str are
    kept). Services pass ``context``; views recording a refusal pass their ``request``."""
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user  # type: ignore[assignment]
    target_type = target_id = target_label = ""
    if target is not None:
        target_type = getattr(getattr(target, "_meta", None), "model_name", type(target).__name__.lower())
        target_id = str(getattr(target, "pk", "") or "")
        target_label = str(target)[:254]
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=(actor.username if actor else detail.pop("actor_label", "")) or "",
        outcome=AuditEvent.Outcome.REFUSED if refused else AuditEvent.Outcome.OK,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        ip=context.ip if context is not None else client_ip(request),
        detail=detail,
    )
