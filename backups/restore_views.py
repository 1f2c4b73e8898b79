"""The restore pages: a member's snapshots, a folder of one, restoring and downloading from it;
an admin's restore of any snapshot path. Thin views: authorize, validate, call one service.
The files are read by the storage worker (backups/restore.py says where and why)."""

from __future__ import annotations

import posixpath
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from backups import restore
from backups.models import BackupPolicy, Snapshot
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


def _folder_url(snapshot: Snapshot, path: str) -> str:
    url = reverse("backups:my-snapshot", args=[snapshot.pk])
    return f"{url}?{urlencode({'path': path})}" if path else url


@require_GET
def my_snapshots(request: AuthedRequest) -> HttpResponse:
    snapshots = list(restore.member_snapshots(request.user)[:500])
    recent = Operation.objects.filter(kind=restore.RESTORE_KIND, owner=request.user).order_by("-created")
    context = {
        "snapshots": snapshots,
        "unavailable": restore.snapshots_unavailable() if not snapshots else "",
        "recent_ops": list(recent[:RECENT_RESTORES]),
        "restored_folder": restore.RESTORED_FOLDER,
        "policy": BackupPolicy.objects.filter(tier=BackupPolicy.Tier.SNAPSHOT).first(),
    }
    return render(request, "backups/snapshot_list.html", context)


def _browse_page(
    request: AuthedRequest, snapshot: Snapshot, path: str, *, form: RestoreForm | None = None, status: int = 200
) -> HttpResponse:
    browse = restore.snapshot_browse(snapshot=snapshot, path=path)
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
    }
    return render(request, "backups/snapshot_detail.html", context, status=status if not browse.error else 400)


@require_GET
def my_snapshot(request: AuthedRequest, pk: int) -> HttpResponse:
    snapshot = get_snapshot_for_user(request, pk)
    form = PathForm(request.GET)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for error in form.errors["path"]))
        return _browse_page(request, snapshot, "", status=400)
    return _browse_page(request, snapshot, form.cleaned_data["path"])


@require_POST
def my_restore(request: AuthedRequest, pk: int) -> HttpResponse:
    snapshot = get_snapshot_for_user(request, pk)
    form = RestoreForm(request.POST)
    if not form.is_valid():
        folder = form.cleaned_data.get("folder", "") if hasattr(form, "cleaned_data") else ""
        return _browse_page(request, snapshot, folder, form=form, status=400)
    folder = form.cleaned_data["folder"]
    try:
        op = restore.snapshot_restore(
            snapshot=snapshot, paths=form.cleaned_data["paths"], actor=request.user, context=AuditContext.of(request)
        )
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
    snapshot = get_snapshot_for_user(request, pk)
    form = PathForm(request.GET)
    path = form.cleaned_data["path"] if form.is_valid() else ""
    if not form.is_valid() or not path:
        errors = [str(error) for error in form.errors.get("path", [])]
        messages.error(request, " ".join(errors) or "Choose a file to download.")
        return redirect(_folder_url(snapshot, ""))
    try:
        download = restore.snapshot_download_open(
            snapshot=snapshot, path=path, actor=request.user, context=AuditContext.of(request)
        )
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
                op = restore.snapshot_restore_admin(
                    snapshot=data["snapshot"],
                    path=data["path"],
                    target=data["target"],
                    overwrite=data["overwrite"],
                    actor=request.user,
                    context=AuditContext.of(request),
                )
            except restore.RestoreError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Restoring to {data['target']}; the job below shows how it goes.")
                return redirect(f"{reverse('backups:admin-restore')}?{urlencode({'op': op.pk})}")
        status = 400
    else:
        initial = {"snapshot": request.GET.get("snapshot"), "path": request.GET.get("path", "")}
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
