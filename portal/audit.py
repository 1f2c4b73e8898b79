"""The audit log: one call per admin action or refused security-relevant request."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from portal.models import AuditEvent, User


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address. Behind Traefik the proxy's address is REMOTE_ADDR and the
    client is the last hop Traefik appended to X-Forwarded-For (Traefik overwrites any
    value the client sent unless told to trust it)."""
    if request is None:
        return None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    candidate = forwarded.split(",")[-1].strip() if forwarded else request.META.get("REMOTE_ADDR", "")
    return candidate or None


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    target: Any = None,
    request: HttpRequest | None = None,
    refused: bool = False,
    **detail: Any,
) -> AuditEvent:
    """Write one audit row. ``target`` may be any model instance (its type, pk and str are kept)."""
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
        ip=client_ip(request),
        detail=detail,
    )
