"""The Offsite repository page (admins): where the repository is, what keeps the tier from
running, the repository as the worker last read it, its actions (check, create, break a stale
lock) and the pasted Google Drive token. Thin views: authorize, validate, call one service.
The page reads rows only; restic runs on the worker (backups/offsite_admin.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from backups import offsite_admin, offsite_repo
from backups.offsite_forms import BreakLockForm, CreateRepositoryForm, DriveTokenForm
from portal.access import AuthedRequest, staff_required
from portal.audit import AuditContext
from portal.models import Operation
from storage.remotes import RemotesError

RECENT_OPS = 6


def _drive_remote() -> str | None:
    """The repository's rclone remote when it is a Google Drive one (the token form is shown)."""
    remote = offsite_repo.remote_name(offsite_repo.describe())
    try:
        return remote if remote is not None and offsite_repo.remote_type(remote) == "drive" else None
    except RemotesError:
        return None  # offsite_repo.problem() says what is wrong with RCLONE_REMOTES


def _page(request: AuthedRequest, *, status: int = 200, **forms: Any) -> HttpResponse:
    row = offsite_admin.reading()
    remote = _drive_remote()
    ops = list(Operation.objects.filter(kind__in=offsite_admin.KINDS).select_related("actor")[:RECENT_OPS])
    context = {
        "location": offsite_repo.describe(),
        "password_file": settings.BACKUP_RESTIC_PASSWORD_FILE,
        "problem": offsite_repo.problem(),
        "reading": row,
        "locks": offsite_admin.locks_of(row),
        "running": next((op for op in ops if not op.is_final), None),
        "recent_ops": [op for op in ops if op.is_final],
        "create_form": forms.get("create_form") or CreateRepositoryForm(),
        "drive_remote": remote,
        "token": offsite_repo.token_info(remote) if remote else None,
        "token_form": forms.get("token_form") or DriveTokenForm(),
        "token_error": forms.get("token_error", ""),
    }
    return render(request, "backups/offsite_repo.html", context, status=status)


@staff_required
@require_GET
def offsite(request: AuthedRequest) -> HttpResponse:
    return _page(request)


@staff_required
@require_POST
def offsite_check(request: AuthedRequest) -> HttpResponse:
    try:
        offsite_admin.repository_check_start(actor=request.user, context=AuditContext.of(request))
    except offsite_admin.RepositoryError as exc:
        messages.error(request, str(exc))
        return _page(request, status=400)
    return redirect("backups:offsite")


@staff_required
@require_POST
def offsite_create(request: AuthedRequest) -> HttpResponse:
    form = CreateRepositoryForm(request.POST)
    if form.is_valid():
        try:
            offsite_admin.repository_create_start(
                typed_location=form.cleaned_data["location"], actor=request.user, context=AuditContext.of(request)
            )
        except offsite_admin.RepositoryError as exc:
            messages.error(request, str(exc))  # shown even when the form is not (a repository exists)
        else:
            return redirect("backups:offsite")
    return _page(request, status=400, create_form=form)


@staff_required
@require_POST
def offsite_unlock(request: AuthedRequest) -> HttpResponse:
    form = BreakLockForm(request.POST)
    try:
        if not form.is_valid():
            raise offsite_admin.RepositoryError(" ".join(str(error) for error in form.errors["lock_id"]))
        offsite_admin.repository_unlock_start(
            lock_id=form.cleaned_data["lock_id"], actor=request.user, context=AuditContext.of(request)
        )
    except offsite_admin.RepositoryError as exc:
        messages.error(request, str(exc))
        return _page(request, status=400)
    return redirect("backups:offsite")


@sensitive_post_parameters("token")
@staff_required
@require_POST
def offsite_token(request: AuthedRequest) -> HttpResponse:
    remote = _drive_remote()
    if remote is None:
        messages.error(request, "The repository is not on a Google Drive remote; no token is kept for it.")
        return _page(request, status=400)
    try:
        text = request.POST.get("token", "")
        offsite_repo.token_save(remote=remote, text=text, actor=request.user, context=AuditContext.of(request))
    except offsite_repo.TokenError as exc:
        return _page(request, status=400, token_error=str(exc))
    messages.success(request, f"The token of remote {remote} is saved. It is kept encrypted and not shown again.")
    return redirect("backups:offsite")


@staff_required
@require_POST
def offsite_token_remove(request: AuthedRequest) -> HttpResponse:
    remote = _drive_remote()
    context = AuditContext.of(request)
    if remote is None or not offsite_repo.token_clear(remote=remote, actor=request.user, context=context):
        messages.error(request, "There is no stored token to remove.")
        return _page(request, status=400)
    messages.success(request, f"The token of remote {remote} is removed; the worker cannot reach Drive without one.")
    return redirect("backups:offsite")
