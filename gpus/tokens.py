"""Members' secrets for the JSON API and the calendar feeds. A secret is its kind's prefix and
32 random bytes; only its SHA-256 is stored (with the first characters, to tell tokens apart),
so the portal can check a secret but never show it again."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from gpus.models import Token
from portal.audit import AuditContext, audit_record
from portal.models import User

PREFIX_LENGTH = 12
# A token is marked used at most this often, so a script polling every second writes no row each time.
LAST_USED_RESOLUTION = timedelta(minutes=1)
SECRET_MAX_LENGTH = 100  # far longer than any secret made here; anything longer is not one


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def member_active(user: User) -> bool:
    """Tokens of a suspended (or not yet signed-in) member open nothing."""
    return user.is_active and user.status == User.Status.ACTIVE


@transaction.atomic
def token_create(
    *, user: User, kind: str, name: str, actor: User | None, context: AuditContext | None = None
) -> tuple[Token, str]:
    """Make a token of ``kind`` for ``user``; returns it with its secret, which is never stored."""
    if kind not in Token.PREFIXES:
        raise ValueError(f"unknown token kind {kind!r}")
    secret = Token.PREFIXES[kind] + secrets.token_urlsafe(32)
    token = Token.objects.create(
        user=user, kind=kind, name=name.strip()[:60], prefix=secret[:PREFIX_LENGTH], digest=_digest(secret)
    )
    audit_record(
        action="token.create",
        actor=actor,
        target=token,
        context=context,
        kind=kind,
        name=token.name,
        prefix=token.prefix,
    )
    return token, secret


@transaction.atomic
def token_revoke(*, token: Token, actor: User | None, context: AuditContext | None = None) -> Token:
    """Stop a token from working. The row stays, with its last use; revoking twice changes nothing."""
    token = Token.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        action="token.revoke", actor=actor, target=token, context=context, kind=token.kind, prefix=token.prefix
    )
    return token


def token_authenticate(secret: str, kind: str) -> Token | None:
    """The active token of ``kind`` whose secret this is, or None. The lookup is by the secret's
    digest, so the time it takes says nothing about how much of a guess was right."""
    if not secret or len(secret) > SECRET_MAX_LENGTH or not secret.startswith(Token.PREFIXES[kind]):
        return None
    token = Token.objects.select_related("user").filter(digest=_digest(secret), kind=kind).first()
    if token is None or not token.active or not member_active(token.user):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        Token.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
