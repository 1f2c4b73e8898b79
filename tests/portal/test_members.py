from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import parse_qs, urlparse

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import reverse

from portal.models import AccessRequest, AuditEvent, Quota, User
from tests.factories import SSHKeyFactory, UserFactory

# (url name, needs a member pk); every admin page a member might try.
ADMIN_GET_PAGES = [("member-list", False), ("member-invite", False), ("member-detail", True), ("audit-list", False)]
POST_ONLY = ["member-quota", "member-capabilities", "member-suspend", "member-reactivate"]


def _url(name: str, pk: int | None) -> str:
    return reverse(name, args=[pk]) if pk is not None else reverse(name)


def _bulk_members(count: int, start: int = 0) -> None:
    # bulk_create skips User.save, which allocates the UID, so each row brings its own.
    users = User.objects.bulk_create(
        User(
            username=f"bulk{i:05d}",
            dns_label=f"bulk{i:05d}",
            email=f"bulk{i:05d}@corp.example",
            uid=200_000 + i,
            status=User.Status.ACTIVE,
        )
        for i in range(start, start + count)
    )
    Quota.objects.bulk_create(Quota(user=user, **Quota.team_defaults()) for user in users)


# --- who may see the admin pages --------------------------------------------------------


@pytest.mark.parametrize(("name", "with_pk"), ADMIN_GET_PAGES)
def test_it_refuses_admin_pages_to_members_and_audits_the_refusal(
    alice_client: Client, alice: User, bob: User, name: str, with_pk: bool
) -> None:
    response = alice_client.get(_url(name, bob.pk if with_pk else None))
    assert response.status_code == 403
    refusal = AuditEvent.objects.get(actor=alice, outcome=AuditEvent.Outcome.REFUSED)
    assert refusal.action in {"admin_page.denied", "member.denied"}


@pytest.mark.parametrize(("name", "with_pk"), ADMIN_GET_PAGES)
def test_it_sends_anonymous_visitors_to_the_login_page(client: Client, bob: User, name: str, with_pk: bool) -> None:
    response = client.get(_url(name, bob.pk if with_pk else None))
    assert response.status_code == 302
    assert response["Location"].startswith(resolve_url(settings.LOGIN_URL))


@pytest.mark.parametrize("name", POST_ONLY)
def test_it_refuses_member_changes_from_members(alice_client: Client, alice: User, bob: User, name: str) -> None:
    response = alice_client.post(reverse(name, args=[bob.pk]), {"confirm": "on", "can_sudo": "on", "is_staff": "on"})
    assert response.status_code == 403
    bob.refresh_from_db()
    assert (bob.status, bob.can_sudo, bob.is_staff) == (User.Status.ACTIVE, False, False)
    assert AuditEvent.objects.filter(actor=alice, action="member.denied", outcome="refused").exists()


@pytest.mark.parametrize("name", POST_ONLY)
def test_it_answers_405_to_get_on_post_only_member_views(admin_client: Client, bob: User, name: str) -> None:
    assert admin_client.get(reverse(name, args=[bob.pk])).status_code == 405


def test_it_answers_405_to_get_on_dismiss(admin_client: Client) -> None:
    access = AccessRequest.objects.create(email="eve@corp.example")
    assert admin_client.get(reverse("access-request-dismiss", args=[access.pk])).status_code == 405
    access.refresh_from_db()
    assert access.handled_at is None


def test_it_refuses_dismissing_a_request_to_members(alice_client: Client, alice: User) -> None:
    access = AccessRequest.objects.create(email="eve@corp.example")
    assert alice_client.post(reverse("access-request-dismiss", args=[access.pk])).status_code == 403
    access.refresh_from_db()
    assert access.handled_at is None
    assert AuditEvent.objects.filter(actor=alice, action="admin_page.denied").exists()


# --- the members list -------------------------------------------------------------------


def test_the_list_shows_identity_limits_and_capabilities(admin_client: Client, alice: User) -> None:
    alice.can_docker = True
    alice.save()
    body = admin_client.get(reverse("member-list")).content.decode()
    assert f'href="{reverse("member-detail", args=[alice.pk])}"' in body
    assert "alice@corp.example" in body
    assert f">{alice.uid}<" in body
    assert '32G <span class="muted">/</span> 100G' in body  # guarantee / limit from the team defaults
    assert '<span class="tag">docker</span>' in body
    assert '<span class="muted">none</span>' in body  # no workspace yet
    assert 'title="not measured yet"' in body  # no home made yet
    assert "1T" in body  # storage soft limit
    assert '<span class="pill pill-admin">Admin</span>' in body  # ada, the admin


