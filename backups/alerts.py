"""Alerts about the backup tiers: a tier whose latest run failed, or whose last good run is too
old (overdue), is an incident; the admins are told once when it opens and once when a good run
ends it.

Everything is judged from the rows and the clock, never from events: ``alerts_pass`` (beat,
every 10 minutes) looks at each enabled tier's runs, compares what it sees with the incident the
policy row remembers (``BackupPolicy.incident``/``incident_since``) and tells only about a
change. So a pass that comes late (the worker was down for a day) opens one "overdue" incident,
not one per missed hour; a pass that runs twice, or at the same time as another, tells nothing
twice (the policy row is locked while it is judged). ``backup_run_finished`` is the same
judgement for one tier, for the snapshot engine to call the moment a run ends.

The restore drill (backups/drill.py) tells each failed drill itself, once, with what it found.
What no run can tell is a drill that does not happen: with the offsite tier set up and the
drill's schedule on, no good drill in DRILL_MAX_AGE is the drill's own "overdue" incident,
remembered on the offsite tier's row (``drill_overdue_since``), told once, and ended once by a
drill that passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from backups import drill_schedule, offsite_repo
from backups.models import BackupPolicy, BackupRun, ResticSnapshot
from portal.audit import SYSTEM, audit_record
from portal.models import Notification
from portal.services import notify_admins

logger = logging.getLogger(__name__)

FAILED = "failed"
OVERDUE = "overdue"
INCIDENTS = (FAILED, OVERDUE)
# A run that finished with these ends a failure; PARTIAL counts as a run that happened (some
# snapshots were made) but is itself a failure: a member's home went without one.
BAD_RESULTS = (BackupRun.Result.FAILED, BackupRun.Result.PARTIAL)
GOOD_RESULTS = (BackupRun.Result.SUCCEEDED,)
# A monthly drill, with a few days' slack for a month of 31 days and a drill retried late.
DRILL_MAX_AGE = timedelta(days=35)
ADVICE = {
    FAILED: "The next runs go ahead as scheduled; you will be told when one succeeds.",
    OVERDUE: "Check that the worker and beat are running; you will be told when a run succeeds.",
}


@dataclass(frozen=True)
class Verdict:
    """What the rows say about one tier now: the incident it should have ("" for none), since
    when, and the words for the admins."""

    incident: str
    since: datetime | None
    title: str = ""
    body: str = ""


def alerts_pass(*, now: datetime) -> list[str]:
    """Judge every enabled tier; returns the titles of what was told (empty when nothing changed)."""
    told: list[str] = []
    for policy_id in BackupPolicy.objects.filter(enabled=True).order_by("tier").values_list("pk", flat=True):
        told.extend(_judge_policy(policy_id, now=now))
    told.extend(_judge_drill(now=now))
    return told


def backup_run_finished(run: BackupRun) -> list[str]:
    """Judge the run's tier right away (a failure is told at once rather than at the next pass).
    Safe to call twice, and before or after the pass: the judgement is the same."""
    if run.kind == BackupRun.Kind.DRILL:
        return _judge_drill(now=timezone.now())  # a failed drill was told by the drill itself
    policy = BackupPolicy.of(run.kind)  # made again with the seed's defaults if it was lost
    if not policy.enabled:
        return []
    return _judge_policy(policy.pk, now=timezone.now())


def judge(policy: BackupPolicy, *, now: datetime) -> Verdict:
    """The incident the tier's rows call for now (read-only; the history page shows it too)."""
    tier = policy.get_tier_display()
    runs = BackupRun.objects.filter(kind=policy.tier)
    latest = runs.exclude(result=BackupRun.Result.RUNNING).order_by("-started_at").first()
    if latest is not None and latest.result in BAD_RESULTS:
        first_bad = _first_bad_since_good(policy.tier, latest)
        verb = "partly failed" if latest.result == BackupRun.Result.PARTIAL else "failed"
        reason = f": {latest.message}" if latest.message else "."
        return Verdict(
            FAILED,
            _ended(first_bad),
            title=f"{tier}: the last run {verb}",
            body=f"The run of {_when(latest.started_at)} {verb}{reason}",
        )
    good = runs.filter(result__in=GOOD_RESULTS).order_by("-started_at").first()
    limit = timedelta(hours=policy.max_age_hours)
    # Enabling (or editing) the policy starts its clock afresh: a tier switched back on after
    # weeks is not overdue before it had the time to run. The row keeps no creation time, so a
    # tier that never ran is judged from its last change too.
    reference = max(_ended(good), policy.updated) if good else policy.updated
    if now - reference <= limit:
        return Verdict("", None)
    last = f"The last good run finished {_when(_ended(good))}" if good else "No run succeeded yet"
    return Verdict(
        OVERDUE,
        reference + limit,
        title=f"{tier}: overdue",
        body=f"{last}; the policy expects one at least every {policy.max_age_hours} h.",
    )


