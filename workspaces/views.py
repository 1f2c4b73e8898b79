"""Workspace pages and actions. Views authorize through get_workspace_for_user, call one
service and render; they never talk to Docker (CPU and memory figures come from the rows the
stats task writes)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from portal.access import AuthedRequest, get_member_for_admin, staff_required
from portal.audit import AuditContext
from portal.models import Operation
from workspaces import services
from workspaces.access import get_workspace_for_desktop, get_workspace_for_user
from workspaces.admission import WorkspaceError, hosts_with_promised_memory
from workspaces.cards import member_section
from workspaces.forms import MemberHostForm, WorkspaceCreateForm, WorkspaceRemoveForm
from workspaces.kinds import KINDS
from workspaces.models import OrphanContainer, Workspace
from workspaces.placement import PlacementRefused, member_place


def _unsent(op: Operation) -> str:
    """The member's words when the job queue could not take the job (portal.operations)."""
    return op.message if op.state == Operation.State.FAILED else ""


def _card(request: AuthedRequest, workspace: Workspace, *, error: str = "") -> HttpResponse:
    """The workspace's card, fresh from the database (htmx swaps it in place)."""
    return render(request, "workspaces/_workspace_card.html", {"ws": _fresh(workspace), "error": error})


def _fresh(workspace: Workspace) -> Workspace:
    """The row again with its latest operation (two queries)."""
    (fresh,) = Workspace.objects.filter(pk=workspace.pk).for_cards() or [workspace]
    return fresh


def _done(request: AuthedRequest, workspace: Workspace | None, error: str = "") -> HttpResponse:
    """htmx gets the card (which polls while the job runs); a plain form post goes back."""
    if request.htmx and workspace is not None:
        return _card(request, workspace, error=error)
    if error:
        messages.error(request, error)
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("dashboard")


@require_GET
def workspace_card(request: AuthedRequest, pk: int) -> HttpResponse:
    """The card alone; htmx polls it while a job runs. The poll that finds the job over tells
    the page (the dashboard's Recent jobs card reloads on ``operation-finished``)."""
    fresh = _fresh(get_workspace_for_user(request, pk))
    response = render(request, "workspaces/_workspace_card.html", {"ws": fresh})
    if request.htmx and not fresh.busy:
        response["HX-Trigger"] = "operation-finished"
    return response


@require_POST
def workspace_create(request: AuthedRequest) -> HttpResponse:
    """The member's own default or extra workspace, created and started. htmx posts get the
    form back with the message next to the name; plain posts go back to the dashboard."""
    form = WorkspaceCreateForm(request.POST)
    if form.is_valid():
        name = form.cleaned_data["name"]
        try:
            op = services.workspace_create(
                owner=request.user, actor=request.user, name=name, context=AuditContext.of(request)
            )
        except WorkspaceError as exc:
            form.add_error("name" if name else None, str(exc))
        else:
            if _unsent(op):
                form.add_error(None, _unsent(op))
    if form.is_valid():
        return HttpResponseClientRedirect(reverse("dashboard")) if request.htmx else redirect("dashboard")
    if request.htmx:
        return render(request, "workspaces/_workspace_create_form.html", {"form": form})
    for error in form.errors.get("name", []) + form.non_field_errors():
        messages.error(request, str(error))
    return redirect("dashboard")


@require_POST
def workspace_act(request: AuthedRequest, pk: int, action: str) -> HttpResponse:
    """Start, stop, restart or rebuild."""
    if action not in KINDS or not KINDS[action].on_card:
        raise Http404
    workspace = get_workspace_for_user(request, pk, write=True)
    try:
        op = services.workspace_act(
            workspace=workspace, kind=action, actor=request.user, context=AuditContext.of(request)
        )
    except WorkspaceError as exc:
        return _done(request, workspace, str(exc))
    return _done(request, workspace, _unsent(op))


@require_POST
def workspace_keep_running(request: AuthedRequest, pk: int) -> HttpResponse:
    workspace = get_workspace_for_user(request, pk, write=True)
    services.workspace_keep_running(workspace=workspace, actor=request.user, context=AuditContext.of(request))
    return _done(request, workspace)