def test_the_list_filters_by_status_and_search(admin_client: Client, alice: User, bob: User) -> None:
    UserFactory(username="carol", status=User.Status.SUSPENDED)
    suspended = admin_client.get(reverse("member-list"), {"status": "suspended"}).content.decode()
    assert ">carol<" in suspended
    assert ">alice<" not in suspended
    searched = admin_client.get(reverse("member-list"), {"q": "BOB@corp"}).content.decode()
    assert ">bob<" in searched
    assert ">alice<" not in searched
    assert "1 member matches the filters" in searched


def test_the_list_ignores_an_unknown_status_filter(admin_client: Client, alice: User) -> None:
    response = admin_client.get(reverse("member-list"), {"status": "requests"})
    assert response.status_code == 200
    assert ">alice<" in response.content.decode()


def test_the_list_pages_by_one_hundred(admin_client: Client) -> None:
    _bulk_members(150)
    first = admin_client.get(reverse("member-list")).context
    assert len(first["rows"]) == 100
    second = admin_client.get(reverse("member-list"), {"page": 2}).context
    assert len(second["rows"]) == 51  # 150 plus ada, the admin
    assert second["page"].number == 2


def test_the_list_costs_the_same_queries_for_ten_and_a_thousand_members(
    admin_client: Client, django_assert_num_queries
) -> None:
    AccessRequest.objects.create(email="eve@corp.example", name="Eve")
    _bulk_members(10)
    # user, unread count, paginator count, members with their quota, access requests, one per
    # configured column (workspaces, storage); the session comes from the Redis cache
    with django_assert_num_queries(7):
        small = admin_client.get(reverse("member-list"))
    _bulk_members(990, start=10)
    AccessRequest.objects.create(email="frank@corp.example")
    with django_assert_num_queries(7):
        large = admin_client.get(reverse("member-list"))
    assert len(small.context["rows"]) == 11
    assert len(large.context["rows"]) == 100


def test_the_list_shows_pending_access_requests_with_a_prefilled_invite(admin_client: Client) -> None:
    AccessRequest.objects.create(email="jane.doe@corp.example", name="Jane Doe")
    response = admin_client.get(reverse("member-list"))
    (access, invite_url), *_ = response.context["access_requests"]
    query = parse_qs(urlparse(invite_url).query)
    assert query == {"email": ["jane.doe@corp.example"], "username": ["jane_doe"]}
    body = response.content.decode()
    assert "Jane Doe" in body
    assert reverse("access-request-dismiss", args=[access.pk]) in body


def test_handled_requests_are_not_listed(admin_client: Client, admin_user: User) -> None:
    AccessRequest.objects.create(email="old@corp.example", handled_by=admin_user, handled_at="2024-01-01T00:00Z")
    assert admin_client.get(reverse("member-list")).context["access_requests"] == []


def test_dismissing_a_request_closes_it_and_audits(admin_client: Client, admin_user: User) -> None:
    access = AccessRequest.objects.create(email="eve@corp.example")
    response = admin_client.post(reverse("access-request-dismiss", args=[access.pk]))
    assert response.status_code == 302
    access.refresh_from_db()
    assert access.handled_by == admin_user
    assert access.handled_at is not None
    assert AuditEvent.objects.filter(action="access_request.dismiss", actor=admin_user, target_id=access.pk).exists()


def test_dismissing_a_handled_request_is_not_found(admin_client: Client, admin_user: User) -> None:
    access = AccessRequest.objects.create(
        email="eve@corp.example", handled_by=admin_user, handled_at="2024-01-01T00:00Z"
    )
    assert admin_client.post(reverse("access-request-dismiss", args=[access.pk])).status_code == 404


# --- inviting ---------------------------------------------------------------------------


def test_the_invite_form_is_prefilled_from_the_query(admin_client: Client) -> None:
    response = admin_client.get(reverse("member-invite"), {"email": "Jane.Doe@corp.example"})
    form = response.context["form"]
    assert form["email"].value() == "jane.doe@corp.example"
    assert form["username"].value() == "jane_doe"


