"""render_deploy: Traefik's and cloudflared's files from the settings, and every refusal."""

from __future__ import annotations

import io
import re
import stat
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from workspaces.deploy import INFRA_BACKENDS

TUNNEL = "6ff42ae2-765d-4adf-8112-31c55c1551ef"
KEY = "k" * 40


@pytest.fixture
def deploy_settings(settings):  # type: ignore[no-untyped-def]
    settings.PORTAL_DOMAIN = "corp.example"
    settings.PORTAL_HOST = "portal.corp.example"
    settings.GATE_FORWARD_AUTH_KEY = KEY
    settings.TRAEFIK_ACME_EMAIL = "ops@corp.example"
    settings.CLOUDFLARED_TUNNEL_ID = TUNNEL
    return settings


def render(target: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    call_command("render_deploy", "--target", str(target), stdout=io.StringIO())
    return {
        name: yaml.safe_load((target / name).read_text())
        for name in ["traefik/traefik.yml", "traefik/dynamic.yml", "cloudflared/config.yml"]
    }


def test_the_dynamic_file_gates_every_team_service_through_the_portal(deploy_settings, tmp_path: Path) -> None:
    http = render(tmp_path)["traefik/dynamic.yml"]["http"]
    auth = http["middlewares"]["portal-auth"]["forwardAuth"]
    assert auth["address"] == f"http://portal:8000/_auth/traefik?k={KEY}"
    assert auth["trustForwardHeader"] is False
    assert auth["authResponseHeaders"] == ["X-Portal-User", "X-Portal-Role"]
    routed = {}
    for name, router in http["routers"].items():
        host = re.fullmatch(r"Host\(`([^`]+)`\)", router["rule"])
        if host:
            routed[host[1]] = (name, router)
    assert set(routed) == {"portal.corp.example", "files.corp.example", *deploy_settings.GATE_INFRA_HOSTS}
    for host, (name, router) in routed.items():
        if name == "files":
            continue
        assert router["entryPoints"] == ["websecure"]
        assert router["service"] in http["services"]
        if host == "portal.corp.example":
            assert "middlewares" not in router  # the portal does its own login
            assert router["tls"]["domains"] == [{"main": "corp.example", "sans": ["*.corp.example"]}]
        else:
            assert router["middlewares"] == ["portal-auth"], name
            backend = INFRA_BACKENDS[host.removesuffix(".corp.example")][1]
            assert http["services"][router["service"]]["loadBalancer"]["servers"] == [{"url": backend}]
    files = http["routers"]["files"]  # the portal sends each member on to their own FileBrowser
    assert files["rule"] == "Host(`files.corp.example`)"
    redirect = http["middlewares"][files["middlewares"][0]]["redirectRegex"]
    assert redirect["replacement"] == "https://portal.corp.example/workspaces/files/"
    gate = http["routers"]["portal-gate"]
    assert gate["rule"] == "HostRegexp(`^[a-z0-9-]+\\.corp\\.example$`) && PathPrefix(`/_portal/`)"
    assert gate["priority"] > 1000


def test_the_key_file_is_readable_by_its_owner_only(deploy_settings, tmp_path: Path) -> None:
    render(tmp_path)
    assert stat.S_IMODE((tmp_path / "traefik/dynamic.yml").stat().st_mode) == 0o600
    assert KEY not in (tmp_path / "cloudflared/config.yml").read_text()
    assert KEY not in (tmp_path / "traefik/traefik.yml").read_text()


def test_the_tunnel_sends_the_portal_and_the_wildcard_to_traefik_and_404s_the_rest(deploy_settings, tmp_path) -> None:
    tunnel = render(tmp_path)["cloudflared/config.yml"]
    assert tunnel["tunnel"] == TUNNEL
    assert tunnel["credentials-file"] == "/run/secrets/cloudflared-credentials"
    rules = tunnel["ingress"]
    assert [rule.get("hostname") for rule in rules] == ["portal.corp.example", "*.corp.example", None]
    assert all(rule["service"] == "https://traefik:443" for rule in rules[:2])
    assert all(rule["originRequest"] == {"originServerName": "portal.corp.example"} for rule in rules[:2])
    assert rules[-1] == {"service": "http_status:404"}


def test_without_a_tunnel_id_there_is_no_tunnel_config_not_even_an_old_one(deploy_settings, tmp_path) -> None:
    render(tmp_path)
    deploy_settings.CLOUDFLARED_TUNNEL_ID = ""
    call_command("render_deploy", "--target", str(tmp_path), stdout=io.StringIO())
    assert not (tmp_path / "cloudflared/config.yml").exists()
    assert (tmp_path / "traefik/dynamic.yml").exists()


def test_the_static_file_names_the_acme_address_and_the_file_provider(deploy_settings, tmp_path) -> None:
    static = render(tmp_path)["traefik/traefik.yml"]
    assert static["certificatesResolvers"]["le"]["acme"]["email"] == "ops@corp.example"
    assert static["providers"]["file"]["filename"] == "/etc/traefik/dynamic.yml"
    assert static["providers"]["docker"]["exposedByDefault"] is False


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORTAL_DOMAIN", "localhost", "PORTAL_DOMAIN: 'localhost' is not a domain name"),
        ("PORTAL_DOMAIN", "corp.example`) || Host(`evil.example", "PORTAL_DOMAIN"),
        ("PORTAL_HOST", "portal.other.example", "PORTAL_HOST: 'portal.other.example' is not under PORTAL_DOMAIN"),
        ("GATE_FORWARD_AUTH_KEY", "change-me-too", "GATE_FORWARD_AUTH_KEY: 'change-me-too' is not 24+"),
        ("GATE_FORWARD_AUTH_KEY", "x" * 30 + "&k=", "GATE_FORWARD_AUTH_KEY"),
        ("TRAEFIK_ACME_EMAIL", "", "TRAEFIK_ACME_EMAIL is required but not set"),
        ("CLOUDFLARED_TUNNEL_ID", "my-tunnel", "CLOUDFLARED_TUNNEL_ID: 'my-tunnel' is not a tunnel UUID"),
        ("GATE_INFRA_HOSTS", {"grafana.corp.example": "member"}, "GATE_INFRA_ROLES: 'grafana' is not a service"),
    ],
)
def test_a_bad_value_fails_naming_its_variable_and_writes_nothing(
    deploy_settings, tmp_path: Path, variable: str, value: object, message: str
) -> None:
    setattr(deploy_settings, variable, value)
    with pytest.raises(CommandError, match=re.escape(message)):
        render(tmp_path)
    assert list(tmp_path.iterdir()) == []
