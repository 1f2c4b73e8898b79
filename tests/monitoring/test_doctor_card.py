"""The dashboard's Health checks card: the worker's task runs the doctor and leaves its report in
the cache; the card shows it (age, each failure with its fix) and never runs a check itself; Run
checks now puts the task on the local host's queue, for admins only."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from monitoring import doctor, tasks
from monitoring.doctor_checks import Check, Status
from monitoring.management.commands import doctor as doctor_command
from portal.models import Host
from tests.worker import WorkerProcess

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_report() -> None:
    cache.delete_many([doctor.REPORT_KEY, doctor.REQUESTED_KEY])


def _report(*checks: Check, age: timedelta = timedelta(0)) -> None:
    doctor.report_store(doctor.Report(timezone.now() - age, "worker-1", 1.2, checks))


def test_the_task_stores_a_report_that_the_admin_card_shows_with_each_failure_and_its_fix(
    settings: Any, admin_client: Client, alice_client: Client
) -> None:
    settings.PORTAL_DOMAIN = "localhost"
    tasks.doctor_task()
    report, _asked = doctor.report_last()
    assert report is not None
    assert (timezone.now() - report.at).total_seconds() < 60
    assert "config.portal_domain" in {row.key for row in report.with_status(Status.FAIL)}
    page = admin_client.get(reverse("dashboard")).content.decode()
    assert "Health checks" in page
    assert "failing</span>" in page
    assert "PORTAL_DOMAIN is &#x27;localhost&#x27;" in page
    assert "Fix: Set PORTAL_DOMAIN to the team" in page
    assert "Health checks" not in alice_client.get(reverse("dashboard")).content.decode()


def test_the_card_says_when_there_is_no_report_and_when_it_is_old(admin_client: Client) -> None:
    page = admin_client.get(reverse("dashboard")).content.decode()
    assert "No report yet" in page
    _report(Check("disk./", "Free space on /", Status.OK, "40 GiB free"), age=timedelta(hours=3))
    page = admin_client.get(reverse("dashboard")).content.decode()
    assert "All good" in page
    assert "This report is old" in page


def test_a_report_the_card_cannot_read_is_shown_as_none(admin_client: Client) -> None:
    cache.set(doctor.REPORT_KEY, {"at": "yesterday", "checks": []}, timeout=None)
    assert doctor.report_last() == (None, None)
    assert "No report yet" in admin_client.get(reverse("dashboard")).content.decode()


def test_run_checks_now_puts_the_task_on_the_local_hosts_queue_and_the_card_says_it_asked(
    admin_client: Client, alice_client: Client
) -> None:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = Host.local().queue
    broker.delete(queue)
    _report(Check("beat", "Beat (the scheduler)", Status.FAIL, "no heartbeat", "Start beat"), age=timedelta(minutes=5))
    assert alice_client.post(reverse("monitoring:doctor-run")).status_code == 403
    assert broker.llen(queue) == 0
    response = admin_client.post(reverse("monitoring:doctor-run"))
    assert response.status_code == 302
    assert response["Location"].endswith("#doctor-card")
    sent = [json.loads(raw)["headers"]["task"] for raw in broker.lrange(queue, 0, -1)]
    assert sent == [doctor.TASK]
    broker.delete(queue)
    page = admin_client.get(reverse("dashboard")).content.decode()
    assert "Checks sent to the worker" in page
    assert "Asked the worker; its report shows here when it is done" in page
    assert 'hx-trigger="every 3s"' in page  # the card reloads itself until the report comes
    assert "Fix: Start beat" in page
    cache.delete(doctor.REPORT_KEY)
    cache.set(doctor.REQUESTED_KEY, (timezone.now() - timedelta(minutes=6)).isoformat())
    page = admin_client.get(reverse("dashboard")).content.decode()
    assert 'hx-trigger="every 3s"' not in page
    assert "it has not answered: is the worker of the local host running?" in page
    assert admin_client.get(reverse("monitoring:doctor-run")).status_code == 405


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)  # the worker must see the local host's row, committed
def test_doctor_via_worker_prints_the_report_the_worker_made_for_it(
    celery_worker_factory: Callable[[], WorkerProcess], admin_client: Client
) -> None:
    celery_worker_factory()
    out = StringIO()
    with pytest.raises(CommandError) as raised:  # the worker runs with the test settings: corp.example fails
        call_command("doctor", "--via-worker", "--json", stdout=out)
    assert raised.value.returncode == 1
    data = json.loads(out.getvalue())
    assert data["where"] == socket.gethostname()
    assert len(data["token"]) == 16
    assert {row["key"] for row in data["checks"]} >= {"database", "docker.local", "worker.portal"}
    assert "PORTAL_DOMAIN is" in admin_client.get(reverse("dashboard")).content.decode()


def test_doctor_via_worker_says_so_when_no_worker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_command, "WORKER_WAIT", 1)
    with pytest.raises(CommandError, match="sent no report within 1 s: is it running") as raised:
        call_command("doctor", "--via-worker")
    assert raised.value.returncode == 2
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(Host.local().queue)  # the task nobody took
