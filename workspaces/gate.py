"""The forward-auth gate in front of members' own services (code-server, Jupyter).

Traefik asks ``/_auth/traefik`` about every request to ``alice-code.<domain>``. The portal's
session cookie is host-only and never reaches that host, so each member host gets its own
signed, host-bound gate cookie through a single-use ticket:

1. no valid gate cookie on a navigation -> 302 to ``<portal>/gate/start?rd=<url>``;
2. the portal (logged in) checks the member may use that host and redirects to
   ``https://<host>/_portal/gate/callback?t=<ticket>&rd=<path>``;
3. the callback (routed to the portal on every member host) checks the ticket, sets
   ``__Host-portal_gate`` on that host only, and redirects to the path.

The decision in step 1 runs on every request (assets, XHR, WebSocket handshakes), so it
touches no session, no database and no cache: a signed cookie and an in-process index of
hosts and members, rebuilt from the database at most every GATE_INDEX_TTL seconds.

The team services (Grafana, Netdata, Dozzle, ...) pass the same gate: their hosts come from
GATE_INFRA_HOSTS with a role each, "member" (any active member) or "staff" (admins only).
Behind the gate each service reads who it is from the headers Traefik copies from the 204
(authResponseHeaders): X-Portal-User (the username) and X-Portal-Role (Grafana's role).
"""

from __future__ import annotations

import functools
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

COOKIE_SALT = "portal.gate.cookie"
TICKET_SALT = "portal.gate.ticket"
TICKET_MAX_AGE = 60
AUTH_PATH = "/_auth/traefik"
CALLBACK_PATH = "/_portal/gate/callback"


@dataclass(frozen=True)
class Member:
    id: int
    username: str
    version: int
    is_active: bool
    is_staff: bool


@dataclass(frozen=True)
class Index:
    hosts: dict[str, int]  # host -> owner id
    members: dict[int, Member]
    infra: dict[str, str]  # team service host -> "staff" or "member"
    built: float


_lock = threading.Lock()
_index: Index | None = None


def _build_index() -> Index:
    """Two queries: every member's gate-relevant fields, and every workspace's web hosts."""
    from portal.models import User
    from workspaces.models import Workspace, service_hosts

    members = {
        row[0]: Member(*row)
        for row in User.objects.values_list("id", "username", "session_version", "is_active", "is_staff")
    }
    hosts = {
        host: owner_id
        for owner_id, slug in Workspace.objects.values_list("owner_id", "slug")
        for host in service_hosts(slug, settings.PORTAL_DOMAIN)
    }
    return Index(hosts, members, dict(settings.GATE_INFRA_HOSTS), time.monotonic())


def index() -> Index:
    """The current index, rebuilt when older than GATE_INDEX_TTL (a revoked member loses
    access within that many seconds)."""
    global _index
    current = _index
    if _stale(current):
        with _lock:
            current = _index
            if _stale(current):  # threads that waited for the lock reuse the fresh index
                current = _index = _build_index()
    return current  # type: ignore[return-value]


def _stale(current: Index | None) -> bool:
    return current is None or time.monotonic() - current.built > settings.GATE_INDEX_TTL


def index_reset() -> None:
    global _index
    _index = None


def cookie_name() -> str:
    return "__Host-portal_gate" if settings.PORTAL_SECURE else "portal_gate"


def _forwarded_host(request: HttpRequest) -> str:
    return request.META.get("HTTP_X_FORWARDED_HOST", "").split(":")[0].strip().lower()


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _forwarded_origin(request: HttpRequest, host: str) -> str:
    """The member host's origin as the browser sees it: the scheme and port the proxy took the
    request on (X-Forwarded-Proto and -Host, which Traefik and caddy set themselves and never
    take from the client), so a proxy on a port other than 443 gets redirects that keep it."""
    scheme = "http" if request.META.get("HTTP_X_FORWARDED_PROTO") == "http" else "https"
    port = request.META.get("HTTP_X_FORWARDED_HOST", "").strip().partition(":")[2]
    return f"{scheme}://{host}:{port}" if port.isdigit() and port != _DEFAULT_PORTS[scheme] else f"{scheme}://{host}"


@functools.lru_cache(maxsize=8192)
def _verified(raw: str) -> tuple[dict[str, Any], int] | None:
    """Signature check, memoized per cookie value (each browser sends the same one for
    hours): the HMAC runs once per cookie and process, not on every request."""
    try:
        data = signing.loads(raw, salt=COOKIE_SALT)
        signed_at = signing.b62_decode(raw.rsplit(":", 2)[1])
    except (signing.BadSignature, ValueError, IndexError):
        return None
    return (data, signed_at) if isinstance(data, dict) else None


def _cookie_member(request: HttpRequest, host: str, idx: Index) -> Member | None:
    verified = _verified(request.COOKIES.get(cookie_name(), ""))
    if verified is None:
        return None
    data, signed_at = verified
    if time.time() - signed_at > settings.GATE_COOKIE_MAX_AGE:
        return None
    member = idx.members.get(data.get("u"))  # type: ignore[arg-type]
    if member is None or data.get("h") != host or data.get("v") != member.version or not member.is_active:
        return None
    return member