@staff_required
@require_http_methods(["GET", "POST"])
def workspace_remove(request: AuthedRequest, pk: int) -> HttpResponse:
    """Admins only: remove a workspace, confirmed by typing its name."""
    workspace = get_workspace_for_user(request, pk, write=True)
    form = WorkspaceRemoveForm(request.POST or None, workspace=workspace)
    if request.method == "POST" and form.is_valid():
        delete_data = form.cleaned_data["delete_data"]
        try:
            op = services.workspace_remove(
                workspace=workspace, actor=request.user, context=AuditContext.of(request), delete_data=delete_data
            )
        except WorkspaceError as exc:
            form.add_error(None, str(exc))
        else:
            if _unsent(op):
                form.add_error(None, _unsent(op))
        if not form.errors:
            messages.success(request, f"{workspace} is being removed.")
            return redirect("workspaces:admin-list")
    return render(
        request, "workspaces/workspace_remove.html", {"ws": workspace, "form": form}, status=400 if form.errors else 200
    )


@require_GET
def workspace_connect(request: AuthedRequest, pk: int) -> HttpResponse:
    """How to reach the workspace: SSH config, X2Go session file, web links."""
    workspace = get_workspace_for_user(request, pk)
    has_keys = workspace.owner.ssh_keys.exists()
    return render(request, "workspaces/workspace_connect.html", {"ws": workspace, "has_keys": has_keys})


@require_GET
def workspace_files(request: AuthedRequest) -> HttpResponse:
    """files.<domain> lands here (a redirect in Traefik's dynamic.yml): on to the FileBrowser
    of the member's own workspace, the only one they may open."""
    workspace = Workspace.objects.filter(owner=request.user).order_by("pk").first()
    if workspace is None:
        messages.info(request, "FileBrowser runs in your workspace: create one first.")
        return redirect("dashboard")
    return redirect(workspace.files_url)


@require_GET
def workspace_x2go(request: AuthedRequest, pk: int) -> HttpResponse:
    """An X2Go client session file (the ~/.x2goclient/sessions INI format) for KDE."""
    workspace = get_workspace_for_user(request, pk)
    body = render_to_string("workspaces/session.x2go", {"ws": workspace})
    response = HttpResponse(body, content_type="application/x-x2go-session; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{workspace.slug}.x2go"'
    return response


@never_cache  # the redirect carries a sign-in token: no cache may keep it
@require_GET
def workspace_desktop(request: AuthedRequest, pk: int) -> HttpResponse:
    """One click into the workspace's desktop: a redirect to Guacamole with a short-lived,
    single-use sign-in token. Without the shared key, Guacamole's own login page."""
    workspace = get_workspace_for_desktop(request, pk)
    try:
        url = services.workspace_desktop_open(workspace=workspace, actor=request.user, context=AuditContext.of(request))
    except services.DesktopSignInOff as exc:
        messages.warning(request, str(exc))
        return redirect(settings.GUACAMOLE_URL)
    except WorkspaceError as exc:
        messages.error(request, str(exc))
        return redirect("dashboard")
    return redirect(url)


@staff_required
@require_GET
def workspace_admin_list(request: AuthedRequest) -> HttpResponse:
    """Every workspace on every host, the hosts, and containers nobody owns."""
    context = {
        "workspaces": Workspace.objects.all().for_cards(),
        "hosts": hosts_with_promised_memory(),
        "orphans": OrphanContainer.objects.select_related("host"),
    }
    return render(request, "workspaces/workspace_list.html", context)


@require_POST
def member_host(request: AuthedRequest, pk: int) -> HttpResponse:
    """Admins only: move a member to another server (refused while something of theirs is
    left on the old one). htmx gets the section back with the outcome; a plain post goes back
    to the member's page with it."""
    member = get_member_for_admin(request, pk)
    form = MemberHostForm(request.POST)
    moved = False
    if form.is_valid():
        host = form.cleaned_data["host"]
        try:
            moved = member_place(member=member, host=host, actor=request.user, context=AuditContext.of(request))
        except PlacementRefused as exc:
            form.add_error("host", str(exc))
    if request.htmx:
        panel = member_section(request, member, host_form=form if form.errors else None, moved=moved)
        return render(request, panel.template, panel.context)
    for error in form.errors.get("host", []):
        messages.error(request, str(error))
    if moved:
        messages.success(request, f"{member.username} now works on {member.placed_host().name}.")
    return redirect(reverse("member-detail", args=[member.pk]) + "#member-ws")
