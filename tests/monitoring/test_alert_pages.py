"""The alert pages: the rule form and its refusals, silences (made, refused, ended early), the
incidents now and the history's filters. Every change leaves an audit row; a refusal changes nothing."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from monitoring.alerts import EVALUATED_KEY, alerts_evaluate
from monitoring.models import Alert, AlertKind, AlertRule, Silence
from monitoring.rules import KINDS, rules_ensure
from portal.models import AuditEvent, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client) -> Client:
    rules_ensure()
    client.force_login(UserFactory(username="ada", is_staff=True))
    return client


def rule(kind: str) -> AlertRule:
    return AlertRule.objects.get(kind=kind)


def edit(client: Client, kind: str, **data: Any) -> Any:
    return client.post(reverse("monitoring:alert-rule-edit", args=[rule(kind).pk]), data)


def incident(kind: str = AlertKind.DISK_USAGE, subject: str = "disk root", **fields: Any) -> Alert:
    fields = {"state": Alert.State.FIRING, "started_at": timezone.now(), "value": 93.0, "threshold": 85.0, **fields}
    return Alert.objects.create(rule=rule(kind), subject=subject, **fields)


def test_the_rules_page_lists_every_rule_in_a_fixed_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("monitoring:alert-rules"))
    body = response.content.decode()
    assert body.count('id="rule-') == len(AlertKind.values)
    assert "above 85 %" in body
    assert "3 crashes or more in 15 min" in body
    assert body.index("Disk usage") < body.index("Worker or beat down")


def test_an_admin_edits_a_rule_and_the_audit_log_says_what_changed(admin_client: Client) -> None:
    response = edit(admin_client, AlertKind.DISK_USAGE, enabled="on", threshold="92.5", for_minutes="15", notes="RAID")
    assert response.status_code == 302
    saved = rule(AlertKind.DISK_USAGE)
    assert (saved.threshold, saved.for_minutes, saved.notes) == (92.5, 15, "RAID")
    event = AuditEvent.objects.get(action="alerts.rule_update")
    assert event.actor_label == "ada"
    assert event.detail["changed"] == {"threshold": [85.0, 92.5], "for_minutes": [10, 15], "notes": ["", "RAID"]}


def test_turning_a_yes_no_rule_off_needs_no_threshold(admin_client: Client) -> None:
    response = edit(admin_client, AlertKind.SMART_FAILED, for_minutes="0", threshold="7")
    assert response.status_code == 302
    saved = rule(AlertKind.SMART_FAILED)
    assert (saved.enabled, saved.threshold) == (False, None)


@pytest.mark.parametrize(
    ("kind", "data", "field", "message"),
    [
        (AlertKind.DISK_USAGE, {"threshold": "150", "for_minutes": "5"}, "threshold", "from 1 to 100 %"),
        (AlertKind.DISK_USAGE, {"threshold": "", "for_minutes": "5"}, "threshold", "This field is required"),
        (AlertKind.GPU_TEMPERATURE, {"threshold": "nan", "for_minutes": "5"}, "threshold", "Enter a number"),
        (AlertKind.GPU_TEMPERATURE, {"threshold": "20", "for_minutes": "5"}, "threshold", "from 30 to 120 °C"),
        (AlertKind.GPU_TEMPERATURE, {"threshold": "hot", "for_minutes": "5"}, "threshold", "Enter a number"),
        (AlertKind.DISK_USAGE, {"threshold": "90", "for_minutes": "-1"}, "for_minutes", "from 0 to 1440 minutes"),
        (AlertKind.DISK_USAGE, {"threshold": "90", "for_minutes": "2.5"}, "for_minutes", "whole minutes"),
        (AlertKind.DISK_USAGE, {"threshold": "90", "for_minutes": "99999"}, "for_minutes", "from 0 to 1440"),
        (
            AlertKind.CRASH_LOOP,
            {"threshold": "3", "window_minutes": "0", "for_minutes": "0"},
            "window_minutes",
            "from 1 to 1440 minutes",
        ),
        (AlertKind.CRASH_LOOP, {"threshold": "0", "window_minutes": "15", "for_minutes": "0"}, "threshold", "1 to 100"),
    ],
)
def test_a_bad_rule_is_refused_in_words_and_nothing_is_saved(
    admin_client: Client, kind: str, data: dict[str, str], field: str, message: str
) -> None:
    before = AlertRule.objects.values().get(kind=kind)
    response = edit(admin_client, kind, enabled="on", notes="half", **data)
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert AlertRule.objects.values().get(kind=kind) == before
    assert not AuditEvent.objects.filter(action="alerts.rule_update").exists()


def test_silencing_an_incident_for_a_span_records_who_and_why(admin_client: Client) -> None:
    alert = incident()
    response = admin_client.post(
        reverse("monitoring:alert-silence", args=[alert.pk]), {"scope": "subject", "duration": "240", "reason": "swap"}
    )
    assert response.status_code == 302
    silence = Silence.objects.get()
    assert (silence.rule, silence.subject, silence.reason) == (alert.rule, "disk root", "swap")
    assert abs((silence.ends_at - timezone.now()) - timedelta(hours=4)) < timedelta(minutes=1)
    event = AuditEvent.objects.get(action="alerts.silence")
    assert (event.actor_label, event.detail["subject"]) == ("ada", "disk root")
    page = admin_client.get(reverse("monitoring:alerts")).content.decode()
    assert "silenced" in page


def test_silencing_a_whole_rule_until_a_time(admin_client: Client) -> None:
    alert = incident()
    until = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = admin_client.post(
        reverse("monitoring:alert-silence", args=[alert.pk]), {"scope": "rule", "ends_at": until, "reason": "move"}
    )
    assert response.status_code == 302
    silence = Silence.objects.get()
    assert silence.subject == ""
    assert silence.ends_at.strftime("%Y-%m-%dT%H:%M") == until


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scope": "subject", "reason": "swap"}, "Pick how long the silence lasts"),
        ({"scope": "subject", "ends_at": "2001-01-01T00:00", "reason": "swap"}, "in the past"),
        ({"scope": "subject", "ends_at": "2999-01-01T00:00", "reason": "swap"}, "at most 30 days"),
        ({"scope": "subject", "ends_at": "tomorrow", "reason": "swap"}, "Enter a valid date/time"),
        ({"scope": "subject", "duration": "99", "reason": "swap"}, "Select a valid choice"),
        ({"scope": "subject", "duration": "60", "reason": ""}, "This field is required"),
        ({"scope": "everything", "duration": "60", "reason": "swap"}, "Select a valid choice"),
    ],
)
def test_a_bad_silence_is_refused_in_words_and_none_is_made(
    admin_client: Client, data: dict[str, str], message: str
) -> None:
    response = admin_client.post(reverse("monitoring:alert-silence", args=[incident().pk]), data)
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not Silence.objects.exists()
    assert not AuditEvent.objects.filter(action="alerts.silence").exists()


def test_ending_a_silence_early_takes_effect_now_and_only_once(admin_client: Client) -> None:
    now = timezone.now()
    silence = Silence.objects.create(
        rule=rule(AlertKind.DISK_USAGE), starts_at=now, ends_at=now + timedelta(hours=3), reason="swap"
    )
    url = reverse("monitoring:alert-silence-end", args=[silence.pk])
    assert admin_client.post(url).status_code == 302
    assert admin_client.post(url).status_code == 302
    silence.refresh_from_db()
    assert silence.ends_at <= timezone.now()
    assert not Silence.objects.active(timezone.now()).exists()
    assert AuditEvent.objects.filter(action="alerts.silence_end").count() == 1
    page = admin_client.get(reverse("monitoring:alert-silences")).content.decode()
    assert "No silence in force" in page


def test_the_incidents_page_shows_what_is_open_and_not_what_resolved(admin_client: Client) -> None:
    incident()
    incident(AlertKind.GPU_TEMPERATURE, "GPU 0 on local", state=Alert.State.PENDING, value=88.0, peak=91.0)
    incident(AlertKind.HOST_UNREACHABLE, "host gpu2", state=Alert.State.RESOLVED, resolved_at=timezone.now())
    page = admin_client.get(reverse("monitoring:alerts")).content.decode()
    assert "<strong>1</strong> firing, <strong>2</strong> open" in page
    assert "88 °C, peak 91 °C" in page
    assert "host gpu2" not in page


def test_the_history_filters_by_rule_and_state_and_refuses_an_unknown_state(admin_client: Client) -> None:
    incident()
    incident(AlertKind.HOST_UNREACHABLE, "host gpu2", state=Alert.State.RESOLVED, resolved_at=timezone.now())
    url = reverse("monitoring:alert-history")
    assert admin_client.get(url).context["page"].paginator.count == 2
    by_rule = admin_client.get(url, {"rule": rule(AlertKind.HOST_UNREACHABLE).pk})
    assert [alert.subject for alert in by_rule.context["page"]] == ["host gpu2"]
    by_state = admin_client.get(url, {"state": "firing"})
    assert [alert.subject for alert in by_state.context["page"]] == ["disk root"]
    bad = admin_client.get(url, {"state": "exploded"})
    assert bad.status_code == 400
    assert "There is no state called “exploded”" in bad.content.decode()


def test_the_history_is_paginated_in_a_fixed_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    target = rule(AlertKind.DISK_USAGE)
    now = timezone.now()
    Alert.objects.bulk_create(
        [
            Alert(rule=target, subject=f"disk d{i}", state="resolved", started_at=now - timedelta(minutes=i))
            for i in range(120)
        ]
    )
    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("monitoring:alert-history"), {"page": 3})
    assert len(response.context["rows"]) == 20
    assert "Page 3 of 3" in response.content.decode()


def test_members_are_not_shown_the_alerts_menu_entry(admin_client: Client) -> None:
    assert 'href="/monitoring/alerts/"' in admin_client.get(reverse("dashboard")).content.decode()
    member: User = UserFactory(username="bob")
    client = Client()
    client.force_login(member)
    assert 'href="/monitoring/alerts/"' not in client.get(reverse("dashboard")).content.decode()


def test_the_dashboard_card_counts_firing_and_pending_for_admins_only(admin_client: Client) -> None:
    incident()
    incident(AlertKind.GPU_TEMPERATURE, "GPU 0 on local", state=Alert.State.PENDING)
    card = admin_client.get(reverse("dashboard")).content.decode()
    assert "<strong>1</strong> firing, 1 pending." in card
    client = Client()
    client.force_login(UserFactory(username="bob"))
    assert 'id="alerts-card"' not in client.get(reverse("dashboard")).content.decode()


def test_a_backup_incident_is_not_silenced_here_since_the_backups_app_tells_it(admin_client: Client) -> None:
    alert = incident(AlertKind.BACKUP, "Local snapshots", value=1.0, threshold=None)
    page = admin_client.get(reverse("monitoring:alerts")).content.decode()
    assert reverse("monitoring:alert-silence", args=[alert.pk]) not in page
    response = admin_client.post(
        reverse("monitoring:alert-silence", args=[alert.pk]), {"scope": "rule", "duration": "60", "reason": "x"}
    )
    assert response.status_code == 302
    assert not Silence.objects.exists()
    form = admin_client.get(reverse("monitoring:alert-rule-edit", args=[alert.rule.pk])).context["form"]
    assert set(form.fields) == {"enabled", "notes"}


def test_the_alerts_page_says_when_nothing_has_judged_the_rules_lately(admin_client: Client) -> None:
    cache.delete(EVALUATED_KEY)
    page = admin_client.get(reverse("monitoring:alerts")).content.decode()
    assert "The rules have not been judged yet" in page
    cache.set(EVALUATED_KEY, timezone.now() - timedelta(minutes=10))
    assert "one of the two is not running" in admin_client.get(reverse("monitoring:alerts")).content.decode()
    alerts_evaluate(now=timezone.now())
    page = admin_client.get(reverse("monitoring:alerts")).content.decode()
    assert 'id="evaluation-late"' not in page
    assert "last judged at" in page
    cache.delete(EVALUATED_KEY)


def test_the_migration_seeds_the_registry_defaults() -> None:
    migration = importlib.import_module("monitoring.migrations.0003_alerts")
    seeded = {kind: (threshold, window, for_minutes) for kind, threshold, window, for_minutes in migration.DEFAULTS}
    assert seeded == {name: (kind.threshold, kind.window_minutes, kind.for_minutes) for name, kind in KINDS.items()}


def test_a_whole_rule_is_silenced_from_the_rules_page_ahead_of_maintenance(
    admin_client: Client,
) -> None:
    target = rule(AlertKind.HOST_UNREACHABLE)
    url = reverse("monitoring:alert-rule-silence", args=[target.pk])
    assert "scope" not in admin_client.get(url).context["form"].fields
    response = admin_client.post(url, {"duration": "60", "reason": "moving the rack"})
    assert response.status_code == 302
    silence = Silence.objects.get()
    assert (silence.rule, silence.subject) == (target, "")
    assert Silence.objects.active(timezone.now()).get() == silence
    refused = admin_client.post(url, {"duration": "60", "reason": ""})
    assert refused.status_code == 400
    assert Silence.objects.count() == 1
