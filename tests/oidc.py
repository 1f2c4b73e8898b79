"""The local OpenID Connect provider that stands in for Google (PyPI oidc-provider-mock), shared
by the login unit tests and the browser tests. project/settings_test.py points allauth's google
provider at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlencode, urlsplit

import oidc_provider_mock
import requests
from django.conf import settings
from django.http import HttpResponse
from django.test import Client

MOCK_URL: str = settings.OIDC_MOCK_URL
DOMAIN = "corp.example"


@contextmanager
def oidc_mock_server() -> Iterator[str]:
    """Serve the mock on the fixed port allauth points at. If one of these session fixtures
    already serves it (unit tests and browser tests both want one), reuse that."""
    if _serving():
        yield MOCK_URL
        return
    with oidc_provider_mock.run_server_in_thread(port=settings.OIDC_MOCK_PORT):
        yield MOCK_URL


def _serving() -> bool:
    try:
        return requests.get(f"{MOCK_URL}/.well-known/openid-configuration", timeout=2).ok
    except requests.ConnectionError:
        return False


def google_person(
    sub: str, *, email: str, hd: str | None = DOMAIN, email_verified: bool = True, name: str = ""
) -> None:
    """Tell the mock who ``sub`` is: the claims Google would put into the ID token."""
    claims: dict[str, object] = {"email": email, "email_verified": email_verified, "name": name or sub}
    if hd is not None:
        claims["hd"] = hd
    requests.put(f"{MOCK_URL}/users/{quote(sub, safe='')}", json=claims, timeout=5).raise_for_status()


def google_login_start(client: Client, *, next_url: str = "", process: str = "login") -> str:
    """POST the "Sign in with Google" form; return the provider's authorize URL it sends us to."""
    query = {"process": process, **({"next": next_url} if next_url else {})}
    start = client.post(f"/accounts/google/login/?{urlencode(query)}")
    assert start.status_code == 302, start.content
    assert start["Location"].startswith(f"{MOCK_URL}/oauth2/authorize")
    return str(start["Location"])


def google_login(client: Client, sub: str, *, next_url: str = "") -> HttpResponse:
    """The whole Google round trip without a browser: start at allauth, "authorize" at the
    mock as ``sub``, and return the portal's answer to the callback."""
    authorize_url = google_login_start(client, next_url=next_url)
    consent = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=5)
    assert consent.status_code == 302, consent.text
    callback = urlsplit(consent.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")
