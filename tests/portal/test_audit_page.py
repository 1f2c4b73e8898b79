from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEvent, User
from portal.views.audit import describe_detail

G = 1024**3


def _event(action: str, *, actor: User | None = None, days_ago: int = 0, **fields: object) -> AuditEvent:
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=actor.username if actor else "",
        created=timezone.now() - dt.timedelta(days=days_ago),
        **fields,
    )


def _actions(client: Client, **query: str) -> list[str]:
    response = client.get(reverse("audit-list"), query)
    assert response.status_code == 200
    return [event.action for event, _ in response.context["rows"]]


def test_it_refuses_the_audit_log_to_members(alice_client: Client, alice: User) -> None:
    _event("member.invite", target_label="secret-target")
    response = alice_client.get(reverse("audit-list"))
    assert response.status_code == 403
    assert "secret-target" not in response.content.decode()
    assert AuditEvent.objects.filter(actor=alice, action="admin_page.denied", outcome="refused").exists()


def test_it_lists_events_newest_first_with_their_columns(admin_client: Client, admin_user: User, bob: User) -> None:
    _event("member.invite", actor=admin_user, days_ago=1, target_type="user", target_id=str(bob.pk), target_label="bob")
    _event("quota.update", actor=admin_user, ip="10.0.0.7", target_label="bob")
    response = admin_client.get(reverse("audit-list"))
    assert _actions(admin_client) == ["quota.update", "member.invite"]
    body = response.content.decode()
    assert "10.0.0.7" in body
    assert f'href="{reverse("member-detail", args=[bob.pk])}">bob<' in body


def test_refused_rows_are_highlighted(admin_client: Client, alice: User) -> None:
    _event("admin_page.denied", actor=alice, outcome=AuditEvent.Outcome.REFUSED, detail={"path": "/members/"})
    body = admin_client.get(reverse("audit-list")).content.decode()
    assert '<tr class="row-refused">' in body
    assert '<span class="pill pill-refused">Refused</span>' in body


def test_it_filters_by_actor_action_outcome_and_target(admin_client: Client, admin_user: User, alice: User) -> None:
    _event("member.invite", actor=admin_user, target_label="jane")
    _event("member.suspend", actor=admin_user, target_label="bob")
    _event("quota.update", actor=admin_user, target_label="bob")
    _event("member.denied", actor=alice, outcome=AuditEvent.Outcome.REFUSED, target_label="bob")
    assert _actions(admin_client, actor="ALICE") == ["member.denied"]
    assert _actions(admin_client, action="member.") == ["member.denied", "member.suspend", "member.invite"]
    assert _actions(admin_client, action="quota") == ["quota.update"]
    assert _actions(admin_client, outcome="refused") == ["member.denied"]
    assert _actions(admin_client, outcome="ok", q="bo") == ["quota.update", "member.suspend"]
    assert _actions(admin_client, actor="ada", action="member.", q="jane") == ["member.invite"]


def test_it_filters_by_date_range_inclusive(admin_client: Client, admin_user: User) -> None:
    _event("old", actor=admin_user, days_ago=10)
    _event("middle", actor=admin_user, days_ago=5)
    _event("today", actor=admin_user)
    today = timezone.localdate()
    five_days_ago = (today - dt.timedelta(days=5)).isoformat()
    assert _actions(admin_client, date_from=five_days_ago) == ["today", "middle"]
    assert _actions(admin_client, date_to=five_days_ago) == ["middle", "old"]
    assert _actions(admin_client, date_from=five_days_ago, date_to=five_days_ago) == ["middle"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"date_from": "2024-05-02", "date_to": "2024-05-01"}, "date_to", "The end date is before the start date."),
        ({"date_from": "yesterday"}, "date_from", "Enter a valid date."),
        ({"outcome": "maybe"}, "outcome", "Select a valid choice. maybe is not one of the available choices."),
    ],
)
def test_bad_filters_are_explained_and_skipped(
    admin_client: Client, admin_user: User, query: dict[str, str], field: str, message: str
) -> None:
    _event("member.invite", actor=admin_user)
    response = admin_client.get(reverse("audit-list"), query)
    assert response.status_code == 200
    assert response.context["filters"].errors[field] == [message]
    assert 'aria-invalid="true"' in response.content.decode()
    assert [event.action for event, _ in response.context["rows"]] == ["member.invite"]


def test_it_pages_by_fifty_and_keeps_the_filters_in_page_links(admin_client: Client, admin_user: User) -> None:
    AuditEvent.objects.bulk_create(
        AuditEvent(action="member.invite", actor=admin_user, actor_label="ada", target_label=f"m{i}") for i in range(60)
    )
    first = admin_client.get(reverse("audit-list"), {"action": "member."})
    assert len(first.context["rows"]) == 50
    assert "?action=member.&amp;page=2" in first.content.decode()
    second = admin_client.get(reverse("audit-list"), {"action": "member.", "page": "2"})
    assert len(second.context["rows"]) == 10


def test_it_costs_the_same_queries_for_few_and_many_events(
    admin_client: Client, admin_user: User, django_assert_num_queries
) -> None:
    def add(count: int) -> None:
        AuditEvent.objects.bulk_create(
            AuditEvent(action="member.invite", actor=admin_user, actor_label="ada", detail={"email": f"{i}@x"})
            for i in range(count)
        )

    add(3)
    # user, unread count, paginator count, one page of events (the session is in the Redis cache)
    with django_assert_num_queries(4):
        admin_client.get(reverse("audit-list"))
    add(500)
    with django_assert_num_queries(4):
        response = admin_client.get(reverse("audit-list"), {"outcome": "ok"})
    assert len(response.context["rows"]) == 50


def test_quota_changes_read_in_human_units() -> None:
    detail = {"changes": {"mem_limit": [100 * G, 128 * G], "cpuset": ["", "0-3"], "storage_hard": [None, 2048 * G]}}
    assert describe_detail(detail) == [
        "mem_limit: 100G → 128G",
        "cpuset: all CPUs → 0-3",
        "storage_hard: none → 2T",
    ]
    assert describe_detail({"reason": "left the team"}) == ["reason: left the team"]
    assert describe_detail({}) == []
