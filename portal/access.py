"""One access helper per object: each returns the object or raises 404/403 (with an audit
row for the refusal). No view filters by user inline."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from portal.audit import audit_record
from portal.models import Host, Operation, SSHKey, User

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails


class AuthedRequest(HttpRequest):
    user: User
    htmx: HtmxDetails


V = TypeVar("V", bound=Callable[..., HttpResponse])


def refuse(request: HttpRequest, action: str, target: Any = None, **detail: Any) -> PermissionDenied:
    """Audit a refused request and return the exception for the caller to raise."""
    audit_record(action=action, request=request, target=target, refused=True, path=request.path, **detail)
    return PermissionDenied()


def staff_required(view: V) -> V:
    """Admins only; anyone else gets 403 and an audit row."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_authenticated and request.user.is_staff):
            raise refuse(request, "admin_page.denied")
        return view(request, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def get_member_for_admin(request: AuthedRequest, pk: int) -> User:
    if not request.user.is_staff:
        raise refuse(request, "member.denied")
    return get_object_or_404(User.objects.select_related("quota"), pk=pk)


def get_host_for_admin(request: AuthedRequest, pk: int) -> Host:
    if not request.user.is_staff:
        raise refuse(request, "host.denied")
    return get_object_or_404(Host, pk=pk)


def get_sshkey_for_user(request: AuthedRequest, pk: int) -> SSHKey:
    key = get_object_or_404(SSHKey, pk=pk)
    if key.user_id != request.user.pk:
        raise refuse(request, "sshkey.denied", target=key)
    return key


def get_operation_for_user(request: AuthedRequest, pk: int) -> Operation:
    op = get_object_or_404(Operation, pk=pk)
    if not (request.user.is_staff or op.owner_id == request.user.pk or op.actor_id == request.user.pk):
        raise refuse(request, "operation.denied", target=op)
    return op
