"""One-click desktop sign-in: the Guacamole token is opened here the way guacamole-auth-json
opens it (AES-128-CBC with a zero IV, PKCS7, a leading HMAC-SHA256 checked over the JSON),
and the view hands it only to the workspace's owner."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEvent, Host, Operation, SSHKey, User
from tests.workspaces.conftest import make_workspace, small_quota
from workspaces.desktop import client_id, desktop_password, desktop_url, guacamole_seal, guacamole_token
from workspaces.models import Workspace
from workspaces.steps import Run, _spec

KEY = "4C0B569E4C96DF157EEE1B65DD0E4D41"  # the key of the guacamole-auth-json manual's example
OTHER_KEY = "00112233445566778899aabbccddeeff"
GUAC = "https://remote.corp.example"
NOW = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def open_token(key_hex: str, token: str) -> dict[str, Any]:
    """What Guacamole does with ``data``: decrypt, unpad, split off and check the signature."""
    key = bytes.fromhex(key_hex)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    padded = decryptor.update(base64.b64decode(token, validate=True)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    plain = unpadder.update(padded) + unpadder.finalize()
    signature, body = plain[:32], plain[32:]
    if not hmac.compare_digest(signature, hmac.new(key, body, hashlib.sha256).digest()):
        raise ValueError("signature mismatch")
    return json.loads(body)  # type: ignore[no-any-return]


def unsaved_workspace(username: str = "alice", name: str = "", pk: int = 7) -> Workspace:
    owner = User(username=username, uid=2001)
    created = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    return Workspace(id=pk, owner=owner, host=Host(name="gpu1"), name=name, ssh_port=2231, created=created)


def link_parts(url: str) -> tuple[str, str, str]:
    """(Guacamole's address, the client route, the token) of a one-click link."""
    base, _, fragment = url.partition("#")
    route, _, query = fragment.partition("?")
    (token,) = parse_qs(query, strict_parsing=True)["data"]
    return base, route, token


@pytest.fixture
def guac(settings):  # type: ignore[no-untyped-def]
    settings.GUACAMOLE_URL = GUAC
    settings.GUACAMOLE_JSON_SECRET_KEY = KEY
    settings.GATE_ALLOW_ADMINS = False
    return settings


def test_the_token_carries_one_rdp_connection_to_the_members_own_container(guac) -> None:  # type: ignore[no-untyped-def]
    workspace = unsaved_workspace()
    _, _, token = link_parts(desktop_url(workspace, now=NOW))
    assert open_token(KEY, token) == {
        "username": "alice",
        "expires": int(NOW.timestamp()) * 1000 + 890 + 60_000,
        "singleUse": True,
        "connections": {
            "ws-alice": {
                "protocol": "rdp",
                "parameters": {
                    "hostname": "ws-alice",
                    "port": "3389",
                    "username": "alice",
                    "password": desktop_password(workspace),
                    "security": "any",
                    "ignore-cert": "true",
                    "resize-method": "display-update",
                    "server-layout": "en-us-qwerty",
                },
            }
        },
    }


def test_the_token_is_signed_over_compact_json() -> None:
    token = guacamole_token(KEY, {"username": "alice", "expires": 1})
    raw = Cipher(algorithms.AES(bytes.fromhex(KEY)), modes.CBC(bytes(16))).decryptor().update(base64.b64decode(token))
    assert raw[32:].startswith(b'{"username":"alice","expires":1}')


def test_a_token_made_with_another_key_does_not_open() -> None:
    token = guacamole_token(OTHER_KEY, {"username": "alice", "expires": 1})
    assert open_token(OTHER_KEY, token) == {"username": "alice", "expires": 1}
    with pytest.raises(ValueError, match=r"padding|signature"):
        open_token(KEY, token)


def test_it_reproduces_the_reference_output_of_the_guacamole_manual() -> None:
    # apache/guacamole-manual src/json-auth.md: encrypt-json.sh with this key and auth.json
    # (two-space indents, no final newline) gives exactly this base64.
    body = """{
  "username" : "test",
  "expires" : "1446323765000",
  "connections" : {
    "My Connection" : {
      "protocol" : "rdp",
      "parameters" : {
        "hostname" : "10.10.209.63",
        "port" : "3389",
        "ignore-cert": "true",
        "recording-path": "/recordings",
        "recording-name": "My-Connection-${GUAC_USERNAME}-${GUAC_DATE}-${GUAC_TIME}"
      }
    },
    "My OTHER Connection" : {
      "protocol" : "rdp",
      "parameters" : {
        "hostname" : "10.10.209.64",
        "port" : "3389",
        "ignore-cert": "true",
        "recording-path": "/recordings",
        "recording-name": "My-OTHER-Connection-${GUAC_USERNAME}-${GUAC_DATE}-${GUAC_TIME}"
      }
    }
  }
}"""
    expected = (
        "A2Pf5Kpmm97I2DT1PifIrfU6q3yzoGcIbNXEd60WNangT8DAVjAl6luaqwhBJnCK"
        "uqcf9ZZlRo3uDxTHvUM3eq1YvdghL0GbosOn8Mn38j2ydOMk+Cd15a8ggb4/ddt/"
        "yIBK4DxrN7MNbouZ091KYtXC6m20E6sGzLy676BlMSg1cmsENRIihOynsSLSCvo0"
        "diif6H7T+ZuIqF7B5SW+adGfMaHlfknlIvSpLGHhrIP4aMYE/ZU2vYNg8ez27sCS"
        "wDBWu5lERtfCYFyU4ysjRU5Hyov+yKa+O7jcRYpw3N+fHbCg7/dxVNW07qNOKssv"
        "pzUciGvDPUCPpa02WmPJNEBowwQireO1952/MNAI77cW2UepbljD/bwOiZl2THJz"
        "LrENo7K5acimBa+EjWEesgn7lx/WTCF3zxR6TH1CWrQM8Et1aUK1Nf8K11xEQbTy"
        "klyaNtCmTfyahRZ/fUPxDNrdJVpPOSELkf7RJO5tOdK/FFIFIbze3ZUyXgRq+pHY"
        "owpgOmudDBTBlxhXiONdutRI/RZbFM/7GBMdmI8AR/401OCV3nsI4jLhukjMXH3V"
        "f3pQg+xKMhi/QExHhDk8VTNYk7GurK4vgehn7HQ0oSGh8pGcmxB6W43cz+hyn6VQ"
        "On6i90cSnIhRO8SysZt332LwJCDm7I+lBLaI8NVHU6bnAY1Axx5oH3YTKc4qzHls"
        "HEAFYLkD6aHMvHkF3b798CMravjxiJV3m7hsXDbaFN6AFhn8GIkMRRrjuevfZ+q9"
        "enWN14s24vt5OVg69DljzALobUNKUXFx69SR8EpSBvUcKq8s/OgbDpFvKbwsDY57"
        "HGT4T0CuRIA0TGUI075uerKBNApVhuBA1BmWJIrI4JXw5MuX6pdBe+MYccO3vfo+"
        "/frazj8rHdkDa/IbueMbvq+1ozV2+UuxrbaTrV2i4jSRgd74U0QzOh9e8Q0i7vOi"
        "l3hnIfOfg+v1oULmZmJSeiAYWxeGvPptp+n7rNFqHGM="
    )
    assert guacamole_seal(KEY, body.encode()) == expected


@pytest.mark.parametrize("key", ["4C0B569E4C96DF157EEE1B65DD0E4D", "4C0B569E4C96DF157EEE1B65DD0E4D41AA"])
def test_it_refuses_a_key_that_is_not_128_bits(key: str) -> None:
    with pytest.raises(ValueError, match="32 hex digits"):
        guacamole_token(key, {"username": "alice"})


def test_the_client_id_names_the_connection_type_and_data_source() -> None:
    assert client_id("alice-desktop") == base64.urlsafe_b64encode(b"alice-desktop\x00c\x00json").decode().rstrip("=")
    assert client_id("alice-desktop") == "YWxpY2UtZGVza3RvcABjAGpzb24"
    assert "=" not in client_id("ws-bob")


def test_the_link_opens_the_connection_in_guacamoles_client_route(guac) -> None:  # type: ignore[no-untyped-def]
    url = desktop_url(unsaved_workspace(name="gpu2"), now=NOW)
    base, route, token = link_parts(url)
    assert base == f"{GUAC}/"
    assert route == f"/client/{client_id('ws-alice-gpu2')}"
    query = url.partition("?")[2]
    assert "+" not in query  # the token is URL-encoded
    assert "/" not in query
    assert set(open_token(KEY, token)["connections"]) == {"ws-alice-gpu2"}


def test_the_token_expires_a_minute_after_now(guac) -> None:  # type: ignore[no-untyped-def]
    later = NOW + timedelta(hours=5)
    _, _, token = link_parts(desktop_url(unsaved_workspace(), now=later))
    expires = datetime.fromtimestamp(open_token(KEY, token)["expires"] / 1000, tz=UTC)
    assert expires - later == timedelta(seconds=60)


def test_the_desktop_password_is_stable_and_differs_between_workspaces(settings) -> None:  # type: ignore[no-untyped-def]
    first = desktop_password(unsaved_workspace())
    assert first == desktop_password(unsaved_workspace())
    assert len(first) == 32
    assert int(first, 16) >= 0  # hex: safe for chpasswd and RDP
    assert desktop_password(unsaved_workspace(pk=8)) != first
    settings.SECRET_KEY = "another-secret-key-" + "y" * 40
    assert desktop_password(unsaved_workspace()) != first


def test_the_password_does_not_depend_on_the_time_zone_created_is_read_in() -> None:
    workspace = unsaved_workspace()
    shifted = unsaved_workspace()
    shifted.created = workspace.created.astimezone(timezone.get_fixed_timezone(120))
    assert desktop_password(shifted) == desktop_password(workspace)


# --- the view --------------------------------------------------------------------------


@pytest.fixture
def ws_host(db: None) -> Host:
    return Host.objects.create(name="gpu1", queue="host.gpu1", memory_bytes=64 * 1024**3, cpu_count=8)


@pytest.fixture
def running_ws(alice: User, ws_host: Host) -> Workspace:
    small_quota(alice)
    return make_workspace(alice, ws_host, port=2222, state=Workspace.State.RUNNING)


def open_desktop(client: Client, workspace: Workspace):  # type: ignore[no-untyped-def]
    return client.get(reverse("workspaces:desktop", args=[workspace.pk]))


def test_the_owner_is_sent_to_guacamole_signed_into_their_desktop(
    guac,  # type: ignore[no-untyped-def]
    alice_client: Client,
    running_ws: Workspace,
) -> None:
    before = timezone.now()
    response = open_desktop(alice_client, running_ws)
    assert response.status_code == 302
    assert "no-store" in response["Cache-Control"]
    base, route, token = link_parts(response["Location"])
    assert (base, route) == (f"{GUAC}/", f"/client/{client_id('ws-alice')}")
    data = open_token(KEY, token)
    assert data["username"] == "alice"
    assert data["connections"]["ws-alice"]["parameters"]["password"] == desktop_password(running_ws)
    assert 0 < data["expires"] - before.timestamp() * 1000 <= 61_000
    event = AuditEvent.objects.get(action="workspace.desktop_open")
    assert event.outcome == AuditEvent.Outcome.OK
    assert (event.actor, event.target_id) == (running_ws.owner, str(running_ws.pk))


def test_another_member_is_refused_and_the_refusal_is_audited(
    guac,  # type: ignore[no-untyped-def]
    bob_client: Client,
    running_ws: Workspace,
) -> None:
    response = open_desktop(bob_client, running_ws)
    assert response.status_code == 403
    event = AuditEvent.objects.get(action="workspace.desktop_denied")
    assert event.outcome == AuditEvent.Outcome.REFUSED
    assert event.actor_label == "bob"
    assert not AuditEvent.objects.filter(action="workspace.desktop_open").exists()


def test_an_admin_is_refused_unless_the_gate_lets_admins_in(
    guac,  # type: ignore[no-untyped-def]
    admin_client: Client,
    admin_user: User,
    running_ws: Workspace,
) -> None:
    assert open_desktop(admin_client, running_ws).status_code == 403
    assert AuditEvent.objects.filter(action="workspace.desktop_denied", actor=admin_user).count() == 1
    guac.GATE_ALLOW_ADMINS = True
    response = open_desktop(admin_client, running_ws)
    assert response.status_code == 302
    assert open_token(KEY, link_parts(response["Location"])[2])["username"] == "alice"
    assert AuditEvent.objects.get(action="workspace.desktop_open").actor == admin_user


def test_a_stopped_workspace_sends_the_member_back_to_start_it(
    guac,  # type: ignore[no-untyped-def]
    alice_client: Client,
    running_ws: Workspace,
) -> None:
    Workspace.objects.filter(pk=running_ws.pk).update(state=Workspace.State.STOPPED)
    response = alice_client.get(reverse("workspaces:desktop", args=[running_ws.pk]), follow=True)
    assert response.redirect_chain == [(reverse("dashboard"), 302)]
    assert "Start your workspace first" in response.content.decode()
    assert not AuditEvent.objects.filter(action="workspace.desktop_open").exists()


def test_without_the_shared_key_it_opens_guacamoles_own_login(
    guac,  # type: ignore[no-untyped-def]
    alice_client: Client,
    running_ws: Workspace,
) -> None:
    guac.GUACAMOLE_JSON_SECRET_KEY = ""
    response = open_desktop(alice_client, running_ws)
    assert response.status_code == 302
    assert response["Location"] == GUAC
    page = alice_client.get(reverse("dashboard")).content.decode()
    assert "One-click sign-in to the desktop isn" in page
    assert not AuditEvent.objects.filter(action="workspace.desktop_open").exists()


def test_the_card_of_a_running_workspace_links_to_the_one_click_desktop(
    alice_client: Client, running_ws: Workspace
) -> None:
    body = alice_client.get(reverse("workspaces:card", args=[running_ws.pk])).content.decode()
    assert f'href="{reverse("workspaces:desktop", args=[running_ws.pk])}"' in body
    connect = alice_client.get(reverse("workspaces:connect", args=[running_ws.pk])).content.decode()
    assert f'href="{reverse("workspaces:desktop", args=[running_ws.pk])}"' in connect
    assert f"pick {running_ws.container_name} there" not in connect
    assert "comes with the Guacamole integration" not in connect


def test_the_worker_gives_the_container_the_same_password_guacamole_is_sent(running_ws: Workspace) -> None:
    SSHKey.objects.filter(user=running_ws.owner).delete()
    workspace = Workspace.objects.with_related().get(pk=running_ws.pk)
    spec = _spec(Run(op=Operation(kind="start"), workspace=workspace))
    assert spec.environment["PORTAL_DESKTOP_PASSWORD"] == desktop_password(running_ws)
