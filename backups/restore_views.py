"""The restore pages: a member's snapshots of both tiers, a folder of one, restoring and
downloading from it; an admin's restore of any snapshot path. Thin views: authorize, validate,
call one service. The files are read by the storage worker (backups/restore.py and
backups/offsite_restore.py say where and why); both tiers share one page of each kind."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from backups import offsite_restore, restore
from backups.models import BackupPolicy, ResticSnapshot, Snapshot
from backups.restore_forms import AdminRestoreForm, PathForm, RestoreForm
from portal.access import AuthedRequest, refuse, staff_required
from portal.audit import AuditContext
from portal.models import Operation

RECENT_RESTORES = 5


def get_snapshot_for_user(request: AuthedRequest, pk: int) -> Snapshot:
    """A home snapshot that still exists: its member's, or any for an admin; 403 (audited) for
    another member's, 404 for one that is gone."""
    snapshot = get_object_or_404(
        Snapshot.objects.select_related("owner"), pk=pk, deleted_at=None, source__startswith="homes/"
    )
    if snapshot.owner_id != request.user.pk and not request.user.is_staff:
        raise refuse(request, "backups.snapshot.denied", target=snapshot)
    return snapshot


def get_offsite_snapshot_for_user(request: AuthedRequest, pk: int) -> ResticSnapshot:
    """A home snapshot restic still keeps: its member's, or any for an admin; 403 (audited) for
    another member's, 404 for one forgotten."""
    row = get_object_or_404(
        ResticSnapshot.objects.select_related("owner"), pk=pk, forgotten_at=None, source__startswith="homes/"
    )
    if row.owner_id != request.user.pk and not request.user.is_staff:
        raise refuse(request, "backups.snapshot.denied", target=row)
    return row


@dataclass(frozen=True)
class _Tier:
    """Where one tier's pages are: the browser, restore and download URLs by name, and the
    admin restore's field for it."""

    browse: str
    restore: str
    download: str
    field: str


LOCAL = _Tier("backups:my-snapshot", "backups:my-restore", "backups:my-download", "snapshot")
OFFSITE = _Tier("backups:my-offsite", "backups:my-offsite-restore", "backups:my-offsite-download", "offsite")
Row = Snapshot | ResticSnapshot


def _tier(row: Row) -> _Tier:
    return OFFSITE if isinstance(row, ResticSnapshot) else LOCAL


def _folder_url(snapshot: Row, path: str) -> str:
    url = reverse(_tier(snapshot).browse, args=[snapshot.pk])
    return f"{url}?{urlencode({'path': path})}" if path else url


@require_GET
def my_snapshots(request: AuthedRequest) -> HttpResponse:
    snapshots = list(restore.member_snapshots(request.user)[:500])
    recent = Operation.objects.filter(kind=restore.RESTORE_KIND, owner=request.user).order_by("-created")
    context = {
        "snapshots": snapshots,
        "offsite": list(offsite_restore.member_offsite_snapshots(request.user)[:500]),
        "unavailable": restore.snapshots_unavailable() if not snapshots else "",
        "recent_ops": list(recent[:RECENT_RESTORES]),
        "restored_folder": restore.RESTORED_FOLDER,
        "policy": BackupPolicy.objects.filter(tier=BackupPolicy.Tier.SNAPSHOT).first(),
    }
    return render(request, "backups/snapshot_list.html", context)


def _browse_page(
    request: AuthedRequest, snapshot: Row, path: str, *, form: RestoreForm | None = None, status: int = 200
) -> HttpResponse:
    if isinstance(snapshot, ResticSnapshot):
        browse = offsite_restore.offsite_browse(row=snapshot, path=path)
    else:
        browse = restore.snapshot_browse(snapshot=snapshot, path=path)
    tier = _tier(snapshot)
    crumbs: list[tuple[str, str]] = []
    walked = ""
    for part in path.split("/") if path else []:
        walked = posixpath.join(walked, part)
        crumbs.append((part, _folder_url(snapshot, walked)))
    recent = Operation.objects.for_target(snapshot).filter(kind=restore.RESTORE_KIND).order_by("-created")
    context: dict[str, Any] = {
        "snapshot": snapshot,
        "path": path,
        "parent_url": _folder_url(snapshot, posixpath.dirname(path)) if path else "",
        "crumbs": crumbs,
        "browse": browse,
        "rows": [
            (item, _folder_url(snapshot, item.path) if item.kind == "dir" and item.path else "")
            for item in browse.items
        ],
        "form": form,
        "download_max": settings.BACKUP_DOWNLOAD_MAX_BYTES,
        "recent_ops": list(recent[:RECENT_RESTORES]),
        "restored_folder": restore.RESTORED_FOLDER,
        "is_own": snapshot.owner_id == request.user.pk,
        "offsite": tier is OFFSITE,
        "home_url": _folder_url(snapshot, ""),
        "restore_url": reverse(tier.restore, args=[snapshot.pk]),
        "download_url": reverse(tier.download, args=[snapshot.pk]),
        "admin_field": tier.field,
    }
    return render(request, "backups/snapshot_detail.html", context, status=status if not browse.error else 400)


@require_GET
def my_snapshot(request: AuthedRequest, pk: int) -> HttpResponse:
    return _browse(request, get_snapshot_for_user(request, pk))


