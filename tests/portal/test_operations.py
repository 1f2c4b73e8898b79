"""The life of an Operation row and the progress partial that polls it."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEvent, Operation, User
from portal.operations import (
    operation_claim,
    operation_create,
    operation_fail,
    operation_keepalive,
    operation_progress,
    operation_reap,
    operation_retrying,
    operation_succeed,
)


@pytest.fixture
def op(alice: User) -> Operation:
    return operation_create(kind="workspace start", actor=alice, target=alice)


def _state(op: Operation) -> Operation:
    op.refresh_from_db()
    return op


def _age(op: Operation, seconds: int) -> None:
    # QuerySet.update() leaves `updated` alone, so this backdates it as a dead worker would.
    Operation.objects.filter(pk=op.pk).update(updated=timezone.now() - timedelta(seconds=seconds))


def test_a_new_operation_is_queued_for_its_target(op: Operation, alice: User) -> None:
    assert (op.state, op.percent, op.message) == ("queued", 0, "Waiting for a worker")
    assert (op.actor, op.owner, op.target_type, op.target_id, op.target_label) == (
        alice,
        alice,
        "user",
        str(alice.pk),
        "alice",
    )


def test_an_admin_can_start_an_operation_owned_by_a_member(admin_user: User, alice: User) -> None:
    op = operation_create(kind="quota apply", actor=admin_user, owner=alice)
    assert (op.actor, op.owner, op.target_type) == (admin_user, alice, "")


def test_only_the_first_claim_wins(op: Operation) -> None:
    assert operation_claim(op.pk) is True
    assert operation_claim(op.pk) is False
    op = _state(op)
    assert (op.state, op.attempts, op.message) == ("running", 1, "Started")
    assert op.started is not None


def test_a_claim_marks_the_row_fresh_so_the_reaper_leaves_it(op: Operation) -> None:
    _age(op, 3600)  # sat in the queue for an hour
    operation_claim(op.pk)
    assert operation_reap() == 0
    assert _state(op).state == "running"


def test_progress_is_clamped_and_the_log_appended(op: Operation) -> None:
    operation_claim(op.pk)
    operation_progress(op.pk, percent=140, message="Pulling image", log="step 1")
    operation_progress(op.pk, percent=-5, log="step 2\n")
    op = _state(op)
    assert (op.percent, op.message, op.log) == (0, "Pulling image", "step 1\nstep 2\n")


def test_the_log_keeps_only_its_tail(op: Operation) -> None:
    operation_claim(op.pk)
    operation_progress(op.pk, log="HEAD" + "a" * (Operation.LOG_LIMIT - 10))
    operation_progress(op.pk, log="b" * 100 + "TAIL")
    log = _state(op).log
    assert len(log) == Operation.LOG_LIMIT
    assert log.endswith("b" * 100 + "TAIL\n")
    assert "HEAD" not in log


def test_one_huge_line_is_cut_to_its_end(op: Operation) -> None:
    operation_progress(op.pk, log="x" * (3 * Operation.LOG_LIMIT) + "END")
    log = _state(op).log
    assert len(log) == Operation.LOG_LIMIT
    assert log.endswith("xEND\n")


def test_success_is_final(op: Operation) -> None:
    operation_claim(op.pk)
    operation_succeed(op.pk, message="Workspace is up")
    operation_fail(op.pk, error="late failure")
    operation_progress(op.pk, percent=10, message="late progress")
    op = _state(op)
    assert (op.state, op.percent, op.message, op.error) == ("succeeded", 100, "Workspace is up", "")
    assert op.is_final
    assert op.finished is not None
    assert operation_claim(op.pk) is False


def test_failure_is_final(op: Operation) -> None:
    operation_claim(op.pk)
    operation_fail(op.pk, error="docker: no such image", message="The image is missing")
    operation_succeed(op.pk)
    op = _state(op)
    assert (op.state, op.message, op.error) == ("failed", "The image is missing", "docker: no such image")
    assert operation_claim(op.pk) is False


def test_a_failure_without_words_shows_the_error(op: Operation) -> None:
    operation_fail(op.pk, error="x" * 500)
    op = _state(op)
    assert (op.state, op.message, len(op.error)) == ("failed", "x" * 300, 500)


def test_a_retrying_row_can_be_claimed_again(op: Operation) -> None:
    operation_claim(op.pk)
    operation_retrying(op.pk, error="docker daemon busy", countdown=30)
    op = _state(op)
    assert (op.state, op.message, op.error) == (
        "retrying",
        "Temporary problem; trying again in 30 s",
        "docker daemon busy",
    )
    assert operation_claim(op.pk) is True
    assert (_state(op).state, _state(op).attempts) == ("running", 2)


def test_only_a_running_row_goes_to_retrying(op: Operation) -> None:
    operation_retrying(op.pk, error="x", countdown=5)
    assert _state(op).state == "queued"


def test_the_reaper_fails_rows_stuck_in_running_and_leaves_fresh_ones(op: Operation, alice: User, settings) -> None:
    settings.OPERATION_STUCK_SECONDS = 600
    fresh = operation_create(kind="backup", actor=alice)
    for row in (op, fresh):
        operation_claim(row.pk)
    _age(op, 601)
    _age(fresh, 590)
    assert operation_reap() == 1
    op, fresh = _state(op), _state(fresh)
    assert op.state == "failed"
    assert "stopped reporting progress" in op.message
    assert op.finished is not None
    assert fresh.state == "running"


def test_the_reaper_fails_rows_queued_for_far_too_long(op: Operation, alice: User, settings) -> None:
    settings.OPERATION_STUCK_SECONDS = 600
    waiting = operation_create(kind="backup", actor=alice)
    _age(op, 4 * 600 + 1)
    _age(waiting, 4 * 600 - 10)
    assert operation_reap() == 1
    assert (_state(op).state, _state(waiting).state) == ("failed", "queued")


def test_the_reaper_leaves_finished_rows_alone(op: Operation) -> None:
    operation_claim(op.pk)
    operation_succeed(op.pk)
    _age(op, 10 * 24 * 3600)
    assert operation_reap() == 0
    assert _state(op).state == "succeeded"


def test_progress_after_the_reaper_gave_up_changes_nothing(op: Operation, settings) -> None:
    operation_claim(op.pk)
    _age(op, settings.OPERATION_STUCK_SECONDS + 1)
    operation_reap()
    operation_progress(op.pk, percent=90, message="almost")
    operation_succeed(op.pk)
    op = _state(op)
    assert (op.state, op.percent) == ("failed", 0)


# --- the progress partial ---------------------------------------------------------------


def _url(op: Operation) -> str:
    return reverse("operation-status", args=[op.pk])


def test_the_owner_sees_the_progress_of_their_job(alice_client: Client, op: Operation) -> None:
    operation_claim(op.pk)
    operation_progress(op.pk, percent=42, message="Pulling image", log="layer 1/3")
    response = alice_client.get(_url(op))
    body = response.content.decode()
    assert response.status_code == 200
    assert f'id="op-{op.pk}"' in body
    assert 'aria-valuenow="42"' in body
    assert "Pulling image" in body
    assert "layer 1/3" in body
    assert '<span class="pill pill-running">Running</span>' in body


def test_a_member_started_job_is_visible_to_its_owner_too(alice_client: Client, admin_user: User, alice: User) -> None:
    op = operation_create(kind="quota apply", actor=admin_user, owner=alice)
    assert alice_client.get(_url(op)).status_code == 200


def test_another_member_is_refused_and_it_is_audited(bob_client: Client, bob: User, op: Operation) -> None:
    response = bob_client.get(_url(op))
    assert response.status_code == 403
    assert "Pulling" not in response.content.decode()
    event = AuditEvent.objects.get(action="operation.denied")
    assert (event.actor, event.outcome, event.target_id) == (bob, "refused", str(op.pk))


def test_an_admin_sees_any_job(admin_client: Client, op: Operation) -> None:
    assert admin_client.get(_url(op)).status_code == 200


def test_an_unknown_job_is_not_found(alice_client: Client, db: None) -> None:
    assert alice_client.get(reverse("operation-status", args=[987654])).status_code == 404


def test_anonymous_visitors_are_sent_to_login(client: Client, op: Operation) -> None:
    assert client.get(_url(op)).status_code == 302


@pytest.mark.parametrize("state", ["queued", "running", "retrying"])
def test_htmx_keeps_polling_a_job_that_is_not_final(alice_client: Client, op: Operation, state: str) -> None:
    Operation.objects.filter(pk=op.pk).update(state=state)
    response = alice_client.get(_url(op), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert f'hx-get="{_url(op)}"' in body
    assert 'hx-trigger="every 1s"' in body
    assert 'hx-swap="outerHTML"' in body


@pytest.mark.parametrize("finish", ["succeed", "fail"])
def test_htmx_is_told_to_stop_polling_a_final_job(alice_client: Client, op: Operation, finish: str) -> None:
    operation_claim(op.pk)
    if finish == "succeed":
        operation_succeed(op.pk, message="Workspace is up")
    else:
        operation_fail(op.pk, error="Traceback: boom", message="It broke")
    response = alice_client.get(_url(op), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 286
    assert "hx-trigger" not in body
    assert f'id="op-{op.pk}"' in body
    assert ("Workspace is up" in body) if finish == "succeed" else ("Traceback: boom" in body)


def test_a_plain_request_for_a_final_job_is_an_ordinary_page_fragment(alice_client: Client, op: Operation) -> None:
    operation_fail(op.pk, error="boom")
    response = alice_client.get(_url(op))
    assert response.status_code == 200
    assert '<span class="pill pill-failed">Failed</span>' in response.content.decode()


def test_the_partial_escapes_what_a_job_logged(alice_client: Client, op: Operation) -> None:
    operation_progress(op.pk, message="<b>bold</b>", log="<script>alert(1)</script>")
    body = alice_client.get(_url(op)).content.decode()
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


@pytest.mark.django_db(transaction=True)
def test_a_step_that_reports_nothing_keeps_its_row_from_the_reaper(alice: User) -> None:
    op = operation_create(kind="workspace start", actor=alice, target=alice)
    assert operation_claim(op.pk)
    old = timezone.now() - timedelta(hours=1)
    Operation.objects.filter(pk=op.pk).update(updated=old)
    with operation_keepalive(op.pk, every=0.05):
        time.sleep(0.3)
    op.refresh_from_db()
    assert op.updated > old + timedelta(minutes=59)
    assert operation_reap() == 0
    Operation.objects.filter(pk=op.pk).update(updated=old)
    time.sleep(0.2)  # the keepalive ended with the step: nothing touches the row any more
    op.refresh_from_db()
    assert op.updated == old