def _first_bad_since_good(tier: str, latest: BackupRun) -> BackupRun:
    """The first of the failed runs in a row that ends with ``latest`` (when the failing began)."""
    good = (
        BackupRun.objects.filter(kind=tier, result__in=GOOD_RESULTS, started_at__lt=latest.started_at)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    bad = BackupRun.objects.filter(kind=tier, result__in=BAD_RESULTS)
    if good is not None:
        bad = bad.filter(started_at__gt=good)
    return bad.order_by("started_at").first() or latest


def _judge_policy(policy_id: int, *, now: datetime) -> list[str]:
    """Compare the verdict with the incident on the (locked) row and tell about a change only."""
    with transaction.atomic():
        policy = BackupPolicy.objects.select_for_update().filter(pk=policy_id, enabled=True).first()
        if policy is None:
            return []
        verdict = judge(policy, now=now)
        if verdict.incident == policy.incident:
            return []
        if verdict.incident:
            return [_open(policy, verdict)]
        return _resolve(policy, now=now)


def _open(policy: BackupPolicy, verdict: Verdict) -> str:
    """A new incident, or one that changed kind (overdue, then a run that failed): tell it. The
    start of an ongoing incident is kept."""
    since = policy.incident_since if policy.incident else verdict.since
    # update(), not save(): the policy's ``updated`` is its admins' clock, not the alerts'.
    BackupPolicy.objects.filter(pk=policy.pk).update(incident=verdict.incident, incident_since=since)
    level = Notification.Level.ERROR if verdict.incident == FAILED else Notification.Level.WARNING
    advice = ADVICE[verdict.incident]
    notify_admins(title=verdict.title, body=f"{verdict.body} {advice}", url=_history_url(policy), level=level)
    audit_record(action="backups.incident_open", target=policy, context=SYSTEM, incident=verdict.incident)
    logger.warning("backup incident: %s", verdict.title)
    return verdict.title


def _resolve(policy: BackupPolicy, *, now: datetime) -> list[str]:
    """The rows call for no incident. Only a good run that finished after the incident began ends
    it: an admin's edit that restarts the clock silences an overdue tier, it does not fix it."""
    since = policy.incident_since or now
    good = (
        BackupRun.objects.filter(kind=policy.tier, result__in=GOOD_RESULTS)
        .filter(Q(finished_at__gte=since) | Q(finished_at=None, started_at__gte=since))
        .order_by("-started_at")
        .first()
    )
    if good is None:
        return []
    BackupPolicy.objects.filter(pk=policy.pk).update(incident="", incident_since=None)
    tier = policy.get_tier_display()
    was = "failing" if policy.incident == FAILED else "overdue"
    title = f"{tier}: working again"
    body = f"The run of {_when(good.started_at)} succeeded; the tier had been {was} since {_when(since)}."
    notify_admins(title=title, body=body, url=_history_url(policy))
    audit_record(action="backups.incident_resolve", target=policy, context=SYSTEM, incident=policy.incident)
    return [title]


# --- the restore drill ---------------------------------------------------------------------------


def judge_drill(policy: BackupPolicy, *, now: datetime) -> Verdict:
    """The drill's incident the rows call for now (read-only): overdue when the offsite tier is
    set up, the drill's schedule on, and no drill succeeded in DRILL_MAX_AGE, counted from the
    last good drill, else from the first offsite snapshot (before it there is nothing to
    verify), and never from before the tier's policy last changed (switched back on, say)."""
    if not policy.enabled or offsite_repo.problem() is not None:
        return Verdict("", None)
    task = drill_schedule.drill_beat_row()
    if task is None or not task.enabled:
        return Verdict("", None)
    good = BackupRun.objects.filter(kind=BackupRun.Kind.DRILL, result__in=GOOD_RESULTS).order_by("-started_at").first()
    first = ResticSnapshot.objects.order_by("taken_at").values_list("taken_at", flat=True).first()
    start = _ended(good) if good is not None else first
    if start is None:
        return Verdict("", None)
    reference = max(start, policy.updated)
    if now - reference <= DRILL_MAX_AGE:
        return Verdict("", None)
    last = f"The last good drill finished {_when(_ended(good))}" if good else "No restore drill has succeeded yet"
    schedule = drill_schedule.schedule_of(task).words
    return Verdict(
        OVERDUE,
        reference + DRILL_MAX_AGE,
        title="Restore drill: overdue",
        body=f"{last}; one is expected every month ({schedule}), so nobody knows the backups can be read back.",
    )


def _judge_drill(*, now: datetime) -> list[str]:
    """The drill's verdict against the incident its (locked) row remembers; told on a change only."""
    with transaction.atomic():
        policy = BackupPolicy.objects.select_for_update().filter(tier=BackupPolicy.Tier.RESTIC).first()
        if policy is None:
            return []
        verdict = judge_drill(policy, now=now)
        if verdict.incident and policy.drill_overdue_since is None:
            BackupPolicy.objects.filter(pk=policy.pk).update(drill_overdue_since=verdict.since)
            advice = "Run drill now on the Backups page, or check that beat and the worker are running."
            notify_admins(
                title=verdict.title, body=f"{verdict.body} {advice}", url=_drill_url(), level=Notification.Level.WARNING
            )
            audit_record(action="backups.incident_open", target=policy, context=SYSTEM, incident="drill-overdue")
            logger.warning("backup incident: %s", verdict.title)
            return [verdict.title]
        if not verdict.incident and policy.drill_overdue_since is not None:
            return _resolve_drill(policy)
    return []


def _resolve_drill(policy: BackupPolicy) -> list[str]:
    """Only a drill that passed after the incident began ends it (an edit of the schedule or a
    tier switched off silences it, as for the tiers; it does not fix it)."""
    since = policy.drill_overdue_since
    good = (
        BackupRun.objects.filter(kind=BackupRun.Kind.DRILL, result__in=GOOD_RESULTS, finished_at__gte=since)
        .order_by("-started_at")
        .first()
    )
    if good is None:
        return []
    BackupPolicy.objects.filter(pk=policy.pk).update(drill_overdue_since=None)
    title = "Restore drill: working again"
    body = f"The drill of {_when(good.started_at)} passed; the drill had been overdue since {_when(since)}."
    notify_admins(title=title, body=body, url=_drill_url())
    audit_record(action="backups.incident_resolve", target=policy, context=SYSTEM, incident="drill-overdue")
    return [title]


def _drill_url() -> str:
    return f"{reverse('backups:overview')}#drill"


def _ended(run: BackupRun) -> datetime:
    """When a final run ended (its start, if the engine left no end)."""
    return run.finished_at or run.started_at


def _when(moment: datetime | None) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}" if moment else "an unknown time"


def _history_url(policy: BackupPolicy) -> str:
    return f"{reverse('backups:history')}?kind={policy.tier}"