@require_GET
def my_offsite(request: AuthedRequest, pk: int) -> HttpResponse:
    return _browse(request, get_offsite_snapshot_for_user(request, pk))


def _browse(request: AuthedRequest, snapshot: Row) -> HttpResponse:
    form = PathForm(request.GET)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for error in form.errors["path"]))
        return _browse_page(request, snapshot, "", status=400)
    return _browse_page(request, snapshot, form.cleaned_data["path"])


@require_POST
def my_restore(request: AuthedRequest, pk: int) -> HttpResponse:
    return _restore(request, get_snapshot_for_user(request, pk))


@require_POST
def my_offsite_restore(request: AuthedRequest, pk: int) -> HttpResponse:
    return _restore(request, get_offsite_snapshot_for_user(request, pk))


def _restore(request: AuthedRequest, snapshot: Row) -> HttpResponse:
    form = RestoreForm(request.POST)
    if not form.is_valid():
        folder = form.cleaned_data.get("folder", "") if hasattr(form, "cleaned_data") else ""
        return _browse_page(request, snapshot, folder, form=form, status=400)
    folder = form.cleaned_data["folder"]
    paths, context = form.cleaned_data["paths"], AuditContext.of(request)
    try:
        if isinstance(snapshot, ResticSnapshot):
            op = offsite_restore.offsite_restore(row=snapshot, paths=paths, actor=request.user, context=context)
        else:
            op = restore.snapshot_restore(snapshot=snapshot, paths=paths, actor=request.user, context=context)
    except restore.RestoreError as exc:
        form.add_error(None, str(exc))
        return _browse_page(request, snapshot, folder, form=form, status=400)
    if op.state == Operation.State.FAILED:
        messages.error(request, op.message)
    else:
        messages.success(
            request,
            f"Restoring {len(form.cleaned_data['paths'])} entr{'y' if len(form.cleaned_data['paths']) == 1 else 'ies'} "
            f"into ~/{restore.RESTORED_FOLDER}/ of {snapshot.owner.username if snapshot.owner else 'the home'}.",
        )
    return redirect(_folder_url(snapshot, folder))


@require_GET
def my_download(request: AuthedRequest, pk: int) -> HttpResponseBase:
    return _download(request, get_snapshot_for_user(request, pk))


@require_GET
def my_offsite_download(request: AuthedRequest, pk: int) -> HttpResponseBase:
    return _download(request, get_offsite_snapshot_for_user(request, pk))


def _download(request: AuthedRequest, snapshot: Row) -> HttpResponseBase:
    form = PathForm(request.GET)
    path = form.cleaned_data["path"] if form.is_valid() else ""
    if not form.is_valid() or not path:
        errors = [str(error) for error in form.errors.get("path", [])]
        messages.error(request, " ".join(errors) or "Choose a file to download.")
        return redirect(_folder_url(snapshot, ""))
    context = AuditContext.of(request)
    try:
        if isinstance(snapshot, ResticSnapshot):
            download = offsite_restore.offsite_download_open(
                row=snapshot, path=path, actor=request.user, context=context
            )
        else:
            download = restore.snapshot_download_open(snapshot=snapshot, path=path, actor=request.user, context=context)
    except restore.RestoreError as exc:
        messages.error(request, str(exc))
        return redirect(_folder_url(snapshot, posixpath.dirname(path)))
    response = StreamingHttpResponse(download.chunks, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=download.filename)
    response["Content-Length"] = str(download.size)
    return response


@staff_required
@require_http_methods(["GET", "POST"])
def admin_restore(request: AuthedRequest) -> HttpResponse:
    op = None
    if request.method == "POST":
        form = AdminRestoreForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                op = _admin_start(request, data)
            except restore.RestoreError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Restoring to {data['target']}; the job below shows how it goes.")
                return redirect(f"{reverse('backups:admin-restore')}?{urlencode({'op': op.pk})}")
        status = 400
    else:
        initial = {key: request.GET.get(key) for key in ("snapshot", "offsite")} | {"path": request.GET.get("path", "")}
        form = AdminRestoreForm(initial=initial)
        status = 200
        shown = request.GET.get("op", "")
        op = Operation.objects.filter(kind=restore.RESTORE_KIND, pk=shown).first() if shown.isdigit() else None
    recent = Operation.objects.filter(kind=restore.RESTORE_KIND).select_related("owner").order_by("-created")
    context = {
        "form": form,
        "op": op,
        "recent_ops": [row for row in recent[:10] if op is None or row.pk != op.pk],
        "root": settings.STORAGE_ROOT,
        "unavailable": restore.snapshots_unavailable(),
    }
    return render(request, "backups/admin_restore.html", context, status=status)


def _admin_start(request: AuthedRequest, data: dict[str, Any]) -> Operation:
    """The admin's restore from whichever tier the form named."""
    where = {"path": data["path"], "target": data["target"], "overwrite": data["overwrite"]}
    context = AuditContext.of(request)
    if data.get("offsite") is not None:
        return offsite_restore.offsite_restore_admin(row=data["offsite"], actor=request.user, context=context, **where)
    return restore.snapshot_restore_admin(snapshot=data["snapshot"], actor=request.user, context=context, **where)
