"""A host's Docker endpoint is checked wherever a host is edited: the model and the Django admin."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse

from portal.models import Host
from tests.factories import UserFactory

GOOD = [
    "unix:///var/run/docker.sock",
    "unix:///run/user/1000/docker.sock",
    "tcp://gpu2:2375",
    "tcp://gpu2.corp.example:2376",
    "tcp://10.0.0.12:2376",
    "tcp://[2001:db8::12]:2376",
    "ssh://gpu2",
    "ssh://portal@gpu2.corp.example",
    "ssh://portal@gpu2.corp.example:2222",
    "ssh://deploy_bot@10.0.0.12:22",
]

BAD = [
    ("not a url at all", "“not a url at all” is not a Docker endpoint. Use unix:///var/run/docker.sock"),
    ("", "This field cannot be blank."),
    ("http://gpu2:2375", "is not a Docker endpoint"),
    ("/var/run/docker.sock", "is not a Docker endpoint"),
    ("unix://var/run/docker.sock", "A unix:// endpoint is the absolute path of the engine's socket"),
    ("unix:///", "A unix:// endpoint is the absolute path"),
    ("unix:///var/run/my docker.sock", "A unix:// endpoint is the absolute path"),
    ("tcp://gpu2", "A tcp:// endpoint is host:port, like tcp://gpu2.corp.example:2376."),
    ("tcp://gpu2:0", "A tcp:// endpoint is host:port"),
    ("tcp://gpu2:70000", "A tcp:// endpoint is host:port"),
    ("tcp://gpu2:2375/extra", "A tcp:// endpoint is host:port"),
    ("tcp://-gpu2:2375", "A tcp:// endpoint is host:port"),
    ("tcp://[not:an:ip:zz]:2375", "A tcp:// endpoint is host:port"),
    ("ssh://", "An ssh:// endpoint is [user@]host[:port]"),
    ("ssh://a b@gpu2", "An ssh:// endpoint is [user@]host[:port]"),
    ("ssh://portal@gpu2:port", "An ssh:// endpoint is [user@]host[:port]"),
    ("ssh://portal@gpu2 -oProxyCommand=evil", "An ssh:// endpoint is [user@]host[:port]"),
]


def _host(docker_url: str) -> Host:
    return Host(name="gpu2", queue="host.gpu2", docker_url=docker_url)


@pytest.mark.parametrize("url", GOOD)
def test_the_model_accepts_each_kind_of_docker_endpoint(db: None, url: str) -> None:
    _host(url).full_clean()


@pytest.mark.parametrize(("url", "message"), BAD)
def test_the_model_refuses_a_bad_docker_endpoint_and_says_what_it_should_be(db: None, url: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _host(url).full_clean()
    assert set(caught.value.message_dict) == {"docker_url"}
    assert any(message in text for text in caught.value.message_dict["docker_url"])


# --- through the Django admin ---------------------------------------------------------


@pytest.fixture
def superuser_client(db: None) -> Client:
    client = Client()
    client.force_login(UserFactory(username="root_admin", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def gpu2(db: None) -> Host:
    return Host.objects.create(name="gpu2", queue="host.gpu2", docker_url="ssh://portal@gpu2")


def _form(host: Host, **changes: str) -> dict[str, str]:
    data = {
        "name": host.name,
        "docker_url": host.docker_url,
        "queue": host.queue,
        "cpu_count": "",
        "memory_bytes": "",
        "state": host.state,
        "state_detail": "",
        "last_seen_0": "",
        "last_seen_1": "",
        "_save": "Save",
    }
    return {**data, **changes}


def test_the_admin_refuses_a_docker_endpoint_that_is_no_url_and_keeps_the_host(
    superuser_client: Client, gpu2: Host
) -> None:
    before = model_to_dict(gpu2)
    url = reverse("admin:portal_host_change", args=[gpu2.pk])
    response = superuser_client.post(url, _form(gpu2, docker_url="not a url at all", cpu_count="64"))
    assert response.status_code == 200  # the form again, with the message
    errors = response.context["adminform"].form.errors
    assert errors["docker_url"] == [
        "“not a url at all” is not a Docker endpoint. "
        "Use unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host."
    ]
    gpu2.refresh_from_db()
    assert model_to_dict(gpu2) == before  # nothing half-saved, not even the CPU count


def test_the_admin_refuses_a_new_host_with_a_bad_endpoint(superuser_client: Client, db: None) -> None:
    data = _form(_host("tcp://gpu3"), name="gpu3", queue="host.gpu3")
    response = superuser_client.post(reverse("admin:portal_host_add"), data)
    assert response.status_code == 200
    assert "A tcp:// endpoint is host:port" in response.content.decode()
    assert not Host.objects.filter(name="gpu3").exists()


def test_the_admin_saves_a_good_endpoint(superuser_client: Client, gpu2: Host) -> None:
    url = reverse("admin:portal_host_change", args=[gpu2.pk])
    response = superuser_client.post(url, _form(gpu2, docker_url="tcp://gpu2.corp.example:2376"))
    assert response.status_code == 302
    gpu2.refresh_from_db()
    assert gpu2.docker_url == "tcp://gpu2.corp.example:2376"
