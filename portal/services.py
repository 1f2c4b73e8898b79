"""Every state change of members, their keys and quotas goes through one function here.
Each owns its transaction and writes its audit row."""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any, TypeVar

from allauth.account.models import EmailAddress
from celery import current_app
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import models, transaction
from django.utils import timezone

from portal.audit import AuditContext, audit_record
from portal.models import AccessRequest, Notification, Quota, SitePolicy, SSHKey, User
from portal.sshkeys import ParsedKey


@transaction.atomic
def member_invite(
    *, email: str, username: str, actor: User, context: AuditContext | None = None, is_staff: bool = False
) -> User:
    """Create an invited member with team-default quota; their first Google login attaches here."""
    email = email.strip().lower()
    user = User(username=username, email=email, status=User.Status.INVITED, invited_by=actor, is_staff=is_staff)
    user.set_unusable_password()
    user.full_clean()
    user.save()
    # A verified address lets allauth match the first Google login to this row.
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    Quota.objects.create(user=user, **Quota.team_defaults())
    AccessRequest.objects.filter(email=email, handled_at=None).update(handled_at=timezone.now(), handled_by=actor)
    audit_record(action="member.invite", actor=actor, target=user, context=context, email=email)
    return user


@transaction.atomic
def member_activate(*, user: User) -> None:
    """First successful login of an invited member."""
    if user.status == User.Status.INVITED:
        user.status = User.Status.ACTIVE
        user.save(update_fields=["status"])
        audit_record(action="member.first_login", actor=user, target=user)


logger = logging.getLogger(__name__)


def _end_sessions(user: User) -> None:
    # Bumping session_version changes the session hash, so every existing session of the
    # member stops validating at its next request; database rows are removed too.
    user.session_version += 1
    user.save(update_fields=["session_version"])
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            store_class(session_key=session.session_key).delete()  # the cached copy too


@transaction.atomic
def member_suspend(*, user: User, actor: User, reason: str = "", context: AuditContext | None = None) -> None:
    """Block login and end every session of the member at once."""
    user.status = User.Status.SUSPENDED
    user.is_active = False
    user.save(update_fields=["status", "is_active"])
    _end_sessions(user)
    audit_record(action="member.suspend", actor=actor, target=user, context=context, reason=reason)


@transaction.atomic
def member_reactivate(*, user: User, actor: User, context: AuditContext | None = None) -> None:
    user.is_active = True
    user.status = User.Status.ACTIVE if user.last_login else User.Status.INVITED
    user.save(update_fields=["status", "is_active"])
    audit_record(action="member.reactivate", actor=actor, target=user, context=context)


@transaction.atomic
def member_set_capabilities(
    *,
    user: User,
    actor: User,
    can_sudo: bool,
    can_docker: bool,
    is_staff: bool,
    context: AuditContext | None = None,
) -> None:
    """Grant or revoke sudo / Docker inside the workspace and the admin role."""
    changes = {
        field: value
        for field, value in (("can_sudo", can_sudo), ("can_docker", can_docker), ("is_staff", is_staff))
        if getattr(user, field) != value
    }
    if not changes:
        return
    for field, value in changes.items():
        setattr(user, field, value)
    user.save(update_fields=list(changes))
    audit_record(action="member.capabilities", actor=actor, target=user, context=context, **changes)  # type: ignore[arg-type]


@transaction.atomic
def quota_update(*, quota: Quota, actor: User, values: dict[str, Any], context: AuditContext | None = None) -> None:
    """Save new limits (already validated by QuotaForm); the audit row keeps old and new."""
    changed = apply_changes(quota, values)
    # A member created outside the portal may have no quota row yet: save even if unchanged.
    if not changed and quota.pk is not None:
        return
    quota.full_clean()
    quota.save()
    audit_record(action="quota.update", actor=actor, target=quota.user, context=context, changes=changed)


@transaction.atomic
def sshkey_add(*, user: User, name: str, parsed: ParsedKey, context: AuditContext | None = None) -> SSHKey:
    key = SSHKey.objects.create(
        user=user,
        name=name,
        key_type=parsed.key_type,
        bits=parsed.bits,
        fingerprint=parsed.fingerprint,
        public_key=parsed.canonical,
    )
    audit_record(action="sshkey.add", target=key, context=context, actor=user, fingerprint=parsed.fingerprint)
    return key


