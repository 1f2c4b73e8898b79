"""The member's own account: Linux identity, SSH keys and notifications. Only their own data."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.access import AuthedRequest, get_sshkey_for_user
from portal.audit import AuditContext
from portal.forms.account import KEY_TAKEN_MESSAGE, SSHKeyAddForm
from portal.models import Quota, SSHKey
from portal.services import notifications_mark_read as mark_all_read
from portal.services import sshkey_add, sshkey_remove

NOTIFICATIONS_PER_PAGE = 50


def _keys_response(request: AuthedRequest, form: SSHKeyAddForm) -> HttpResponse:
    """The whole page, or for htmx only the keys section (table and form) it swaps."""
    context: dict[str, Any] = {"form": form, "keys": list(request.user.ssh_keys.all())}
    if request.htmx:
        return render(request, "portal/_sshkey_list.html", context)
    context["quota"] = Quota.objects.filter(user=request.user).first()
    return render(request, "portal/account.html", context)


def _add_key(request: AuthedRequest, form: SSHKeyAddForm) -> SSHKey | None:
    try:
        return sshkey_add(
            user=request.user, name=form.cleaned_data["name"], parsed=form.parsed_key, context=AuditContext.of(request)
        )
    except IntegrityError:
        # Someone registered the same key between the form's check and the insert.
        form.add_error("public_key", KEY_TAKEN_MESSAGE)
        return None


@require_http_methods(["GET", "POST"])
def account_page(request: AuthedRequest) -> HttpResponse:
    """Identity and quota at a glance; POST adds an SSH key."""
    form = SSHKeyAddForm(request.POST if request.method == "POST" else None, user=request.user)
    if form.is_bound and form.is_valid():
        key = _add_key(request, form)
        if key is not None:
            messages.success(request, f"Added the key “{key.name}” ({key.fingerprint}).")
            if not request.htmx:
                return redirect("account")
            form = SSHKeyAddForm(user=request.user)
    return _keys_response(request, form)


@require_POST
def sshkey_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    key = get_sshkey_for_user(request, pk)
    sshkey_remove(key=key, actor=request.user, context=AuditContext.of(request))
    messages.success(request, f"Removed the key “{key.name}”.")
    if request.htmx:
        return _keys_response(request, SSHKeyAddForm(user=request.user))
    return redirect("account")


def _safe_link(url: str) -> str:
    # Links come from the portal itself; still, never render a javascript: or data: URL.
    return url if url and urlsplit(url).scheme in ("", "http", "https") else ""


@require_GET
def notification_list(request: AuthedRequest) -> HttpResponse:
    page = Paginator(request.user.notifications.all(), NOTIFICATIONS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(note, _safe_link(note.url)) for note in page]
    return render(request, "portal/notification_list.html", {"page": page, "rows": rows})


@require_POST
def notifications_mark_read(request: AuthedRequest) -> HttpResponse:
    count = mark_all_read(user=request.user)
    messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} as read.")
    return redirect("notifications")
