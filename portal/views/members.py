"""Admin pages about members: the list with pending access requests, invitations, and one
member's identity, limits, capabilities and suspension. Every view is for admins only."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal import services
from portal.access import AuthedRequest, get_member_for_admin, staff_required
from portal.audit import AuditContext
from portal.forms.members import CapabilitiesForm, InviteForm, MemberFilterForm, QuotaForm, SuspendForm
from portal.identity import suggest_username
from portal.models import AccessRequest, AuditEvent, Quota, User
from portal.panels import Column, Panel, member_columns, member_sections

MEMBERS_PER_PAGE = 100
REQUESTS_SHOWN = 50
EVENTS_SHOWN = 15


@dataclass(frozen=True)
class MemberRow:
    member: User
    cells: list[Panel]  # one per column the apps contribute (settings.PORTAL_MEMBER_COLUMNS)


@require_GET
@staff_required
def member_list(request: AuthedRequest) -> HttpResponse:
    filters = MemberFilterForm(request.GET or None)
    members = filters.apply(User.objects.select_related("quota").order_by("username"))
    page = Paginator(members, MEMBERS_PER_PAGE).get_page(request.GET.get("page"))
    columns = member_columns(page)
    context = {
        "filters": filters,
        "page": page,
        "columns": columns,
        "rows": [MemberRow(member, [_cell(column, member) for column in columns]) for member in page],
        "access_requests": _pending_requests(),
    }
    return render(request, "portal/member_list.html", context)


def _cell(column: Column, member: User) -> Panel:
    return Panel(column.template, column.cell(member.pk) or {})


def _pending_requests() -> list[tuple[AccessRequest, str]]:
    """Open requests to join, each with the invite form's URL prefilled for it."""
    invite_url = reverse("member-invite")
    pending = AccessRequest.objects.filter(handled_at=None)[:REQUESTS_SHOWN]
    return [
        (access, f"{invite_url}?{urlencode({'email': access.email, 'username': suggest_username(access.email)})}")
        for access in pending
    ]


@require_http_methods(["GET", "POST"])
@staff_required
def member_invite(request: AuthedRequest) -> HttpResponse:
    form = InviteForm(request.POST or None, initial=_invite_initial(request))
    if form.is_valid():
        try:
            user = services.member_invite(actor=request.user, context=AuditContext.of(request), **form.cleaned_data)
        except ValidationError as exc:  # another admin took the name or address a moment ago
            form.add_model_errors(exc)
        else:
            messages.success(request, f"Invited {user.username}. They can now sign in with Google as {user.email}.")
            return redirect("member-detail", pk=user.pk)
    status = 400 if form.errors else 200
    context = {"form": form, "google_domain": settings.GOOGLE_WORKSPACE_DOMAIN}
    return render(request, "portal/member_invite.html", context, status=status)


def _invite_initial(request: AuthedRequest) -> dict[str, str]:
    email = request.GET.get("email", "").strip().lower()
    username = request.GET.get("username", "").strip() or (suggest_username(email) if email else "")
    return {"email": email, "username": username}


@require_GET
def member_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    member = get_member_for_admin(request, pk)
    return _render_detail(request, member)


def _render_detail(request: AuthedRequest, member: User, *, status: int = 200, **forms: Form) -> HttpResponse:
    """The detail page; a form passed in (bound, with its errors) replaces the fresh one."""
    quota = _quota_of(member)
    context = {
        "member": member,
        "quota": quota,
        "invited_by": member.invited_by,
        "ssh_keys": list(member.ssh_keys.all()),
        "events": _recent_events(member),
        "quota_form": forms.get("quota_form") or QuotaForm(quota=quota),
        "capabilities_form": forms.get("capabilities_form") or CapabilitiesForm(member=member, actor=request.user),
        "suspend_form": forms.get("suspend_form") or SuspendForm(member=member, actor=request.user),
        "sections": member_sections(request, member),  # settings.PORTAL_MEMBER_SECTIONS
    }
    return render(request, "portal/member_detail.html", context, status=status)


def _quota_of(member: User) -> Quota:
    # Members made outside the portal (Django admin) may lack a row: show the team defaults,
    # which the first save of the form then creates.
    try:
        return member.quota
    except Quota.DoesNotExist:
        return Quota(user=member, **Quota.team_defaults())


