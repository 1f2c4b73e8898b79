"""The gate in front of the team services: one role per host from GATE_INFRA_HOSTS, the same
ticket flow, refusals and revocation as members' own hosts."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from django.core import signing
from django.test import Client

from portal.models import AuditEvent, User
from portal.services import member_suspend
from tests.workspaces.test_gate import ask, gate_cookie_via_tickets
from workspaces import gate

GRAFANA = "metrics.corp.example"
TENSORBOARD = "tensorboard.corp.example"
NETDATA = "health.corp.example"
ADMIN_ONLY = ["metrics", "health", "metrics-backend", "logs", "portainer"]
FOR_MEMBERS = ["remote", "tensorboard"]


@pytest.fixture(autouse=True)
def _fresh_index() -> Iterator[None]:
    gate.index_reset()
    yield
    gate.index_reset()


def test_every_team_service_of_the_seed_has_a_role(settings) -> None:
    expected = {f"{name}.corp.example": "staff" for name in ADMIN_ONLY}
    expected |= {f"{name}.corp.example": "member" for name in FOR_MEMBERS}
    assert expected == settings.GATE_INFRA_HOSTS


def test_a_logged_out_navigation_to_a_team_service_is_sent_to_the_portal(db: None) -> None:
    response = ask(Client(), NETDATA, navigate=True)
    assert response.status_code == 302
    assert quote(f"https://{NETDATA}/lab?x=1", safe="") in response["Location"]
    assert ask(Client(), NETDATA).status_code == 401


@pytest.mark.parametrize("name", FOR_MEMBERS)
def test_a_member_enters_the_services_for_members_as_a_viewer(alice: User, name: str) -> None:
    host = f"{name}.corp.example"
    browser = Client()
    response = ask(browser, host, cookie=gate_cookie_via_tickets(browser, alice, host))
    assert response.status_code == 204
    assert response["X-Portal-User"] == "alice"
    assert response["X-Portal-Role"] == "Viewer"


@pytest.mark.parametrize("name", ADMIN_ONLY)
def test_a_member_gets_no_ticket_for_an_admin_service_and_is_audited(alice_client: Client, name: str) -> None:
    response = alice_client.get("/gate/start/", {"rd": f"https://{name}.corp.example/"})
    assert response.status_code == 403
    refusal = AuditEvent.objects.get(action="gate.denied")
    assert refusal.actor.username == "alice"
    assert refusal.outcome == AuditEvent.Outcome.REFUSED


def test_a_member_cookie_signed_for_an_admin_host_is_refused(alice: User) -> None:
    cookie = signing.dumps({"u": alice.pk, "h": NETDATA, "v": alice.session_version}, salt=gate.COOKIE_SALT)
    assert ask(Client(), NETDATA, cookie=cookie).status_code == 403


@pytest.mark.parametrize("name", ADMIN_ONLY + FOR_MEMBERS)
def test_an_admin_enters_every_team_service_as_grafana_admin(admin_user: User, name: str) -> None:
    host = f"{name}.corp.example"
    browser = Client()
    response = ask(browser, host, cookie=gate_cookie_via_tickets(browser, admin_user, host))
    assert response.status_code == 204
    assert response["X-Portal-User"] == "ada"
    assert response["X-Portal-Role"] == "Admin"


def test_a_cookie_for_grafana_does_not_open_netdata(admin_user: User) -> None:
    cookie = gate_cookie_via_tickets(Client(), admin_user, GRAFANA)
    assert ask(Client(), NETDATA, cookie=cookie).status_code == 401


def test_a_cross_origin_request_to_a_team_service_is_refused(alice: User) -> None:
    cookie = gate_cookie_via_tickets(Client(), alice, TENSORBOARD)
    assert ask(Client(), TENSORBOARD, cookie=cookie, origin="https://alice-code.corp.example").status_code == 403


def test_suspension_shuts_a_member_out_of_the_team_services(alice: User, admin_user: User) -> None:
    cookie = gate_cookie_via_tickets(Client(), alice, TENSORBOARD)
    member_suspend(user=User.objects.get(pk=alice.pk), actor=admin_user)
    gate.index_reset()
    assert ask(Client(), TENSORBOARD, cookie=cookie).status_code == 401


def test_a_demoted_admin_loses_the_admin_services_at_the_next_index(admin_user: User) -> None:
    cookie = gate_cookie_via_tickets(Client(), admin_user, NETDATA)
    User.objects.filter(pk=admin_user.pk).update(is_staff=False)
    gate.index_reset()
    assert ask(Client(), NETDATA, cookie=cookie).status_code == 403


def test_only_the_owner_opens_their_filebrowser_host(alice: User, bob: User, admin_user: User) -> None:
    from portal.models import Host
    from workspaces.models import Workspace

    Workspace.objects.create(owner=alice, host=Host.local(), ssh_port=2291, slug="alice")
    files = "files-alice.corp.example"
    browser = Client()
    assert ask(browser, files, cookie=gate_cookie_via_tickets(browser, alice, files)).status_code == 204
    for intruder in (bob, admin_user):
        portal = Client()
        portal.force_login(intruder)
        assert portal.get("/gate/start/", {"rd": f"https://{files}/"}).status_code == 403
        forged = signing.dumps({"u": intruder.pk, "h": files, "v": intruder.session_version}, salt=gate.COOKIE_SALT)
        assert ask(Client(), files, cookie=forged).status_code == 403


def test_files_host_sends_each_member_to_their_own_workspaces_filebrowser(alice: User, bob: User) -> None:
    from portal.models import Host
    from workspaces.models import Workspace

    Workspace.objects.create(owner=alice, host=Host.local(), ssh_port=2292, slug="alice")
    portal = Client()
    portal.force_login(alice)
    assert portal.get("/workspaces/files/")["Location"] == "https://files-alice.corp.example"
    portal.force_login(bob)  # no workspace: nowhere to browse, and never alice's
    response = portal.get("/workspaces/files/", follow=True)
    assert response.redirect_chain[0][0] == "/"
    assert "create one first" in response.content.decode()


def test_a_host_not_in_the_list_is_unknown_to_the_gate(alice: User) -> None:
    assert ask(Client(), "grafana.corp.example", navigate=True).status_code == 404


def test_the_roles_come_from_the_environment_and_a_bad_entry_names_the_variable(monkeypatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from project.settings import _gate_infra_hosts

    monkeypatch.setenv("GATE_INFRA_ROLES", "grafana=member, netdata=staff")
    assert _gate_infra_hosts() == {"grafana.corp.example": "member", "netdata.corp.example": "staff"}
    for bad in ["grafana=everyone", "Bad_Name=staff", "metrics"]:
        monkeypatch.setenv("GATE_INFRA_ROLES", bad)
        with pytest.raises(ImproperlyConfigured, match="GATE_INFRA_ROLES"):
            _gate_infra_hosts()