def test_inviting_creates_the_member_with_quota_and_login_address(admin_client: Client, admin_user: User) -> None:
    AccessRequest.objects.create(email="jane@corp.example")
    response = admin_client.post(
        reverse("member-invite"), {"email": "Jane@Corp.Example", "username": "jane", "is_staff": "on"}
    )
    jane = User.objects.get(username="jane")
    assert response.status_code == 302
    assert response["Location"] == reverse("member-detail", args=[jane.pk])
    assert (jane.email, jane.status, jane.is_staff, jane.invited_by) == (
        "jane@corp.example",
        User.Status.INVITED,
        True,
        admin_user,
    )
    assert Quota.objects.filter(user=jane).exists()
    assert EmailAddress.objects.filter(user=jane, email="jane@corp.example", verified=True).exists()
    assert AccessRequest.objects.get(email="jane@corp.example").handled_by == admin_user
    assert AuditEvent.objects.filter(action="member.invite", actor=admin_user, target_id=jane.pk).exists()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"email": "jane@gmail.com", "username": "jane"}, "email", "Only addresses at corp.example"),
        ({"email": "jane@sub.corp.example", "username": "jane"}, "email", "Only addresses at corp.example"),
        ({"email": "ALICE@corp.example", "username": "jane"}, "email", "alice@corp.example already belongs"),
        ({"email": "not-an-email", "username": "jane"}, "email", "Enter a valid email address."),
        ({"email": "jane@corp.example", "username": "Jane"}, "username", "lowercase letters"),
        ({"email": "jane@corp.example", "username": "root"}, "username", "reserved for the system"),
        ({"email": "jane@corp.example", "username": "alice"}, "username", "The username alice is taken."),
        ({"email": "jane@corp.example", "username": "j; rm -rf /"}, "username", "lowercase letters"),
        ({"email": "jane@corp.example", "username": ""}, "username", "This field is required."),
        ({"email": "jane@corp.example", "username": "ja\x00ne"}, "username", "Null characters are not allowed."),
    ],
)
def test_inviting_with_bad_input_says_why_and_saves_nothing(
    admin_client: Client, alice: User, data: dict[str, str], field: str, message: str
) -> None:
    users, quotas, addresses = User.objects.count(), Quota.objects.count(), EmailAddress.objects.count()
    response = admin_client.post(reverse("member-invite"), data)
    assert response.status_code == 400
    assert any(message in error for error in response.context["form"].errors[field])
    body = response.content.decode()
    assert f'id="id_{field}_error"' in body
    assert 'aria-invalid="true"' in body
    assert (User.objects.count(), Quota.objects.count(), EmailAddress.objects.count()) == (users, quotas, addresses)
    assert not AuditEvent.objects.filter(action="member.invite").exists()


# --- one member's page ------------------------------------------------------------------


def test_the_detail_page_shows_identity_and_key_fingerprints_only(admin_client: Client, admin_user: User) -> None:
    jane = UserFactory(username="jane", invited_by=admin_user)
    key = SSHKeyFactory(user=jane, public_key="ssh-ed25519 AAAAsecretmaterial jane@laptop")
    body = admin_client.get(reverse("member-detail", args=[jane.pk])).content.decode()
    assert f"{jane.uid} / {jane.gid}" in body
    assert key.fingerprint in body
    assert "AAAAsecretmaterial" not in body
    assert f'href="{reverse("member-detail", args=[admin_user.pk])}">ada<' in body  # invited by
    assert (
        "Docker inside the workspace runs its own engine; it never means access to the host's Docker socket."
        in html.unescape(body)
    )


def test_the_detail_page_lists_recent_events_about_the_member(admin_client: Client, bob: User) -> None:
    admin_client.post(reverse("member-capabilities", args=[bob.pk]), {"can_sudo": "on"})
    events = admin_client.get(reverse("member-detail", args=[bob.pk])).context["events"]
    assert [event.action for event in events] == ["member.capabilities"]


