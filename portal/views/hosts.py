"""The Servers page: every GPU server with its state, its worker's heartbeat and what is placed
there; adding one, editing it and deleting one nothing lives on. Admins only."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal import hosts as servers
from portal.access import AuthedRequest, get_host_for_admin, staff_required
from portal.audit import AuditContext
from portal.forms.hosts import HostForm
from portal.models import Host, WorkerHeartbeat
from portal.panels import Panel, host_columns


@require_GET
@staff_required
def host_list(request: AuthedRequest) -> HttpResponse:
    rows = servers.host_rows()
    columns = host_columns([row.host for row in rows])  # settings.PORTAL_HOST_COLUMNS
    table = [(row, [Panel(column.template, column.cell(row.host.pk) or {}) for column in columns]) for row in rows]
    return render(request, "portal/host_list.html", {"rows": table, "columns": columns})


@require_http_methods(["GET", "POST"])
@staff_required
def host_add(request: AuthedRequest) -> HttpResponse:
    form = HostForm(request.POST or None)
    if form.is_valid():
        try:
            host = servers.host_create(actor=request.user, context=AuditContext.of(request), values=form.values())
        except ValidationError as exc:  # another admin took the name or queue a moment ago
            form.add_error(None, exc)
        else:
            messages.success(request, f"Added {host.name}. Start its worker as below; it shows online within a minute.")
            return redirect("host-detail", pk=host.pk)
    return render(request, "portal/host_add.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def host_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    host = get_host_for_admin(request, pk)
    form = HostForm(request.POST or None, instance=Host.objects.get(pk=host.pk))  # the form edits its own copy
    if form.is_valid():
        try:
            host = servers.host_update(
                host=host, actor=request.user, context=AuditContext.of(request), values=form.values()
            )
        except (servers.HostRefused, ValidationError) as exc:
            form.add_error(None, exc.messages if isinstance(exc, ValidationError) else str(exc))
        else:
            messages.success(request, f"Saved {host.name}.")
            return redirect("host-detail", pk=host.pk)
    return _render_detail(request, host, form)


def _render_detail(request: AuthedRequest, host: Host, form: HostForm) -> HttpResponse:
    context = {
        "host": host,
        "form": form,
        "heartbeat": servers.heartbeat_of(WorkerHeartbeat.objects.filter(queue=host.queue).first()),
        "worker_command": servers.worker_command(host),
        "compose_env": servers.compose_env(host),
    }
    return render(request, "portal/host_detail.html", context, status=400 if form.errors else 200)


@require_POST
def host_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    host = get_host_for_admin(request, pk)
    try:
        servers.host_delete(host=host, actor=request.user, context=AuditContext.of(request))
    except servers.HostRefused as exc:
        messages.error(request, str(exc))
        return redirect("host-detail", pk=host.pk)
    messages.success(request, f"Deleted {host.name}. Stop its worker there: nothing is sent to {host.queue} any more.")
    return redirect("host-list")
