"""The usage page: a member's own weeks, the admins' team view, and who may see whose."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gpus.models import GPU
from gpus.services import week_start
from portal.models import AuditEvent, Host, User
from tests.factories import UserFactory
from tests.gpus.sampling import book, make_sampled, samples, workspace_of

URL = reverse("gpus:usage")


def chart_data(html: str) -> dict:
    match = re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page carries no chart data"
    return json.loads(match.group(1))


@pytest.fixture
def this_week(gpus: list[GPU], alice: User, bob: User, admin_user: User) -> None:
    """alice booked GPU 0 for 3 hours this week, bob GPU 1 for 2."""
    monday = week_start(timezone.now())
    book(alice, gpus[:1], monday + timedelta(hours=9), monday + timedelta(hours=12), admin=admin_user)
    book(bob, gpus[1:], monday + timedelta(hours=9), monday + timedelta(hours=11), admin=admin_user)


def test_a_member_sees_their_own_weeks_and_nobody_elses(alice_client: Client, this_week: None) -> None:
    response = alice_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    data = chart_data(html)
    assert data["team"] is None
    assert len(data["weeks"]["labels"]) == 8
    assert data["weeks"]["booked"][-1] == 3
    assert data["weeks"]["released"] == [0] * 8
    assert "Your last 8 weeks" in html
    assert 'id="team-chart"' not in html
    assert "bob" not in html.replace("bob@", "")
    assert 'src="/static/vendor/chartjs/chart.umd.min.js"' in html


def test_a_member_asking_for_someone_elses_weeks_is_refused_and_audited(alice_client: Client, this_week: None) -> None:
    response = alice_client.get(URL, {"member": "bob"})
    assert response.status_code == 403
    (event,) = AuditEvent.objects.filter(action="gpu_usage.denied")
    assert event.outcome == AuditEvent.Outcome.REFUSED
    assert event.detail["member"] == "bob"


def test_a_member_may_name_themselves(alice_client: Client, this_week: None) -> None:
    assert alice_client.get(URL, {"member": "alice"}).status_code == 200


def test_a_member_naming_nobody_is_refused_without_learning_whether_they_exist(alice_client: Client) -> None:
    assert alice_client.get(URL, {"member": "x" * 500}).status_code == 403
    assert AuditEvent.objects.get(action="gpu_usage.denied").detail["member"] == "x" * 150


def test_an_admin_sees_the_team_week_and_picks_a_member(admin_client: Client, this_week: None) -> None:
    response = admin_client.get(URL)
    assert response.status_code == 200
    data = chart_data(response.content.decode())
    team = dict(zip(data["team"]["labels"], data["team"]["booked"], strict=True))
    assert (team["alice"], team["bob"], team["ada"]) == (3, 2, 0)
    picked = admin_client.get(URL, {"member": "bob"})
    assert picked.status_code == 200
    assert "bob's last 8 weeks" in picked.content.decode()
    assert chart_data(picked.content.decode())["weeks"]["booked"][-1] == 2


def test_an_admin_asking_for_an_unknown_member_gets_404(admin_client: Client) -> None:
    assert admin_client.get(URL, {"member": "nobody"}).status_code == 404


def test_without_samples_the_page_says_use_is_not_measured(alice_client: Client, this_week: None) -> None:
    html = alice_client.get(URL).content.decode()
    assert "Use is not measured on this server (no NVIDIA driver; GPUs come from GPU_INVENTORY)." in html
    assert "Idle booked</th>" not in html
    assert set(chart_data(html)["weeks"]) == {"labels", "measured", "booked", "released"}


def test_with_samples_the_page_shows_used_and_idle_hours(
    alice_client: Client, this_week: None, host: Host, alice: User, gpus: list[GPU]
) -> None:
    make_sampled(host)
    monday = week_start(timezone.now())
    samples(gpus[0], monday + timedelta(hours=9), 60, utilization=70, workspaces=[workspace_of(alice, host)])
    html = alice_client.get(URL).content.decode()
    assert "not measured" not in html
    weeks = chart_data(html)["weeks"]
    assert (weeks["used_in_bookings"][-1], weeks["idle"][-1], weeks["unbooked"][-1]) == (1, 2, 0)
    assert "Idle booked</th>" in html


def _team_queries(client: Client, count: int, gpus: list[GPU], admin: User) -> int:
    monday = week_start(timezone.now())
    existing = User.objects.count()
    for i in range(existing, count):
        member = UserFactory(username=f"m{i:03d}")
        start = monday + timedelta(hours=i % 100)
        book(member, gpus[i % 2 : i % 2 + 1], start, start + timedelta(minutes=30), admin=admin)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL).status_code == 200
    return len(queries)


def test_the_team_view_takes_as_many_queries_for_100_members_as_for_10(
    admin_client: Client,
    admin_user: User,
    gpus: list[GPU],
    host: Host,
    django_assert_num_queries: object,
) -> None:
    make_sampled(host)
    ten = _team_queries(admin_client, 10, gpus, admin_user)
    hundred = _team_queries(admin_client, 100, gpus, admin_user)
    assert User.objects.count() == 100
    assert hundred == ten
    with django_assert_num_queries(ten):  # type: ignore[operator]
        admin_client.get(URL)