def _activity(body: str) -> list[str]:
    timeline = body.split('<ol class="timeline">', 1)[1].split("</ol>", 1)[0]
    items = re.findall(r"<li[^>]*>(.*?)</li>", timeline, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", item)).split()) for item in items]


def test_recent_activity_says_who_did_what_to_whom(admin_client: Client, admin_user: User, bob: User) -> None:
    from portal.audit import audit_record

    admin_client.post(reverse("member-capabilities", args=[bob.pk]), {"can_sudo": "on"})
    key = SSHKeyFactory(user=bob, name="desk")
    audit_record(action="sshkey.add", actor=bob, target=key)
    audit_record(action="member.denied", actor=bob, refused=True)
    audit_record(action="member.first_login", actor=bob, target=bob)
    audit_record(action="member.reactivate", target=bob)
    lines = _activity(admin_client.get(reverse("member-detail", args=[bob.pk])).content.decode())
    assert [line.split(" · ")[0] for line in lines] == [
        "member.reactivate done to bob by the system",
        "member.first_login bob did",
        "member.denied Refused bob tried",
        "sshkey.add bob did",
        "member.capabilities done to bob by ada",
    ]
    assert "on desk (SHA256:" in lines[3]


def test_recent_activity_names_the_member_an_admin_acted_on(admin_client: Client, admin_user: User, bob: User) -> None:
    admin_client.post(reverse("member-capabilities", args=[bob.pk]), {"can_sudo": "on"})
    lines = _activity(admin_client.get(reverse("member-detail", args=[admin_user.pk])).content.decode())
    assert len(lines) == 1
    assert lines[0].startswith("member.capabilities ada did · on bob ·")


def _invited_jane(admin_user: User) -> User:
    jane = UserFactory(username="jane", status=User.Status.INVITED, invited_by=admin_user)
    jane.date_joined = dt.datetime(2025, 3, 4, 10, 0, tzinfo=dt.UTC)
    jane.save()
    return jane


def test_an_invited_member_who_never_signed_in_reads_as_invited_not_joined(
    admin_client: Client, admin_user: User
) -> None:
    jane = _invited_jane(admin_user)
    body = admin_client.get(reverse("member-detail", args=[jane.pk])).content.decode()
    identity = body.split('id="identity-h"', 1)[1].split("</section>", 1)[0]
    assert "Joined" not in identity
    assert re.search(r"<dt>Invited</dt><dd><time[^>]*>4 Mar 2025</time>, not signed in yet</dd>", identity)


def test_the_list_shows_when_an_invited_member_was_invited(admin_client: Client, admin_user: User) -> None:
    _invited_jane(admin_user)
    body = admin_client.get(reverse("member-list")).content.decode()
    row = body.split(">jane<", 1)[1].split("</tr>", 1)[0]
    assert re.search(r"Invited <time[^>]*>4 Mar 2025</time>, not signed in yet", row)
    assert "never" not in row


def test_a_member_who_signed_in_still_reads_as_joined(admin_client: Client, bob: User) -> None:
    body = admin_client.get(reverse("member-detail", args=[bob.pk])).content.decode()
    assert "<dt>Joined</dt>" in body
    assert "not signed in yet" not in body


def test_an_unknown_member_is_not_found(admin_client: Client) -> None:
    assert admin_client.get(reverse("member-detail", args=[999_999])).status_code == 404


def test_suspending_ends_the_members_sessions(
    admin_client: Client, admin_user: User, alice: User, alice_client: Client
) -> None:
    assert alice_client.get(reverse("dashboard")).status_code == 200
    response = admin_client.post(reverse("member-suspend", args=[alice.pk]), {"reason": "left", "confirm": "on"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.status, alice.is_active) == (User.Status.SUSPENDED, False)
    after = alice_client.get(reverse("dashboard"))
    assert after.status_code == 302
    assert after["Location"].startswith(resolve_url(settings.LOGIN_URL))
    event = AuditEvent.objects.get(action="member.suspend")
    assert (event.actor, event.detail["reason"]) == (admin_user, "left")


def test_an_admin_cannot_suspend_themselves(admin_client: Client, admin_user: User) -> None:
    response = admin_client.post(reverse("member-suspend", args=[admin_user.pk]), {"confirm": "on"})
    # A refused action redirects back (POST/redirect/GET): reloading the page resubmits nothing.
    assert response.status_code == 302
    assert response["Location"] == reverse("member-detail", args=[admin_user.pk]) + "#member-access"
    page = admin_client.get(response["Location"])
    assert "You can&#x27;t suspend yourself. Ask another admin." in page.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.status == User.Status.ACTIVE
    assert admin_client.get(reverse("member-list")).status_code == 200  # still signed in
    assert not AuditEvent.objects.filter(action="member.suspend").exists()


def test_suspending_a_suspended_member_again_redirects_back_with_the_reason(admin_client: Client, bob: User) -> None:
    bob.status, bob.is_active = User.Status.SUSPENDED, False
    bob.save()
    response = admin_client.post(reverse("member-suspend", args=[bob.pk]), {"confirm": "on"}, follow=True)
    assert response.redirect_chain == [(reverse("member-detail", args=[bob.pk]) + "#member-access", 302)]
    assert "bob is already suspended." in response.content.decode()
    assert not AuditEvent.objects.filter(action="member.suspend").exists()


def test_an_admins_own_page_offers_no_suspension_and_says_why(admin_client: Client, admin_user: User) -> None:
    body = html.unescape(admin_client.get(reverse("member-detail", args=[admin_user.pk])).content.decode())
    assert reverse("member-suspend", args=[admin_user.pk]) not in body
    assert "This is you: you can't suspend yourself. Another admin can." in body


def test_another_members_page_offers_the_suspension(admin_client: Client, bob: User) -> None:
    body = admin_client.get(reverse("member-detail", args=[bob.pk])).content.decode()
    assert f'action="{reverse("member-suspend", args=[bob.pk])}"' in body
    assert "This is you" not in body


def test_suspending_needs_the_confirmation(admin_client: Client, bob: User) -> None:
    response = admin_client.post(reverse("member-suspend", args=[bob.pk]), {"reason": "x"})
    assert response.status_code == 400
    assert "Tick the box to confirm the suspension." in response.context["suspend_form"].errors["confirm"]
    bob.refresh_from_db()
    assert bob.status == User.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="member.suspend").exists()


def test_reactivating_lets_a_suspended_member_back_in(admin_client: Client, bob: User) -> None:
    bob.status, bob.is_active, bob.last_login = User.Status.SUSPENDED, False, "2024-01-01T00:00Z"
    bob.save()
    response = admin_client.post(reverse("member-reactivate", args=[bob.pk]))
    assert response.status_code == 302
    bob.refresh_from_db()
    assert (bob.status, bob.is_active) == (User.Status.ACTIVE, True)
    assert AuditEvent.objects.filter(action="member.reactivate", target_id=bob.pk).exists()


def test_reactivating_an_active_member_changes_nothing(admin_client: Client, bob: User) -> None:
    admin_client.post(reverse("member-reactivate", args=[bob.pk]))
    assert not AuditEvent.objects.filter(action="member.reactivate").exists()


# --- capabilities -----------------------------------------------------------------------


def test_granting_capabilities_saves_and_audits(admin_client: Client, admin_user: User, bob: User, settings) -> None:
    settings.WORKSPACE_DOCKER_RUNTIME = "sysbox-runc"
    response = admin_client.post(reverse("member-capabilities", args=[bob.pk]), {"can_docker": "on", "is_staff": "on"})
    assert response.status_code == 302
    bob.refresh_from_db()
    assert (bob.can_sudo, bob.can_docker, bob.is_staff) == (False, True, True)
    event = AuditEvent.objects.get(action="member.capabilities")
    assert (event.actor, event.detail) == (admin_user, {"can_docker": True, "is_staff": True})


def test_docker_is_refused_in_words_where_the_server_has_no_runtime_for_it(
    admin_client: Client, bob: User, settings
) -> None:
    settings.WORKSPACE_DOCKER_RUNTIME = ""
    page = admin_client.get(reverse("member-detail", args=[bob.pk])).content.decode()
    assert "Not available on this server" in page

    response = admin_client.post(reverse("member-capabilities", args=[bob.pk]), {"can_docker": "on", "can_sudo": "on"})

    assert response.status_code == 400
    assert "needs the Sysbox runtime" in response.content.decode()
    bob.refresh_from_db()
    assert (bob.can_sudo, bob.can_docker) == (False, False)  # nothing half-done
    assert not AuditEvent.objects.filter(action="member.capabilities").exists()


def _docker_checkbox(body: str) -> str:
    match = re.search(r'<input[^>]*name="can_docker"[^>]*>', body)
    assert match is not None
    return match.group(0)


def test_the_docker_checkbox_is_disabled_with_the_reason_where_the_server_has_no_runtime(
    admin_client: Client, bob: User, settings
) -> None:
    settings.WORKSPACE_DOCKER_RUNTIME = ""
    body = admin_client.get(reverse("member-detail", args=[bob.pk])).content.decode()
    checkbox = _docker_checkbox(body)
    assert " disabled" in checkbox
    assert 'aria-describedby="id_can_docker_helptext"' in checkbox
    assert "Not available on this server: it needs the Sysbox runtime" in body


def test_the_docker_checkbox_can_be_ticked_where_the_runtime_is_set(admin_client: Client, bob: User, settings) -> None:
    settings.WORKSPACE_DOCKER_RUNTIME = "sysbox-runc"
    body = admin_client.get(reverse("member-detail", args=[bob.pk])).content.decode()
    assert " disabled" not in _docker_checkbox(body)
    assert "Not available on this server" not in body


def test_an_earlier_docker_grant_stays_revocable_without_the_runtime(admin_client: Client, bob: User, settings) -> None:
    settings.WORKSPACE_DOCKER_RUNTIME = ""
    bob.can_docker = True
    bob.save()
    body = admin_client.get(reverse("member-detail", args=[bob.pk])).content.decode()
    assert " disabled" not in _docker_checkbox(body)
    response = admin_client.post(reverse("member-capabilities", args=[bob.pk]), {})
    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.can_docker is False


def test_a_docker_grant_made_earlier_does_not_block_other_changes(admin_client: Client, bob: User, settings) -> None:
    settings.WORKSPACE_DOCKER_RUNTIME = ""
    bob.can_docker = True
    bob.save()
    response = admin_client.post(reverse("member-capabilities", args=[bob.pk]), {"can_docker": "on", "can_sudo": "on"})
    assert response.status_code == 302
    bob.refresh_from_db()
    assert (bob.can_sudo, bob.can_docker) == (True, True)


def test_capabilities_over_htmx_swap_the_card(admin_client: Client, bob: User) -> None:
    response = admin_client.post(
        reverse("member-capabilities", args=[bob.pk]), {"can_sudo": "on"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="member-capabilities"' in body
    assert "<html" not in body
    assert "Saved" in body


def test_an_admin_cannot_drop_their_own_admin_role(admin_client: Client, admin_user: User) -> None:
    response = admin_client.post(reverse("member-capabilities", args=[admin_user.pk]), {"can_sudo": "on"})
    assert response.status_code == 400
    assert response.context["capabilities_form"].errors["is_staff"] == [
        "You can't remove your own admin role. Ask another admin."
    ]
    admin_user.refresh_from_db()
    assert (admin_user.is_staff, admin_user.can_sudo) == (True, False)
    assert not AuditEvent.objects.filter(action="member.capabilities").exists()


def _admin_checkbox(body: str) -> str:
    match = re.search(r'<input type="checkbox" name="is_staff"[^>]*>', body)
    assert match is not None
    return match.group(0)


def test_an_admins_own_page_does_not_offer_dropping_the_admin_role(admin_client: Client, admin_user: User) -> None:
    body = admin_client.get(reverse("member-detail", args=[admin_user.pk])).content.decode()
    checkbox = _admin_checkbox(body)
    assert " disabled" in checkbox
    assert " checked" in checkbox
    assert "You can&#x27;t remove your own admin role. Another admin can." in body


def test_saving_capabilities_on_ones_own_page_keeps_the_admin_role(admin_client: Client, admin_user: User) -> None:
    body = admin_client.get(reverse("member-detail", args=[admin_user.pk])).content.decode()
    # What the browser posts: the disabled checkbox is left out, the hidden field is sent.
    assert '<input type="hidden" name="is_staff" value="on">' in body
    url = reverse("member-capabilities", args=[admin_user.pk])
    response = admin_client.post(url, {"can_sudo": "on", "is_staff": "on"})
    assert response.status_code == 302
    admin_user.refresh_from_db()
    assert (admin_user.is_staff, admin_user.can_sudo) == (True, True)


def test_another_members_admin_role_can_be_changed(admin_client: Client, bob: User) -> None:
    body = admin_client.get(reverse("member-detail", args=[bob.pk])).content.decode()
    assert " disabled" not in _admin_checkbox(body)
    assert 'type="hidden" name="is_staff"' not in body


def test_the_list_shows_each_members_workspace_state(admin_client: Client, alice: User) -> None:
    from portal.models import Host
    from workspaces.models import Workspace

    Workspace.objects.create(owner=alice, host=Host.local(), ssh_port=2250, slug="alice", state="running")
    body = admin_client.get(reverse("member-list")).content.decode()
    assert '<span class="pill pill-running">Running</span>' in body
