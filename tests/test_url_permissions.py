"""Every URL pattern is checked for anonymous, member, other member and admin. A new view that
is not listed in ACCESS fails this suite, so no view ships without a permission decision."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from backups.models import BackupPolicy, BackupRun, ResticSnapshot, Snapshot
from gpus.models import GPU, Booking, Token
from gpus.services import booking_create
from gpus.tokens import token_create
from monitoring.models import Alert, AlertKind, AlertRule, Silence
from portal.models import AccessRequest, AuditEvent, Host, Operation, User
from storage.models import IngestionJob, IngestionRun
from tests.factories import SSHKeyFactory, UserFactory
from workspaces.models import Workspace

# Third-party URL trees with their own permission model, checked by their own tests.
SKIPPED_PREFIXES = ("accounts/", "django-admin/")

ANON_LOGIN = "login"  # anonymous visitors are redirected to the login page
PUBLIC = "public"  # anyone gets an answer (2xx/3xx/405), never a login redirect
OK = "ok"  # 2xx, or 3xx for a POST that redirects after success, or 405 for the wrong method
DENIED = "denied"  # exactly 403, with one refused row in the audit log
# Exactly 401, never a login redirect: the URL authenticates by its own secret (an API token,
# Slack's signature), and a login session counts for nothing there.
UNAUTHORIZED = "unauthorized"


@dataclass
class World:
    alice: User
    bob: User
    admin: User
    objects: dict[str, Any]


@dataclass(frozen=True)
class Rule:
    """How each role fares on one URL. ``target`` builds the URL kwargs from a World, where
    the object (if any) belongs to alice; "member" is alice, "other" is bob."""

    anon: str
    member: str
    other: str
    admin: str
    target: Callable[[World], dict[str, Any]] = lambda world: {}
    method: str = "get"


def _local_host(world: World) -> dict[str, Any]:
    return {"pk": Host.local().pk}


def _alice_key(world: World) -> dict[str, Any]:
    return {"pk": world.objects["key"].pk}


def _alice_op(world: World) -> dict[str, Any]:
    return {"pk": world.objects["op"].pk}


def _alice(world: World) -> dict[str, Any]:
    return {"pk": world.alice.pk}


def _request(world: World) -> dict[str, Any]:
    return {"pk": world.objects["request"].pk}


def _alice_ws(world: World) -> dict[str, Any]:
    return {"pk": world.objects["workspace"].pk}


def _alice_booking(world: World) -> dict[str, Any]:
    return {"pk": world.objects["booking"].pk}


def _alice_ws_stop(world: World) -> dict[str, Any]:
    return {"pk": world.objects["workspace"].pk, "action": "stop"}


def _local_host(world: World) -> dict[str, Any]:
    return {"pk": Host.local().pk}


def _alice_token(world: World) -> dict[str, Any]:
    return {"pk": world.objects["token"].pk}


def _alice_booking(world: World) -> dict[str, Any]:
    return {"pk": world.objects["booking"].pk}


def _alice_feed(world: World) -> dict[str, Any]:
    return {"secret": world.objects["feed_secret"]}


def _alice_snapshot(world: World) -> dict[str, Any]:
    return {"pk": world.objects["snapshot"].pk}


def _alice_offsite(world: World) -> dict[str, Any]:
    return {"pk": world.objects["offsite"].pk}


def _ingestion_job(world: World) -> dict[str, Any]:
    return {"pk": world.objects["ingestion_job"].pk}


def _ingestion_run(world: World) -> dict[str, Any]:
    return {"pk": world.objects["ingestion_run"].pk}


def _backup_run(world: World) -> dict[str, Any]:
    return {"pk": world.objects["backup_run"].pk}


def _snapshot_tier(world: World) -> dict[str, Any]:
    return {"tier": BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT).tier}


def _alert_rule(world: World) -> dict[str, Any]:
    return {"pk": AlertRule.objects.get_or_create(kind=AlertKind.DISK_USAGE)[0].pk}


def _alert(world: World) -> dict[str, Any]:
    return {"pk": world.objects["alert"].pk}


def _silence(world: World) -> dict[str, Any]:
    return {"pk": world.objects["silence"].pk}


ADMIN_ONLY = {"anon": ANON_LOGIN, "member": DENIED, "other": DENIED, "admin": OK}
OWN_OBJECT = {"anon": ANON_LOGIN, "member": OK, "other": DENIED, "admin": OK}
ANY_MEMBER = {"anon": ANON_LOGIN, "member": OK, "other": OK, "admin": OK}
ANYONE = {"anon": PUBLIC, "member": PUBLIC, "other": PUBLIC, "admin": PUBLIC}
OWN_SECRET = {"anon": UNAUTHORIZED, "member": UNAUTHORIZED, "other": UNAUTHORIZED, "admin": UNAUTHORIZED}

ACCESS: dict[str, Rule] = {
    "dashboard": Rule(**ANY_MEMBER),
    "healthz": Rule(**ANYONE),
    "operation-status": Rule(**OWN_OBJECT, target=_alice_op),
    "recent-jobs": Rule(**ANY_MEMBER),
    # The gate hands alice a ticket for her own host only; others are refused.
    "gate-start": Rule(ANON_LOGIN, OK, DENIED, DENIED, target=lambda w: {}, method="get_alice_host"),
    "login": Rule(**ANYONE),
    "breakglass-login": Rule(**ANYONE),
    "logout": Rule(**ANYONE, method="post"),
    "account": Rule(**ANY_MEMBER),
    "sshkey-delete": Rule(ANON_LOGIN, OK, DENIED, DENIED, target=_alice_key, method="post"),
    "notifications": Rule(**ANY_MEMBER),
    "notifications-read": Rule(**ANY_MEMBER, method="post"),
    "member-list": Rule(**ADMIN_ONLY),
    "member-invite": Rule(**ADMIN_ONLY),
    "member-detail": Rule(**ADMIN_ONLY, target=_alice),
    "member-quota": Rule(**ADMIN_ONLY, target=_alice, method="post"),
    "member-capabilities": Rule(**ADMIN_ONLY, target=_alice, method="post"),
    "member-suspend": Rule(**ADMIN_ONLY, target=_alice, method="post"),
    "member-reactivate": Rule(**ADMIN_ONLY, target=_alice, method="post"),
    "access-request-dismiss": Rule(**ADMIN_ONLY, target=_request, method="post"),
    "audit-list": Rule(**ADMIN_ONLY),
    "site-policies": Rule(**ADMIN_ONLY),
    "host-list": Rule(**ADMIN_ONLY),
    "host-add": Rule(**ADMIN_ONLY),
    "host-detail": Rule(**ADMIN_ONLY, target=_local_host),
    "host-delete": Rule(**ADMIN_ONLY, target=_local_host, method="post"),  # refused for local: a redirect
    "workspaces:admin-list": Rule(**ADMIN_ONLY),
    "workspaces:create": Rule(**ANY_MEMBER, method="post"),
    "workspaces:member-host": Rule(**ADMIN_ONLY, target=_alice, method="post"),
    "workspaces:card": Rule(**OWN_OBJECT, target=_alice_ws),
    "workspaces:connect": Rule(**OWN_OBJECT, target=_alice_ws),
    "workspaces:files": Rule(**ANY_MEMBER),  # each to their own workspace's FileBrowser
    "workspaces:x2go": Rule(**OWN_OBJECT, target=_alice_ws),
    # Only the owner signs into the desktop; admins too only with GATE_ALLOW_ADMINS (off here).
    "workspaces:desktop": Rule(ANON_LOGIN, OK, DENIED, DENIED, target=_alice_ws),
    "workspaces:keep-running": Rule(**OWN_OBJECT, target=_alice_ws, method="post"),
    "workspaces:remove": Rule(**ADMIN_ONLY, target=_alice_ws),
    "workspaces:act": Rule(**OWN_OBJECT, target=_alice_ws_stop, method="post"),
    "gpus:admin-gpus": Rule(**ADMIN_ONLY),
    # An admin's empty POST is refused as bad input (400); Refresh now sends the task (302).
    "gpus:admin-enforcement": Rule(**ADMIN_ONLY, target=_local_host, method="post"),
    "gpus:admin-refresh": Rule(**ADMIN_ONLY, target=_local_host, method="post"),
    # Storage (admins): the page, and a departed member's deletion (an empty POST is refused
    # with a message and a redirect back to the member's page).
    "storage:overview": Rule(**ADMIN_ONLY),
    "storage:member-delete": Rule(**ADMIN_ONLY, target=_alice, method="post"),
    # Everyone sees their own GPU-hours; ?member= of someone else is for admins (tests/gpus).
    "gpus:usage": Rule(**ANY_MEMBER),
    # Everyone sees the calendar and every booking on it; only the holder (or an admin) changes one.
    "gpus:calendar": Rule(**ANY_MEMBER),
    "gpus:calendar-events": Rule(**ANY_MEMBER),
    "gpus:calendar-create": Rule(**ANY_MEMBER, method="post"),
    "gpus:calendar-book": Rule(**ANY_MEMBER, method="post"),
    "gpus:calendar-change": Rule(**OWN_OBJECT, target=_alice_booking, method="post"),
    "gpus:calendar-release": Rule(**OWN_OBJECT, target=_alice_booking, method="post"),
    "gpus:calendar-cancel": Rule(**OWN_OBJECT, target=_alice_booking, method="post"),
    "gpus:calendar-extend": Rule(**OWN_OBJECT, target=_alice_booking, method="post"),
    "gpus:policy": Rule(**ADMIN_ONLY, method="post"),
    "gpus:tokens": Rule(**ANY_MEMBER),
    # Admins are refused too: a token is its member's alone (a suspended member's tokens stop by themselves).
    "gpus:token-revoke": Rule(ANON_LOGIN, OK, DENIED, DENIED, target=_alice_token, method="post"),
    # The API takes a Bearer token only (tests/gpus/test_api.py checks who may do what with one).
    "gpus:api-gpus": Rule(**OWN_SECRET),
    "gpus:api-bookings": Rule(**OWN_SECRET, method="post"),
    "gpus:api-booking": Rule(**OWN_SECRET, target=_alice_booking, method="delete"),
    "gpus:api-booking-extend": Rule(**OWN_SECRET, target=_alice_booking, method="post"),
    "gpus:api-booking-release": Rule(**OWN_SECRET, target=_alice_booking, method="post"),
    # The feed's address is its credential: whoever has it reads it (tests/gpus/test_feeds.py).
    "gpus:feed": Rule(**ANYONE, target=_alice_feed),
    # Unsigned requests (tests/gpus/test_slack_command.py signs them).
    "gpus:slack-command": Rule(**OWN_SECRET, method="post"),
    # An admin's empty POST is refused as bad input: the page again, with the messages (400).
    "storage:disks": Rule(**ADMIN_ONLY),
    "storage:disks-apply": Rule(**ADMIN_ONLY, method="post"),
    "storage:ingestion": Rule(**ADMIN_ONLY),
    "storage:ingestion-new": Rule(**ADMIN_ONLY),
    "storage:ingestion-edit": Rule(**ADMIN_ONLY, target=_ingestion_job),
    "storage:ingestion-delete": Rule(**ADMIN_ONLY, target=_ingestion_job, method="post"),
    "storage:ingestion-run": Rule(**ADMIN_ONLY, target=_ingestion_job, method="post"),
    "storage:ingestion-run-detail": Rule(**ADMIN_ONLY, target=_ingestion_run),
    # The scrub (storage/scrub_views.py): an admin's POST starts or is refused with words (302);
    # an empty schedule form is bad input (400).
    "storage:scrub-start": Rule(**ADMIN_ONLY, method="post"),
    "storage:scrub-cancel": Rule(**ADMIN_ONLY, method="post"),
    "storage:scrub-schedule": Rule(**ADMIN_ONLY, method="post"),
    "storage:disks-scan": Rule(**ADMIN_ONLY, method="post"),
    # Backups (backups/history_views.py): the runs' history and one run's log, admins only.
    "backups:history": Rule(**ADMIN_ONLY),
    # Server health (monitoring/views.py): the host's charts, admins only.
    "monitoring:overview": Rule(**ADMIN_ONLY),
    # Prometheus' scrape takes METRICS_TOKEN as a bearer only; a session counts for nothing
    # (tests/monitoring/test_metrics.py).
    "monitoring:metrics": Rule(**OWN_SECRET),
    # A workspace card's figures over time (monitoring/views.py): the owner's, or admins'.
    "monitoring:workspace-figures": Rule(**OWN_OBJECT, target=_alice_ws),
    # The Health checks card's "Run checks now" (monitoring/views.py): sends the doctor's task.
    "monitoring:doctor-run": Rule(**ADMIN_ONLY, method="post"),
    # The Cost page (monitoring/views.py): figures and its two forms, admins only.
    "monitoring:cost": Rule(**ADMIN_ONLY),
    # Alerts (monitoring/alert_views.py), admins only; an empty POST is bad input (400).
    "monitoring:alerts": Rule(**ADMIN_ONLY),
    "monitoring:alert-rules": Rule(**ADMIN_ONLY),
    "monitoring:alert-rule-edit": Rule(**ADMIN_ONLY, target=_alert_rule),
    "monitoring:alert-silence": Rule(**ADMIN_ONLY, target=_alert, method="post"),
    "monitoring:alert-rule-silence": Rule(**ADMIN_ONLY, target=_alert_rule, method="post"),
    "monitoring:alert-silences": Rule(**ADMIN_ONLY),
    "monitoring:alert-silence-end": Rule(**ADMIN_ONLY, target=_silence, method="post"),
    "monitoring:alert-history": Rule(**ADMIN_ONLY),
    "backups:history-run": Rule(**ADMIN_ONLY, target=_backup_run),
    # Backups (admins): the overview, a tier's policy and its retention preview, the simulator.
    "backups:overview": Rule(**ADMIN_ONLY),
    "backups:policy-edit": Rule(**ADMIN_ONLY, target=_snapshot_tier),
    "backups:preview": Rule(**ADMIN_ONLY, target=_snapshot_tier),
    "backups:simulator": Rule(**ADMIN_ONLY),
    "backups:snapshot-now": Rule(**ADMIN_ONLY, method="post"),
    "backups:offsite-now": Rule(**ADMIN_ONLY, method="post"),
    # The offsite repository (backups/offsite_views.py): its state, actions and the Drive token.
    "backups:offsite": Rule(**ADMIN_ONLY),
    "backups:offsite-check": Rule(**ADMIN_ONLY, method="post"),
    "backups:offsite-create": Rule(**ADMIN_ONLY, method="post"),
    "backups:offsite-unlock": Rule(**ADMIN_ONLY, method="post"),
    "backups:offsite-token": Rule(**ADMIN_ONLY, method="post"),
    "backups:offsite-token-remove": Rule(**ADMIN_ONLY, method="post"),
    "backups:drill-now": Rule(**ADMIN_ONLY, method="post"),
    "backups:drill-schedule": Rule(**ADMIN_ONLY, method="post"),
    # Restoring (backups/restore_views.py): a member's own snapshots; an admin may browse and
    # restore any member's. The snapshot's folder is absent here: the page says so (400), an
    # empty restore is bad input (400), a download without a file redirects back (302).
    "backups:my-snapshots": Rule(**ANY_MEMBER),
    "backups:my-snapshot": Rule(**OWN_OBJECT, target=_alice_snapshot),
    "backups:my-restore": Rule(**OWN_OBJECT, target=_alice_snapshot, method="post"),
    "backups:my-download": Rule(**OWN_OBJECT, target=_alice_snapshot),
    "backups:admin-restore": Rule(**ADMIN_ONLY),
    # The same for a member's offsite (restic) snapshots; no repository is set up here, so the
    # folder page says so (400).
    "backups:my-offsite": Rule(**OWN_OBJECT, target=_alice_offsite),
    "backups:my-offsite-restore": Rule(**OWN_OBJECT, target=_alice_offsite, method="post"),
    "backups:my-offsite-download": Rule(**OWN_OBJECT, target=_alice_offsite),
}


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern) and entry.name:
            yield prefix + str(entry.pattern), namespace + entry.name
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), ""


def _project_urls() -> list[tuple[str, str]]:
    routes = _walk(get_resolver().url_patterns)
    return [(route, name) for route, name in routes if not route.startswith(SKIPPED_PREFIXES)]


def test_every_url_pattern_has_a_named_access_rule() -> None:
    unnamed = [route for route, name in _project_urls() if not name]
    missing = sorted(name for _, name in _project_urls() if name and name not in ACCESS)
    assert not unnamed, f"URL patterns without a name: {unnamed}"
    assert not missing, f"Views without an access rule in tests/test_url_permissions.py: {missing}"


def test_no_access_rule_is_left_over_after_its_url_was_removed() -> None:
    names = {name for _, name in _project_urls()}
    assert set(ACCESS) <= names


@pytest.fixture
def world(db: None) -> World:
    alice = UserFactory(username="alice", email="alice@corp.example")
    bob = UserFactory(username="bob", email="bob@corp.example")
    admin = UserFactory(username="ada", email="ada@corp.example", is_staff=True)
    objects: dict[str, Any] = {
        "key": SSHKeyFactory(user=alice),
        "op": Operation.objects.create(kind="test", owner=alice, actor=alice, target_label="alice"),
        "request": AccessRequest.objects.create(email="erin@corp.example", name="Erin"),
        "workspace": Workspace.objects.create(owner=alice, host=Host.local(), ssh_port=2299, slug="alice"),
        "booking": _booking_of(alice),
        "token": token_create(user=alice, kind=Token.Kind.API, name="script", actor=alice)[0],
        "feed_secret": token_create(user=alice, kind=Token.Kind.FEED, name="calendar", actor=alice)[1],
    }
    objects["ingestion_job"] = IngestionJob.objects.create(name="customer-data", source="src:/in", target="customer")
    objects["ingestion_run"] = IngestionRun.objects.create(job=objects["ingestion_job"], result="succeeded")
    objects["backup_run"] = BackupRun.objects.create(kind=BackupRun.Kind.SNAPSHOT)
    taken = timezone.now().replace(minute=0, second=0, microsecond=0)
    objects["snapshot"] = Snapshot.objects.create(
        source="homes/alice",
        owner=alice,
        path=f"{settings.STORAGE_ROOT}/.snapshots/homes/alice/{taken:%Y-%m-%dT%H%M%SZ}",
        taken_at=taken,
    )
    objects["offsite"] = ResticSnapshot.objects.create(
        snapshot_id="ab" * 32,
        source="homes/alice",
        owner=alice,
        path=f"{settings.BACKUP_RESTIC_MOUNT_ROOT}/homes/alice",
        taken_at=taken,
    )
    rule, _ = AlertRule.objects.get_or_create(kind=AlertKind.DISK_USAGE)
    objects["alert"] = Alert.objects.create(rule=rule, subject="disk root", started_at=timezone.now())
    objects["silence"] = Silence.objects.create(
        rule=rule, starts_at=timezone.now(), ends_at=timezone.now() + timedelta(hours=1), reason="maintenance"
    )
    return World(alice, bob, admin, objects)


def _booking_of(user: User) -> Booking:
    """A booking of one GPU of the local host, an hour from now."""
    GPU.objects.create(host=Host.local(), index=0, name="RTX 5080")
    start = timezone.localtime().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return booking_create(user=user, host=Host.local(), start=start, end=start + timedelta(hours=1), actor=user)


def _send(client: Client, rule: Rule, url: str) -> Any:
    if rule.method == "get_alice_host":
        return client.get(url, {"rd": "https://alice-code.corp.example/"})
    return getattr(client, rule.method)(url)


def _client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _is_login_redirect(location: str) -> bool:
    # LoginRequiredMiddleware sends visitors to the login page with ?next=<where they were>.
    return location.startswith(reverse("login")) and "next=" in location


def _check(expectation: str, status: int, location: str, role: str, url: str) -> None:
    if expectation == ANON_LOGIN:
        assert status == 302, f"{role} {url}: {status}"
        assert _is_login_redirect(location), f"{role} {url}: {location}"
    elif expectation == PUBLIC:
        assert status < 400 or status in (405, 503), f"{role} {url}: {status}"
        assert not _is_login_redirect(location), f"{role} {url} asked for login"
    elif expectation == OK:
        # 400 is an allowed request with bad (empty) input; 405 a GET on a POST-only view.
        assert status in (200, 201, 204, 302, 303, 400, 405), f"{role} {url}: {status} {location}"
        assert not _is_login_redirect(location), f"{role} {url} asked for login"
    elif expectation == UNAUTHORIZED:
        assert status == 401, f"{role} {url}: expected 401, got {status} {location}"
    else:
        assert status == 403, f"{role} {url}: expected 403, got {status}"


@pytest.mark.parametrize("name", sorted(ACCESS))
def test_each_role_gets_what_the_access_rule_says(name: str, world: World) -> None:
    rule = ACCESS[name]
    url = reverse(name, kwargs=rule.target(world))
    # The owner goes last: a POST of theirs may delete the object the others are refused.
    roles = {"anon": None, "other": world.bob, "admin": world.admin, "member": world.alice}
    for role, user in roles.items():
        response = _send(_client_for(user), rule, url)
        _check(getattr(rule, role), response.status_code, response.get("Location", ""), role, url)


DENIALS = sorted(
    (name, role)
    for name, rule in ACCESS.items()
    for role in ("member", "other", "admin")
    if getattr(rule, role) == DENIED
)


@pytest.mark.parametrize(("name", "role"), DENIALS)
def test_every_refusal_is_audited(name: str, role: str, world: World) -> None:
    rule = ACCESS[name]
    user = {"member": world.alice, "other": world.bob, "admin": world.admin}[role]
    before = AuditEvent.objects.filter(outcome=AuditEvent.Outcome.REFUSED).count()
    response = _send(_client_for(user), rule, reverse(name, kwargs=rule.target(world)))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(outcome=AuditEvent.Outcome.REFUSED).count() == before + 1
