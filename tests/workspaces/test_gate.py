"""The forward-auth gate: Traefik's question, the ticket hand-off and the host-bound cookie."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.core import signing
from django.core.cache import cache
from django.test import Client

from portal.models import AuditEvent, Host, User
from portal.services import member_suspend
from workspaces import gate
from workspaces.models import Workspace, service_hosts

KEY = "gate-test-key"
ALICE_CODE = "alice-code.corp.example"
ALICE_JUPYTER = "jupyter-alice.corp.example"
BOB_CODE = "bob-code.corp.example"


@pytest.fixture(autouse=True)
def _fresh_index() -> Iterator[None]:
    gate.index_reset()
    yield
    gate.index_reset()


@pytest.fixture(autouse=True)
def alice_workspace(alice: User) -> Workspace:
    """Hosts exist for workspaces: alice has one; bob and the admin do not need any."""
    return Workspace.objects.create(owner=alice, host=Host.local(), ssh_port=2290, slug="alice")


def ask(client: Client, host: str, *, cookie: str = "", navigate: bool = False, origin: str = "", key: str = KEY):
    headers = {"HTTP_X_FORWARDED_HOST": host, "HTTP_X_FORWARDED_URI": "/lab?x=1", "HTTP_HOST": "portal"}
    if navigate:
        headers["HTTP_SEC_FETCH_MODE"] = "navigate"
    if origin:
        headers["HTTP_ORIGIN"] = origin
    if cookie:
        client.cookies[gate.cookie_name()] = cookie
    return client.get(f"/_auth/traefik?k={key}", **headers)


def gate_cookie_via_tickets(client: Client, user: User, host: str) -> str:
    """Walk steps 2 and 3 as the browser would and return the cookie the callback set."""
    portal = Client()
    portal.force_login(user)
    start = portal.get(f"/gate/start/?rd={quote(f'https://{host}/lab?x=1', safe='')}")
    assert start.status_code == 302, start.status_code
    location = urlsplit(start["Location"])
    assert location.hostname == host
    assert location.path == gate.CALLBACK_PATH
    done = client.get(f"{location.path}?{location.query}", HTTP_HOST=host)
    assert done.status_code == 302
    assert done["Location"] == "/lab?x=1"
    return done.cookies[gate.cookie_name()].value


def test_a_navigation_without_cookie_is_sent_to_the_portal(alice: User) -> None:
    response = ask(Client(), ALICE_CODE, navigate=True)
    assert response.status_code == 302
    assert "/gate/start/?rd=" in response["Location"]
    assert quote(f"https://{ALICE_CODE}/lab?x=1", safe="") in response["Location"]


def test_a_background_request_without_cookie_gets_401(alice: User) -> None:
    assert ask(Client(), ALICE_CODE).status_code == 401


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}, 302),
        ({"HTTP_ACCEPT": "text/html", "HTTP_X_FORWARDED_METHOD": "POST"}, 401),
        ({"HTTP_ACCEPT": "application/json"}, 401),
        ({"HTTP_ACCEPT": "text/html", "HTTP_SEC_FETCH_MODE": "cors"}, 401),
    ],
)
def test_without_sec_fetch_mode_a_get_for_html_counts_as_a_navigation(
    alice: User, headers: dict[str, str], status: int
) -> None:
    response = Client().get(
        f"/_auth/traefik?k={KEY}", HTTP_X_FORWARDED_HOST=ALICE_CODE, HTTP_X_FORWARDED_URI="/", **headers
    )
    assert response.status_code == status


def test_a_wrong_key_is_answered_as_if_nothing_was_there(alice: User) -> None:
    assert ask(Client(), ALICE_CODE, key="guess").status_code == 404


def test_an_unknown_host_is_refused(alice: User) -> None:
    assert ask(Client(), "mallory-code.corp.example", navigate=True).status_code == 404


def test_the_owner_passes_with_the_cookie_from_the_ticket_flow(alice: User) -> None:
    browser = Client()
    cookie = gate_cookie_via_tickets(browser, alice, ALICE_CODE)
    response = ask(browser, ALICE_CODE, cookie=cookie)
    assert response.status_code == 204
    assert response["X-Portal-User"] == "alice"


def test_the_gate_touches_neither_session_nor_database(alice: User, django_assert_num_queries) -> None:
    cookie = gate_cookie_via_tickets(Client(), alice, ALICE_CODE)
    gate.index()  # built once per TTL, not per request
    with django_assert_num_queries(0):
        response = ask(Client(), ALICE_CODE, cookie=cookie)
    assert response.status_code == 204
    assert "Set-Cookie" not in response.headers


def test_a_cookie_is_bound_to_its_host(alice: User) -> None:
    cookie = gate_cookie_via_tickets(Client(), alice, ALICE_CODE)
    assert ask(Client(), ALICE_JUPYTER, cookie=cookie).status_code == 401


def test_another_member_cannot_get_a_ticket_for_alices_host(alice: User, bob: User) -> None:
    portal = Client()
    portal.force_login(bob)
    response = portal.get(f"/gate/start/?rd={quote(f'https://{ALICE_CODE}/', safe='')}")
    assert response.status_code == 403
    refusal = AuditEvent.objects.get(action="gate.denied")
    assert refusal.actor == bob
    assert refusal.outcome == AuditEvent.Outcome.REFUSED


def test_a_forged_cookie_for_alices_host_does_not_pass(alice: User, bob: User) -> None:
    forged = signing.dumps({"u": alice.pk, "h": ALICE_CODE, "v": 0}, key="not-our-key", salt=gate.COOKIE_SALT)
    assert ask(Client(), ALICE_CODE, cookie=forged).status_code == 401


def test_bobs_own_cookie_does_not_open_alices_host(alice: User, bob: User) -> None:
    bobs = signing.dumps({"u": bob.pk, "h": ALICE_CODE, "v": bob.session_version}, salt=gate.COOKIE_SALT)
    assert ask(Client(), ALICE_CODE, cookie=bobs).status_code == 403


def test_admins_stay_out_of_members_services_by_default(alice: User, admin_user: User) -> None:
    cookie = signing.dumps({"u": admin_user.pk, "h": ALICE_CODE, "v": 0}, salt=gate.COOKIE_SALT)
    assert ask(Client(), ALICE_CODE, cookie=cookie).status_code == 403


def test_admins_may_enter_when_policy_allows(alice: User, admin_user: User, settings) -> None:
    settings.GATE_ALLOW_ADMINS = True
    cookie = gate_cookie_via_tickets(Client(), admin_user, ALICE_CODE)
    assert ask(Client(), ALICE_CODE, cookie=cookie).status_code == 204


def test_a_cross_origin_request_is_refused_even_with_a_cookie(alice: User) -> None:
    cookie = gate_cookie_via_tickets(Client(), alice, ALICE_CODE)
    response = ask(Client(), ALICE_CODE, cookie=cookie, origin=f"https://{BOB_CODE}")
    assert response.status_code == 403
    same_origin = ask(Client(), ALICE_CODE, cookie=cookie, origin=f"https://{ALICE_CODE}")
    assert same_origin.status_code == 204


def test_suspension_revokes_the_gate_cookie(alice: User, admin_user: User) -> None:
    cookie = gate_cookie_via_tickets(Client(), alice, ALICE_CODE)
    member_suspend(user=User.objects.get(pk=alice.pk), actor=admin_user)
    gate.index_reset()  # in production: within GATE_INDEX_TTL seconds
    assert ask(Client(), ALICE_CODE, cookie=cookie).status_code == 401


def test_a_ticket_works_once(alice: User) -> None:
    portal = Client()
    portal.force_login(alice)
    start = portal.get(f"/gate/start/?rd={quote(f'https://{ALICE_CODE}/', safe='')}")
    location = urlsplit(start["Location"])
    first = Client().get(f"{location.path}?{location.query}", HTTP_HOST=ALICE_CODE)
    again = Client().get(f"{location.path}?{location.query}", HTTP_HOST=ALICE_CODE)
    assert first.status_code == 302
    assert again.status_code == 403
    assert "already used" in again.content.decode()


def test_a_ticket_for_one_host_is_refused_on_another(alice: User) -> None:
    portal = Client()
    portal.force_login(alice)
    start = portal.get(f"/gate/start/?rd={quote(f'https://{ALICE_CODE}/', safe='')}")
    location = urlsplit(start["Location"])
    response = Client().get(f"{location.path}?{location.query}", HTTP_HOST=ALICE_JUPYTER)
    assert response.status_code == 403


@pytest.mark.parametrize("rd", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_the_callback_never_redirects_off_the_host(alice: User, rd: str) -> None:
    ticket = signing.dumps({"u": alice.pk, "h": ALICE_CODE, "v": 0, "n": f"n-{rd}"}, salt=gate.TICKET_SALT)
    response = Client().get(gate.CALLBACK_PATH, {"t": ticket, "rd": rd}, HTTP_HOST=ALICE_CODE)
    assert response.status_code == 403
    cache.delete(f"gate-ticket:n-{rd}")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "",
        "javascript:x",
        "https://mallory@alice-code.corp.example/",
        "https://alice-code.corp.example:99999/",
        "ftp://alice-code.corp.example/",
    ],
)
def test_gate_start_refuses_targets_that_are_not_member_hosts(alice_client: Client, target: str) -> None:
    response = alice_client.get("/gate/start/", {"rd": target})
    assert response.status_code == 403


def test_a_portal_on_https_refuses_plain_http_targets(alice_client: Client, settings) -> None:
    settings.PORTAL_SECURE = True
    response = alice_client.get("/gate/start/", {"rd": f"http://{ALICE_CODE}/"}, secure=True)
    assert response.status_code == 403


def test_a_proxy_on_another_port_keeps_its_scheme_and_port_through_the_flow(alice: User) -> None:
    """caddy on http://...:8080 (the proxy e2e test): the redirect, the ticket and the Origin
    check all use the origin the browser is on, not a hard-coded https://host."""
    headers = {"HTTP_X_FORWARDED_HOST": f"{ALICE_CODE}:8080", "HTTP_X_FORWARDED_PROTO": "http"}
    first = Client().get(
        f"/_auth/traefik?k={KEY}", HTTP_X_FORWARDED_URI="/lab", HTTP_SEC_FETCH_MODE="navigate", **headers
    )
    target = parse_qs(urlsplit(first["Location"]).query)["rd"][0]
    assert target == f"http://{ALICE_CODE}:8080/lab"
    portal = Client()
    portal.force_login(alice)
    ticket = urlsplit(portal.get("/gate/start/", {"rd": target})["Location"])
    assert (ticket.scheme, ticket.hostname, ticket.port) == ("http", ALICE_CODE, 8080)
    browser = Client()
    browser.get(f"{ticket.path}?{ticket.query}", HTTP_HOST=f"{ALICE_CODE}:8080")
    ask_ = functools.partial(browser.get, f"/_auth/traefik?k={KEY}", **headers)
    assert ask_(HTTP_ORIGIN=f"http://{ALICE_CODE}:8080").status_code == 204
    assert ask_(HTTP_ORIGIN=f"http://{ALICE_CODE}").status_code == 403
    assert ask_(HTTP_ORIGIN=f"https://{ALICE_CODE}:8080").status_code == 403


