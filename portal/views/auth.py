"""Signing in and out: Google for everyone, a rate-limited password form for admins
(break-glass, when Google is unavailable), and the Django admin's login routed to it."""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.audit import audit_record, client_ip
from portal.forms.auth import BreakglassForm

# One address may fail this many times the per-name limit across all names: password
# spraying stays capped, while a few admins behind one office NAT can still mistype.
IP_LIMIT_FACTOR = 3


class BreakglassThrottle:
    """Failed break-glass attempts, counted in the cache per (client IP, username) and per
    client IP, each in a fixed window that starts with its first failure."""

    def __init__(self, *, ip: str, username: str) -> None:
        name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        limit = settings.BREAKGLASS_MAX_FAILURES
        self.window: int = settings.BREAKGLASS_WINDOW_SECONDS
        self.pair_key = f"breakglass:fail:{ip}:{name}"
        self.limits = {self.pair_key: limit, f"breakglass:fail:{ip}": limit * IP_LIMIT_FACTOR}

    def locked_for(self) -> int:
        """Seconds until attempts are allowed again; 0 when they are allowed now."""
        counts = cache.get_many(list(self.limits))
        locked = [key for key, limit in self.limits.items() if counts.get(key, 0) >= limit]
        return max((self._seconds_left(key) for key in locked), default=0)

    def _seconds_left(self, key: str) -> int:
        now = time.time()
        return max(1, math.ceil(cache.get(f"{key}:until", now + self.window) - now))

    def record_failure(self) -> None:
        for key in self.limits:
            if cache.add(key, 1, timeout=self.window):
                cache.set(f"{key}:until", time.time() + self.window, timeout=self.window)
                continue
            try:
                cache.incr(key)
            except ValueError:  # the window ran out between add() and incr()
                cache.add(key, 1, timeout=self.window)

    def reset(self) -> None:
        """A successful login clears its own name's count (not the address's)."""
        cache.delete_many([self.pair_key, f"{self.pair_key}:until"])


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    # Never bounce back to a sign-in page: that would loop for a signed-in visitor.
    if safe and candidate.split("?")[0] not in (reverse("login"), reverse("breakglass-login")):
        return candidate
    return reverse("dashboard")


@login_not_required
@require_GET
def login_page(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(_next_url(request))
    context = {
        "workspace_domain": settings.GOOGLE_WORKSPACE_DOMAIN,
        "google_configured": bool(settings.GOOGLE_CLIENT_ID),
    }
    return render(request, "portal/login.html", context)


@login_not_required
@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def breakglass_login(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        # A member without admin rights has no business here (and must not loop via the admin).
        return redirect(_next_url(request) if request.user.is_staff else reverse("dashboard"))
    if request.method == "POST":
        return _breakglass_attempt(request)
    return _render_breakglass(request, BreakglassForm(request))


def _breakglass_attempt(request: HttpRequest) -> HttpResponse:
    username = request.POST.get("username", "")[:150]
    throttle = BreakglassThrottle(ip=client_ip(request) or "unknown", username=username)
    if wait := throttle.locked_for():
        # Checked before the password, so a locked-out guesser learns nothing, not even from timing.
        audit_record(
            action="login.breakglass", refused=True, actor_label=username, request=request, reason="locked out"
        )
        form = BreakglassForm(request, initial={"username": username})
        return _render_breakglass(request, form, locked_minutes=math.ceil(wait / 60), status=429)
    form = BreakglassForm(request, data=request.POST)
    if form.is_valid() and form.user is not None:
        throttle.reset()
        login(request, form.user)
        audit_record(action="login.breakglass", actor=form.user, request=request)
        return redirect(_next_url(request))
    if form.credentials_refused:
        throttle.record_failure()
        audit_record(action="login.breakglass", refused=True, actor_label=username, request=request, reason="bad login")
    return _render_breakglass(request, form)


def _render_breakglass(
    request: HttpRequest, form: BreakglassForm, *, locked_minutes: int = 0, status: int = 200
) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    context = {"form": form, "locked_minutes": locked_minutes, "next": next_url}
    return render(request, "portal/login_breakglass.html", context, status=status)


@login_not_required
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.info(request, "You have signed out.")
    return redirect("login")


@login_not_required
def admin_login(request: HttpRequest, extra_context: object = None) -> HttpResponse:
    """Stands in for Django admin's own login, so the admin has no second password form
    without the break-glass rate limit and audit."""
    return redirect_to_login(request.GET.get("next") or reverse("admin:index"), login_url="breakglass-login")