def _may_enter(member: Member, owner_id: int | None, role: str | None) -> bool:
    """The one rule for both kinds of host: a member host is its owner's (admins only by
    policy); a team service host is any member's or admins' only, by its role."""
    if owner_id is not None:
        return member.id == owner_id or (member.is_staff and settings.GATE_ALLOW_ADMINS)
    return role == "member" or member.is_staff


def _is_navigation(request: HttpRequest) -> bool:
    """A page load, which gets the sign-in redirect; anything else (assets, XHR, WebSocket
    handshakes) gets a plain 401. Browsers send Sec-Fetch-Mode only to secure origins and
    older ones not at all: without it, a GET for an HTML page counts as a navigation."""
    mode = request.META.get("HTTP_SEC_FETCH_MODE")
    if mode is not None:
        return mode == "navigate"
    method = request.META.get("HTTP_X_FORWARDED_METHOD", "GET")
    return method == "GET" and "text/html" in request.META.get("HTTP_ACCEPT", "")


def _expected_query() -> bytes:
    return f"k={quote(settings.GATE_FORWARD_AUTH_KEY, safe='')}".encode()


def forward_auth(request: HttpRequest) -> HttpResponse:
    """Traefik's question: may this request to a member host pass? 204 yes, else why not."""
    # Traefik's address is exactly ...?k=<key>: compare the raw query, no QueryDict needed.
    if not hmac.compare_digest(request.META.get("QUERY_STRING", "").encode(), _expected_query()):
        return HttpResponse(status=404)
    host = _forwarded_host(request)
    idx = index()
    owner_id = idx.hosts.get(host)
    role = idx.infra.get(host)
    if owner_id is None and role is None:
        return HttpResponse(status=404)
    member = _cookie_member(request, host, idx)
    if member is None:
        if _is_navigation(request):
            uri = request.META.get("HTTP_X_FORWARDED_URI", "/")
            target = f"{_forwarded_origin(request, host)}{uri}"
            return HttpResponseRedirect(f"{settings.PORTAL_URL}/gate/start/?rd={quote(target, safe='')}")
        return HttpResponse("Sign in through the portal first.", status=401)
    origin = request.META.get("HTTP_ORIGIN")
    if origin and origin != _forwarded_origin(request, host):
        return HttpResponse("Cross-origin request refused.", status=403)  # sibling-host CSRF / WS hijack
    if not _may_enter(member, owner_id, role):
        return HttpResponse(status=403)
    response = HttpResponse(status=204)
    response["X-Portal-User"] = member.username
    # Always sent: Traefik drops a client's own copy of every authResponseHeaders header.
    response["X-Portal-Role"] = "Admin" if member.is_staff else "Viewer"
    return response


def ticket_url(*, user_id: int, is_staff: bool, version: int, target: str) -> str | None:
    """The callback URL on the target's host carrying a single-use ticket; None unless
    ``target`` is an https URL (plain http only on a portal served without HTTPS) on a member
    or team service host this user may enter. The target's port is kept: the proxy may listen
    on another."""
    parts = urlsplit(target)
    host = (parts.hostname or "").lower()
    idx = index()
    owner_id, role = idx.hosts.get(host), idx.infra.get(host)
    schemes = ("https",) if settings.PORTAL_SECURE else ("https", "http")
    if parts.scheme not in schemes or (owner_id is None and role is None):
        return None
    if parts.username is not None or parts.password is not None:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    visitor = Member(user_id, "", 0, True, is_staff)
    if not _may_enter(visitor, owner_id, role):
        return None
    ticket = signing.dumps({"u": user_id, "h": host, "v": version, "n": secrets.token_urlsafe(16)}, salt=TICKET_SALT)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    return f"{origin}{CALLBACK_PATH}?t={quote(ticket, safe='')}&rd={quote(path, safe='')}"


def callback(request: HttpRequest) -> HttpResponse:
    """Exchange a ticket for the host-bound gate cookie (runs on the member host)."""
    host = request.META.get("HTTP_HOST", "").split(":")[0].lower()
    try:
        data = signing.loads(request.GET.get("t", ""), salt=TICKET_SALT, max_age=TICKET_MAX_AGE)
    except signing.BadSignature:
        return HttpResponse("This sign-in link has expired. Open the service from the portal again.", status=403)
    rd = request.GET.get("rd", "/")
    if data.get("h") != host or not rd.startswith("/") or rd.startswith("//") or "\\" in rd:
        return HttpResponse("This sign-in link is not valid for this address.", status=403)
    if not cache.add(f"gate-ticket:{data['n']}", 1, timeout=TICKET_MAX_AGE * 2):
        return HttpResponse("This sign-in link was already used. Open the service from the portal again.", status=403)
    response = HttpResponseRedirect(rd)
    value = signing.dumps({"u": data["u"], "h": host, "v": data["v"]}, salt=COOKIE_SALT)
    response.set_cookie(
        cookie_name(),
        value,
        max_age=settings.GATE_COOKIE_MAX_AGE,
        path="/",
        secure=settings.PORTAL_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


class GateMiddleware:
    """First in MIDDLEWARE: answers the gate's two paths before sessions, auth, host checks
    or HTTPS redirects run (Traefik calls over the internal network, on member hosts)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == AUTH_PATH:
            return forward_auth(request)
        if request.path_info == CALLBACK_PATH:
            return callback(request)
        return self.get_response(request)
