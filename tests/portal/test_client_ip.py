"""The client address the audit log records and the rate limits count by."""

from __future__ import annotations

import ipaddress

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from portal.audit import client_ip
from portal.env import env_networks

TRAEFIK = "172.30.0.2"


@pytest.fixture
def behind_traefik(settings) -> None:
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("172.30.0.0/24")]


def _request(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_trusted_proxies_the_header_is_ignored(settings) -> None:
    settings.TRUSTED_PROXIES = []
    assert client_ip(_request("198.51.100.7", "203.0.113.99")) == "198.51.100.7"


def test_a_client_outside_the_trusted_networks_cannot_choose_its_address(behind_traefik) -> None:
    assert client_ip(_request("198.51.100.7", "203.0.113.99")) == "198.51.100.7"


def test_behind_the_proxy_the_hop_it_appended_is_the_client(behind_traefik) -> None:
    assert client_ip(_request(TRAEFIK, "198.51.100.7")) == "198.51.100.7"


def test_a_forged_left_part_of_the_header_is_not_believed(behind_traefik) -> None:
    # The client sent "X-Forwarded-For: 203.0.113.99"; Traefik appended the real address.
    assert client_ip(_request(TRAEFIK, "203.0.113.99, 198.51.100.7")) == "198.51.100.7"


def test_trusted_hops_are_skipped_from_the_right(behind_traefik) -> None:
    assert client_ip(_request(TRAEFIK, "203.0.113.99, 198.51.100.7, 172.30.0.9")) == "198.51.100.7"


def test_a_proxy_request_without_the_header_is_the_proxy(behind_traefik) -> None:
    assert client_ip(_request(TRAEFIK)) == TRAEFIK


def test_garbage_in_the_header_falls_back_to_the_peer(behind_traefik) -> None:
    assert client_ip(_request(TRAEFIK, "not-an-address")) == TRAEFIK
    assert client_ip(_request(TRAEFIK, "'; DROP TABLE")) == TRAEFIK


def test_ipv6_clients_and_proxies(settings) -> None:
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("fd00::/8")]
    assert client_ip(_request("fd00::2", "2001:db8::7")) == "2001:db8::7"
    assert client_ip(_request("2001:db8::7", "2001:db8::8")) == "2001:db8::7"


def test_no_request_has_no_address() -> None:
    assert client_ip(None) is None


def test_env_networks_reads_addresses_and_cidrs(monkeypatch) -> None:
    monkeypatch.setenv("H4_PROXIES", "172.30.0.0/24, 10.0.0.5 ,fd00::/8")
    assert [str(n) for n in env_networks("H4_PROXIES", [])] == ["172.30.0.0/24", "10.0.0.5/32", "fd00::/8"]


def test_env_networks_names_the_variable_and_the_bad_item(monkeypatch) -> None:
    monkeypatch.setenv("H4_PROXIES", "172.30.0.0/24,traefik")
    with pytest.raises(ImproperlyConfigured, match=r"H4_PROXIES: 'traefik' is not an IP address"):
        env_networks("H4_PROXIES", [])
