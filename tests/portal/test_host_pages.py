"""The Servers page: admins list, add, edit and delete GPU servers; every refusal says why and
changes nothing; every change leaves an audit row."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gpus.models import GPU, Booking
from portal.models import AuditEvent, Host, User, WorkerHeartbeat
from tests.factories import UserFactory
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

GOOD = {"name": "gpu2", "docker_url": "ssh://portal@gpu2.corp.example", "queue": "", "ssh_address": "gpu2.corp.example"}


@pytest.fixture
def gpu2(db: None) -> Host:
    return Host.objects.create(name="gpu2", queue="host.gpu2", docker_url="tcp://gpu2:2376")


def _post(client: Client, url: str, **changes: str) -> object:
    return client.post(url, {**GOOD, **changes})


def _errors(response: object, field: str) -> list[str]:
    return list(response.context["form"].errors.get(field, []))  # type: ignore[attr-defined]


# --- adding ---------------------------------------------------------------------------------


def test_adding_a_server_defaults_its_queue_shows_its_worker_command_and_is_audited(admin_client: Client) -> None:
    response = admin_client.post(reverse("host-add"), GOOD, follow=True)
    host = Host.objects.get(name="gpu2")
    assert host.queue == "host.gpu2"
    assert host.docker_url == GOOD["docker_url"]
    assert response.redirect_chain[-1][0] == reverse("host-detail", args=[host.pk])
    page = html.unescape(response.content.decode())
    assert "celery -A project worker -Q host.gpu2 --hostname gpu2@%h" in page
    assert "PORTAL_HOST_NAME=gpu2" in page
    assert "docker compose -f docker-compose.host.yml up -d" in page
    event = AuditEvent.objects.get(action="host.create")
    assert event.target_label == "gpu2"
    assert event.detail["server"]["queue"] == "host.gpu2"
    assert event.actor is not None
    assert event.actor.is_staff


def test_a_server_with_its_own_queue_gets_it_in_the_worker_command_and_the_env(admin_client: Client) -> None:
    admin_client.post(reverse("host-add"), {**GOOD, "queue": "gpu.second"})
    host = Host.objects.get(name="gpu2")
    page = html.unescape(admin_client.get(reverse("host-detail", args=[host.pk])).content.decode())
    assert "-Q gpu.second --hostname gpu2@%h" in page
    assert "PORTAL_HOST_QUEUE=gpu.second" in page


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "GPU 2"}, "name", "“GPU 2” is not a server name: lowercase letters, digits and -"),
        ({"name": "2gpu"}, "name", "is not a server name"),
        ({"name": "gpu2;rm"}, "name", "is not a server name"),
        ({"name": ""}, "name", "This field is required."),
        ({"name": "local"}, "name", "There is already a server called local."),
        ({"queue": "host.local"}, "queue", "The queue host.local is already local's."),
        ({"queue": "portal"}, "queue", "portal is the portal's own queue; a server needs one of its own."),
        ({"queue": "host a,b"}, "queue", "“host a,b” is not a queue name"),
        ({"docker_url": "http://gpu2:2375"}, "docker_url", "is not a Docker endpoint"),
        ({"docker_url": "ssh://portal@gpu2 -oProxyCommand=evil"}, "docker_url", "An ssh:// endpoint is"),
        ({"docker_url": "tcp://gpu2"}, "docker_url", "A tcp:// endpoint is host:port"),
        ({"ssh_address": "gpu2.corp.example -p 22"}, "ssh_address", "is not a host name or an IP address"),
        ({"ssh_address": "user@gpu2"}, "ssh_address", "is not a host name or an IP address"),
    ],
)
def test_a_bad_server_is_refused_with_words_and_nothing_is_added(
    admin_client: Client, changes: dict[str, str], field: str, message: str
) -> None:
    Host.local()
    response = _post(admin_client, reverse("host-add"), **changes)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert any(message in text for text in _errors(response, field)), _errors(response, field)
    assert list(Host.objects.values_list("name", flat=True)) == ["local"]
    assert not AuditEvent.objects.filter(action="host.create").exists()


def test_a_queue_another_server_has_is_refused_naming_that_server(admin_client: Client, gpu2: Host) -> None:
    response = _post(admin_client, reverse("host-add"), name="gpu3", queue="host.gpu2")
    assert _errors(response, "queue") == ["The queue host.gpu2 is already gpu2's. Each server's worker needs its own."]
    # the default queue of a new name can be taken too
    gpu2.queue = "host.gpu3"
    gpu2.save()
    response = _post(admin_client, reverse("host-add"), name="gpu3")
    assert _errors(response, "queue") == ["The queue host.gpu3 is already gpu2's. Each server's worker needs its own."]
    assert not Host.objects.filter(name="gpu3").exists()


# --- editing --------------------------------------------------------------------------------


def test_editing_a_server_saves_and_audits_only_what_changed(admin_client: Client, gpu2: Host) -> None:
    url = reverse("host-detail", args=[gpu2.pk])
    response = admin_client.post(url, {"name": "gpu2", "docker_url": "tcp://10.0.0.12:2376", "queue": "host.gpu2"})
    assert response.status_code == 302
    gpu2.refresh_from_db()
    assert gpu2.docker_url == "tcp://10.0.0.12:2376"
    event = AuditEvent.objects.get(action="host.update")
    assert event.detail["changes"] == {"docker_url": ["tcp://gpu2:2376", "tcp://10.0.0.12:2376"]}


def test_a_bad_edit_is_refused_and_the_page_still_shows_the_saved_server(admin_client: Client, gpu2: Host) -> None:
    url = reverse("host-detail", args=[gpu2.pk])
    response = admin_client.post(url, {"name": "Bad Name", "docker_url": "nope", "queue": "host.gpu2"})
    assert response.status_code == 400
    assert _errors(response, "docker_url")
    assert response.context["host"].name == "gpu2"
    gpu2.refresh_from_db()
    assert (gpu2.name, gpu2.docker_url) == ("gpu2", "tcp://gpu2:2376")
    assert not AuditEvent.objects.filter(action="host.update").exists()


def test_the_local_server_keeps_its_name_and_queue_whatever_is_posted(admin_client: Client) -> None:
    local = Host.local()
    url = reverse("host-detail", args=[local.pk])
    form = {"name": "main", "docker_url": "unix:///run/docker.sock", "queue": "host.main"}
    assert admin_client.post(url, form).status_code == 302
    local.refresh_from_db()
    assert (local.name, local.queue, local.docker_url) == ("local", "host.local", "unix:///run/docker.sock")
    assert 'name="name"' in html.unescape(admin_client.get(url).content.decode())  # shown, disabled
    assert "The local server's name and queue are fixed" in html.unescape(admin_client.get(url).content.decode())


def test_renaming_a_server_with_a_workspace_is_refused_naming_it_and_audited(
    admin_client: Client, gpu2: Host, alice: User
) -> None:
    Workspace.objects.create(owner=alice, host=gpu2, ssh_port=2300, slug="alice", state="running")
    url = reverse("host-detail", args=[gpu2.pk])
    response = admin_client.post(url, {"name": "gpu9", "docker_url": gpu2.docker_url, "queue": "host.gpu2"})
    assert response.status_code == 400
    text = " ".join(response.context["form"].non_field_errors())
    assert "gpu2 can't be renamed while it has 1 workspace (ws-alice): their containers carry its name." in text
    assert Host.objects.filter(name="gpu2").exists()
    refused = AuditEvent.objects.get(action="host.update")
    assert refused.outcome == AuditEvent.Outcome.REFUSED
    assert refused.detail["wanted"] == "gpu9"


def test_renaming_an_empty_server_keeps_its_queue(admin_client: Client, gpu2: Host) -> None:
    url = reverse("host-detail", args=[gpu2.pk])
    admin_client.post(url, {"name": "gpu9", "docker_url": gpu2.docker_url, "queue": "host.gpu2"})
    gpu2.refresh_from_db()
    assert (gpu2.name, gpu2.queue) == ("gpu9", "host.gpu2")


# --- deleting -------------------------------------------------------------------------------


def test_deleting_an_empty_server_takes_its_gpus_and_heartbeat_and_is_audited(admin_client: Client, gpu2: Host) -> None:
    GPU.objects.create(host=gpu2, index=0, name="RTX 5080", memory_bytes=16 * 1024**3)
    WorkerHeartbeat.objects.create(queue="host.gpu2", seen_at=timezone.now())
    response = admin_client.post(reverse("host-delete", args=[gpu2.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("host-list")
    assert "Deleted gpu2" in html.unescape(response.content.decode())
    assert not Host.objects.filter(name="gpu2").exists()
    assert not GPU.objects.exists()
    assert not WorkerHeartbeat.objects.filter(queue="host.gpu2").exists()
    assert AuditEvent.objects.get(action="host.delete").target_label == "gpu2"


def test_deleting_a_server_with_members_workspaces_and_bookings_is_refused_naming_them(
    admin_client: Client, gpu2: Host, alice: User, bob: User
) -> None:
    User.objects.filter(pk__in=[alice.pk, bob.pk]).update(host=gpu2)
    Workspace.objects.create(owner=alice, host=gpu2, ssh_port=2300, slug="alice", state="stopped")
    now = timezone.now()
    Booking.objects.create(user=bob, host=gpu2, start=now, end=now + timedelta(hours=1), gpu_count=1)
    response = admin_client.post(reverse("host-delete", args=[gpu2.pk]), follow=True)
    page = html.unescape(response.content.decode())
    assert response.redirect_chain[-1][0] == reverse("host-detail", args=[gpu2.pk])
    assert "gpu2 still has 2 members placed there (alice, bob) and 1 booking" in page
    assert "1 workspace (ws-alice). Move or remove them first." in page
    assert Host.objects.filter(name="gpu2").exists()
    refused = AuditEvent.objects.get(action="host.delete")
    assert refused.outcome == AuditEvent.Outcome.REFUSED
    assert "alice, bob" in refused.detail["reason"]


def test_a_refusal_names_five_of_many_and_counts_the_rest(admin_client: Client, gpu2: Host) -> None:
    for number in range(7):
        UserFactory(username=f"member{number}", host=gpu2)
    admin_client.post(reverse("host-delete", args=[gpu2.pk]))
    reason = AuditEvent.objects.get(action="host.delete").detail["reason"]
    assert "7 members placed there (member0, member1, member2, member3, member4 and 2 more)" in reason


def test_the_local_server_cannot_be_deleted(admin_client: Client) -> None:
    local = Host.local()
    response = admin_client.post(reverse("host-delete", args=[local.pk]), follow=True)
    assert "The local server can't be deleted" in html.unescape(response.content.decode())
    assert Host.objects.filter(name="local").exists()
    assert AuditEvent.objects.get(action="host.delete").outcome == AuditEvent.Outcome.REFUSED


def test_members_cannot_see_or_change_servers(alice_client: Client, gpu2: Host) -> None:
    for response in (
        alice_client.get(reverse("host-list")),
        alice_client.post(reverse("host-add"), GOOD),
        alice_client.post(reverse("host-detail", args=[gpu2.pk]), {**GOOD, "name": "gpu9"}),
        alice_client.post(reverse("host-delete", args=[gpu2.pk])),
    ):
        assert response.status_code == 403
    assert list(Host.objects.values_list("name", flat=True)) == ["gpu2", "local"]


# --- the list -------------------------------------------------------------------------------


def _world(numbers: range) -> None:
    now = timezone.now()
    for number in numbers:
        host = Host.objects.create(name=f"gpu{number}", queue=f"host.gpu{number}", state=Host.State.ONLINE)
        WorkerHeartbeat.objects.create(queue=host.queue, seen_at=now - timedelta(minutes=number))
        GPU.objects.create(host=host, index=0, name="RTX 5080", memory_bytes=16 * 1024**3)
        member = UserFactory(username=f"placed{number}", host=host)
        Workspace.objects.create(owner=member, host=host, ssh_port=2400 + number, slug=member.username, state="running")


def test_the_list_costs_the_same_queries_for_two_and_twelve_servers(
    admin_client: Client, django_assert_num_queries
) -> None:
    Host.local()
    _world(range(2, 3))
    # user, unread count, hosts, members per host, heartbeats, one per column (workspaces, GPUs)
    with django_assert_num_queries(7):
        small = admin_client.get(reverse("host-list"))
    _world(range(3, 13))
    with django_assert_num_queries(7):
        large = admin_client.get(reverse("host-list"))
    assert len(small.context["rows"]) == 2
    assert len(large.context["rows"]) == 12


def test_the_list_says_in_words_which_worker_is_down_and_counts_what_each_server_holds(
    admin_client: Client, alice: User, bob: User, settings
) -> None:
    settings.WORKER_HEARTBEAT_STALE_SECONDS = 120
    now = timezone.now()
    local = Host.local()
    gpu2 = Host.objects.create(
        name="gpu2", queue="host.gpu2", state=Host.State.UNREACHABLE, state_detail="Connection refused", cpu_count=64
    )
    WorkerHeartbeat.objects.create(queue="host.local", seen_at=now - timedelta(seconds=20), worker="local@box")
    WorkerHeartbeat.objects.create(queue="host.gpu2", seen_at=now - timedelta(minutes=10), worker="gpu2@box2")
    User.objects.filter(pk=bob.pk).update(host=gpu2)  # alice and the admin stay on the local one
    Workspace.objects.create(owner=alice, host=local, ssh_port=2300, slug="alice", state="running")
    Workspace.objects.create(owner=alice, name="b", host=local, ssh_port=2301, slug="alice-b", state="stopped")
    response = admin_client.get(reverse("host-list"))
    rows = {row.host.name: row for row, _cells in response.context["rows"]}
    assert (rows["local"].members, rows["gpu2"].members) == (2, 1)
    assert rows["local"].heartbeat.words == "worker up"
    assert rows["gpu2"].heartbeat.words == "worker down"
    page = html.unescape(response.content.decode())
    assert "Worker down" in page
    assert "Connection refused" in page
    assert '2 <span class="muted small">(1 running)</span>' in page
    assert "Servers" in page  # in the Admin menu


def test_a_server_whose_worker_never_answered_says_so(admin_client: Client, gpu2: Host) -> None:
    page = html.unescape(admin_client.get(reverse("host-detail", args=[gpu2.pk])).content.decode())
    assert "Worker never seen" in page
    assert "Not checked yet" not in page  # the unknown state reads "Unknown", "not checked yet"