def _recent_events(member: User) -> list[AuditEvent]:
    """What was done to the member and what they did (refusals included), newest first."""
    about = Q(target_type="user", target_id=str(member.pk)) | Q(actor=member)
    return list(AuditEvent.objects.filter(about)[:EVENTS_SHOWN])


@require_POST
def member_quota(request: AuthedRequest, pk: int) -> HttpResponse:
    member = get_member_for_admin(request, pk)
    quota = _quota_of(member)
    form = QuotaForm(request.POST, quota=quota)
    if not form.is_valid():
        return _form_failed(request, member, "quota_form", form)
    services.quota_update(quota=quota, actor=request.user, values=form.values(), context=AuditContext.of(request))
    if request.htmx:
        context = {"member": member, "quota": quota, "quota_form": QuotaForm(quota=quota), "saved": True}
        return render(request, "portal/_member_quota.html", context)
    messages.success(request, f"Saved the limits of {member.username}.")
    return redirect(reverse("member-detail", args=[member.pk]) + "#member-quota")


@require_POST
def member_capabilities(request: AuthedRequest, pk: int) -> HttpResponse:
    member = get_member_for_admin(request, pk)
    form = CapabilitiesForm(request.POST, member=member, actor=request.user)
    if not form.is_valid():
        return _form_failed(request, member, "capabilities_form", form)
    services.member_set_capabilities(
        user=member, actor=request.user, context=AuditContext.of(request), **form.cleaned_data
    )
    if request.htmx:
        fresh = CapabilitiesForm(member=member, actor=request.user)
        return render(
            request, "portal/_member_capabilities.html", {"member": member, "capabilities_form": fresh, "saved": True}
        )
    messages.success(request, f"Saved the capabilities of {member.username}.")
    return redirect(reverse("member-detail", args=[member.pk]) + "#member-capabilities")


_PARTIALS = {"quota_form": "portal/_member_quota.html", "capabilities_form": "portal/_member_capabilities.html"}


def _form_failed(request: AuthedRequest, member: User, name: str, form: Form) -> HttpResponse:
    """An htmx request gets its card back with the messages (200, so htmx swaps it in);
    a plain one gets the whole page with the form's messages and 400."""
    if request.htmx:
        return render(request, _PARTIALS[name], {"member": member, "quota": _quota_of(member), name: form})
    return _render_detail(request, member, status=400, **{name: form})


@require_POST
def member_suspend(request: AuthedRequest, pk: int) -> HttpResponse:
    member = get_member_for_admin(request, pk)
    form = SuspendForm(request.POST, member=member, actor=request.user)
    if not form.is_valid() and form.refused:
        # POST/redirect/GET: reloading the page shows the message and posts nothing again.
        messages.error(request, " ".join(str(error) for error in form.non_field_errors()))
        return redirect(reverse("member-detail", args=[member.pk]) + "#member-access")
    if not form.is_valid():
        return _render_detail(request, member, status=400, suspend_form=form)
    services.member_suspend(
        user=member, actor=request.user, reason=form.cleaned_data["reason"], context=AuditContext.of(request)
    )
    messages.success(request, f"Suspended {member.username}: their sessions have ended and they can't sign in.")
    return redirect("member-detail", pk=member.pk)


@require_POST
def member_reactivate(request: AuthedRequest, pk: int) -> HttpResponse:
    member = get_member_for_admin(request, pk)
    if member.status != User.Status.SUSPENDED:
        messages.info(request, f"{member.username} is not suspended.")
    else:
        services.member_reactivate(user=member, actor=request.user, context=AuditContext.of(request))
        messages.success(request, f"Reactivated {member.username}: they can sign in again.")
    return redirect("member-detail", pk=member.pk)


@require_POST
@staff_required
def access_request_dismiss(request: AuthedRequest, pk: int) -> HttpResponse:
    access = get_object_or_404(AccessRequest, pk=pk, handled_at=None)
    services.access_request_dismiss(access=access, actor=request.user, context=AuditContext.of(request))
    messages.success(request, f"Dismissed the request from {access.email}.")
    return redirect("member-list")
