"""What the dashboard's workspace and team cards promise: under `make run` (no Traefik, no
Guacamole: PORTAL_WEB_ROUTES off) no link that ends in "connection refused", and the SSH way in
instead; a missing workspace image named with the command that builds it; and no CPU or memory
figures from before the container's latest start."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import Host, User
from tests.workspaces.conftest import make_workspace
from workspaces.models import Workspace

GUAC_KEY = "0123456789abcdef0123456789abcdef"
BUILD = "sudo workspaces/image/build-test-image.sh"


@pytest.fixture
def running(alice: User) -> Workspace:
    host = Host.local()
    Host.objects.filter(pk=host.pk).update(memory_bytes=64 * 1024**3, cpu_count=8)
    host.refresh_from_db()
    return make_workspace(alice, host, port=2222, state=Workspace.State.RUNNING, started_at=timezone.now())


@pytest.fixture
def development(settings):  # type: ignore[no-untyped-def]
    settings.PORTAL_WEB_ROUTES = False
    settings.SSH_HOST = "127.0.0.1"
    settings.GUACAMOLE_JSON_SECRET_KEY = ""
    return settings


def _dashboard(client: Client) -> str:
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    return response.content.decode()


def test_in_development_the_card_switches_the_browser_links_off_and_says_how_to_ssh_in(
    alice_client: Client, running: Workspace, development: object
) -> None:
    body = _dashboard(alice_client)
    assert "Not reachable here: needs Guacamole" in body
    assert body.count("Not reachable here: needs Traefik") == 2  # code-server and Jupyter
    assert "Development server: the browser links work only behind Traefik and Guacamole" in body
    assert "ssh -p 2222 alice@127.0.0.1" in body
    assert "ssh -p 2222 -L 8888:127.0.0.1:8888 -L 8080:127.0.0.1:8080 alice@127.0.0.1" in body
    for dead in (running.code_url, running.jupyter_url, reverse("workspaces:desktop", args=[running.pk])):
        assert f'href="{dead}"' not in body
    assert "signed in" not in body
    assert f'href="{reverse("workspaces:connect", args=[running.pk])}"' in body  # SSH / X2Go settings stay


def test_the_card_htmx_swaps_in_says_the_same(alice_client: Client, running: Workspace, development: object) -> None:
    body = alice_client.get(reverse("workspaces:card", args=[running.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "Not reachable here: needs Traefik" in body
    assert f'href="{running.code_url}"' not in body


def test_with_web_routes_the_card_links_desktop_code_server_and_jupyter(
    alice_client: Client, running: Workspace, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_WEB_ROUTES = True
    settings.GUACAMOLE_JSON_SECRET_KEY = GUAC_KEY
    body = _dashboard(alice_client)
    assert f'href="{running.code_url}"' in body
    assert f'href="{running.jupyter_url}"' in body
    assert f'href="{reverse("workspaces:desktop", args=[running.pk])}"' in body
    assert "KDE in the browser, signed in" in body
    assert "Not reachable here" not in body
    assert "Development server" not in body


def test_a_workspace_on_a_server_traefik_does_not_reach_offers_ssh_and_no_dead_links(
    alice_client: Client, alice: User, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_WEB_ROUTES = True
    settings.PORTAL_WEB_HOSTS = ["local"]  # the default: Traefik and guacd beside the portal only
    gpu2 = Host.objects.create(name="gpu2", queue="host.gpu2", memory_bytes=64 * 1024**3, cpu_count=8)
    far = make_workspace(alice, gpu2, port=2230, state=Workspace.State.RUNNING, started_at=timezone.now())
    body = _dashboard(alice_client)
    for dead in (far.code_url, far.jupyter_url, reverse("workspaces:desktop", args=[far.pk])):
        assert f'href="{dead}"' not in body
    assert "This workspace runs on gpu2, whose browser services the portal does not route" in body
    assert f"ssh -p 2230 -L 8888:127.0.0.1:8888 -L 8080:127.0.0.1:8080 alice@{far.ssh_host}" in body
    connect = alice_client.get(reverse("workspaces:connect", args=[far.pk])).content.decode()
    assert "this workspace runs on gpu2" in connect
    assert f'href="{far.jupyter_url}"' not in connect
    settings.PORTAL_WEB_HOSTS = ["local", "gpu2"]  # a Traefik and guacd that reach it too
    assert f'href="{far.jupyter_url}"' in _dashboard(alice_client)


def test_without_the_guacamole_key_the_desktop_link_does_not_promise_a_sign_in(
    alice_client: Client, running: Workspace, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_WEB_ROUTES = True
    settings.GUACAMOLE_JSON_SECRET_KEY = ""
    body = _dashboard(alice_client)
    assert "KDE in the browser, through Guacamole's login page" in body
    assert "signed in" not in body


def test_the_connect_page_in_development_offers_the_ssh_tunnel_not_dead_links(
    alice_client: Client, running: Workspace, development: object
) -> None:
    body = alice_client.get(reverse("workspaces:connect", args=[running.pk])).content.decode()
    assert "Not reachable on this development server" in body
    assert "ssh -p 2222 -L 8888:127.0.0.1:8888 -L 8080:127.0.0.1:8080 alice@127.0.0.1" in body
    assert f'href="{running.jupyter_url}"' not in body


def test_the_connect_page_with_web_routes_links_the_services(
    alice_client: Client, running: Workspace, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_WEB_ROUTES = True
    body = alice_client.get(reverse("workspaces:connect", args=[running.pk])).content.decode()
    assert f'href="{running.jupyter_url}"' in body
    assert "development server" not in body


def test_in_development_the_team_card_says_the_services_are_not_set_up(alice_client: Client, development) -> None:  # type: ignore[no-untyped-def]
    development.TEAM_LINKS = [
        ("Grafana", "https://metrics.localhost", "Dashboards"),
        ("Netdata", "https://health.localhost", "Live health"),
        ("TensorBoard", "http://127.0.0.1:6006", "Shared TensorBoard"),
    ]
    development.TEAM_LINKS_SET = frozenset({"TensorBoard"})  # LINK_TENSORBOARD was set
    body = _dashboard(alice_client)
    assert "Not set up on this development server: Grafana, Netdata." in body
    assert 'href="https://metrics.localhost"' not in body
    assert 'href="http://127.0.0.1:6006"' in body  # one the developer runs and linked


def test_with_web_routes_the_team_card_links_every_service(alice_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PORTAL_WEB_ROUTES = True
    body = _dashboard(alice_client)
    for host in ("metrics", "health", "remote", "files", "logs", "portainer", "tensorboard"):
        assert f'href="https://{host}.corp.example"' in body
    assert "Not set up on this development server" not in body


def test_a_missing_image_is_named_with_the_command_that_builds_it(alice_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.WORKSPACE_IMAGE = "portal/workspace-slim:test"
    settings.WORKSPACE_IMAGE_BUILD_HINT = BUILD
    body = _dashboard(alice_client)  # alice has no workspace yet: the invitation card
    assert 'The workspace image <span class="mono">portal/workspace-slim:test</span> is not on this machine' in body
    assert f'<span class="mono">{BUILD}</span>, then restart <span class="mono">make run</span>' in body


def test_a_stopped_workspace_card_names_the_missing_image_too(alice: User, alice_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.WORKSPACE_IMAGE_BUILD_HINT = BUILD
    make_workspace(alice, Host.local(), port=2223, state=Workspace.State.STOPPED)
    assert BUILD in _dashboard(alice_client)


def test_no_image_warning_when_the_image_is_there(alice_client: Client, running: Workspace, settings) -> None:  # type: ignore[no-untyped-def]
    settings.WORKSPACE_IMAGE_BUILD_HINT = ""
    assert "is not on this machine" not in _dashboard(alice_client)


def _with_stats(workspace: Workspace, *, measured_ago: timedelta, started_ago: timedelta) -> None:
    now = timezone.now()
    Workspace.objects.filter(pk=workspace.pk).update(
        started_at=now - started_ago, stats_at=now - measured_ago, cpu_percent=87.0, mem_usage=3 * 1024**3
    )


def test_figures_from_before_the_containers_start_are_not_shown(alice_client: Client, running: Workspace) -> None:
    # Restarted 10 s ago; the last figures are from a minute ago, the container before it.
    _with_stats(running, measured_ago=timedelta(minutes=1), started_ago=timedelta(seconds=10))
    body = _dashboard(alice_client)
    assert "Up for" in body
    assert "87%" not in body
    assert "Memory use" not in body


def test_figures_measured_since_the_start_are_shown(alice_client: Client, running: Workspace) -> None:
    _with_stats(running, measured_ago=timedelta(seconds=20), started_ago=timedelta(hours=2))
    body = _dashboard(alice_client)
    assert "87%" in body
    assert "3G of" in body