@transaction.atomic
def sshkey_remove(*, key: SSHKey, actor: User, context: AuditContext | None = None) -> None:
    audit_record(action="sshkey.remove", actor=actor, target=key, context=context, fingerprint=key.fingerprint)
    key.delete()


@transaction.atomic
def access_request_create(*, email: str, name: str, message: str = "") -> AccessRequest:
    """Record a request to join (once per address) and tell every admin."""
    access, created = AccessRequest.objects.get_or_create(
        email=email.lower(), defaults={"name": name[:200], "message": message}
    )
    if created:
        notify_admins(
            title=f"{name or email} asks for access",
            body=f"{email} signed in with Google but has no invitation.",
            url="/members/?status=requests",
        )
    return access


def notify_admins(*, title: str, body: str = "", url: str = "", level: str = Notification.Level.INFO) -> None:
    admins = User.objects.filter(is_staff=True, is_active=True)
    Notification.objects.bulk_create(
        [Notification(user=admin, title=title, body=body, url=url, level=level) for admin in admins]
    )
    slack_post_later(f"{title}\n{body}".strip())


def notify_member(
    *, user: User, title: str, body: str = "", url: str = "", level: str = Notification.Level.INFO, slack: bool = True
) -> Notification:
    """Tell one member in the portal and, unless ``slack`` is off, on the team's Slack."""
    note = Notification.objects.create(user=user, level=level, title=title, body=body, url=url)
    if slack:
        slack_post_later(f"{user.username}: {title}. {body}".strip())
    return note


def slack_post_later(text: str) -> None:
    """Post to the team's Slack channel from the worker once the transaction commits (sent by
    name: services never import tasks). A broker outage loses the Slack copy, never the
    portal's own notification."""

    def send() -> None:
        try:
            current_app.send_task("portal.tasks.slack_post_task", args=[text])
        except Exception:  # kombu's OperationalError; the notification row is already saved
            logger.warning("Slack notice not sent: the job queue is down")

    transaction.on_commit(send)


@transaction.atomic
def access_request_dismiss(*, access: AccessRequest, actor: User, context: AuditContext | None = None) -> None:
    """Close a request to join without inviting. The row stays, so a later sign-in with the same
    address does not notify the admins again; inviting the address later still works."""
    access.handled_at = timezone.now()
    access.handled_by = actor
    access.save(update_fields=["handled_at", "handled_by"])
    audit_record(action="access_request.dismiss", actor=actor, target=access, context=context, email=access.email)


def notifications_mark_read(*, user: User) -> int:
    """Mark every unread notification of ``user`` read; returns how many."""
    return Notification.objects.filter(user=user, read_at=None).update(read_at=timezone.now())


def apply_changes(instance: Any, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Set ``values`` on ``instance``; returns the fields that changed as {field: [old, new]}."""
    changed = {}
    for field, value in values.items():
        old = getattr(instance, field)
        if old != value:
            changed[field] = [old, value]
            setattr(instance, field, value)
    return changed


P = TypeVar("P", bound=models.Model)


@transaction.atomic
def policy_row_update(
    model: type[P], *, action: str, actor: User, values: dict[str, Any], context: AuditContext | None = None
) -> P:
    """Save a single-row policy (pk 1, with ``current()`` and ``updated_by``) from values a
    form has validated; the audit row keeps old and new. The row is locked, so two admins
    saving at once can't lose each other's change; nothing is written when nothing changed."""
    model.current()  # type: ignore[attr-defined]  # make sure the row exists before locking it
    policy = model._default_manager.select_for_update().get(pk=1)
    changed = apply_changes(policy, values)
    if not changed:
        return policy
    policy.updated_by = actor  # type: ignore[attr-defined]
    policy.full_clean()
    policy.save()
    audit_record(action=action, actor=actor, target=policy, context=context, changes=changed)
    return policy


def site_policy_update(*, actor: User, values: dict[str, Any], context: AuditContext | None = None) -> SitePolicy:
    """Save team-wide policies (already validated by IdlePolicyForm)."""
    return policy_row_update(SitePolicy, action="policy.update", actor=actor, values=values, context=context)