def test_an_expired_ticket_is_refused(alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    ticket = signing.dumps({"u": alice.pk, "h": ALICE_CODE, "v": 0, "n": "expired"}, salt=gate.TICKET_SALT)
    monkeypatch.setattr(gate, "TICKET_MAX_AGE", -1)
    response = Client().get(gate.CALLBACK_PATH, {"t": ticket, "rd": "/"}, HTTP_HOST=ALICE_CODE)
    assert response.status_code == 403
    assert "expired" in response.content.decode()


def test_usernames_that_would_share_a_host_are_refused(alice: User) -> None:
    from django.core.exceptions import ValidationError

    from tests.factories import UserFactory

    UserFactory(username="a_b")
    clash = User(username="a-b", email="ab2@corp.example")
    with pytest.raises(ValidationError, match="share web addresses"):
        clash.full_clean()


def test_named_workspaces_get_hosts_of_their_own(alice: User) -> None:
    Workspace.objects.create(owner=alice, name="gpu", host=Host.local(), ssh_port=2291, slug="alice-gpu")
    assert gate.index().hosts["alice-gpu-code.corp.example"] == alice.pk
    assert gate.index().hosts["jupyter-alice-gpu.corp.example"] == alice.pk


def test_a_member_without_a_workspace_has_no_host(bob: User) -> None:
    assert not set(service_hosts("bob", "corp.example")) & set(gate.index().hosts)


def test_the_portal_url_in_redirects_is_absolute(alice: User) -> None:
    location = ask(Client(), ALICE_CODE, navigate=True)["Location"]
    assert location.startswith(("http://", "https://"))
    assert parse_qs(urlsplit(location).query)["rd"] == [f"https://{ALICE_CODE}/lab?x=1"]


def test_a_gate_cookie_expires_after_its_max_age(alice: User, settings) -> None:
    cookie = gate_cookie_via_tickets(Client(), alice, ALICE_CODE)
    assert ask(Client(), ALICE_CODE, cookie=cookie).status_code == 204
    settings.GATE_COOKIE_MAX_AGE = -1  # the memoized signature check must not skip the age check
    assert ask(Client(), ALICE_CODE, cookie=cookie).status_code == 401
