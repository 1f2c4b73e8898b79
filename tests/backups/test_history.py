"""The backup history page (backups/history_views.py): the runs, newest first and paged, the
chart's data matching the rows, the incident banner, bad filter input, a constant query count."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backups.history_views import RUNS_PER_PAGE, _duration
from backups.models import BackupPolicy, BackupRun, Snapshot
from portal.models import Operation
from storage.models import FilesystemState
from tests.backups.beat import offsite_policy, snapshot_policy

pytestmark = pytest.mark.django_db

URL = "/backups/history/"


def _runs(count: int, *, start: datetime, kind: str = BackupRun.Kind.SNAPSHOT) -> list[BackupRun]:
    """Hourly runs, each with its Operation; every seventh one failed."""
    runs = []
    for n in range(count):
        at = start + timedelta(hours=n)
        failed = n % 7 == 6
        op = Operation.objects.create(kind="backups.snapshot", state="failed" if failed else "succeeded", log="took 5")
        runs.append(
            BackupRun(
                kind=kind,
                operation=op,
                result=BackupRun.Result.FAILED if failed else BackupRun.Result.SUCCEEDED,
                started_at=at,
                finished_at=at + timedelta(seconds=40 + n % 5),
                snapshots_made=0 if failed else 5,
                snapshots_removed=0 if failed else 1,
                bytes_total=(n + 1) * 1024**3 if kind == BackupRun.Kind.RESTIC else 0,
                message="btrfs: No space left on device" if failed else "",
            )
        )
    return BackupRun.objects.bulk_create(runs)


def _chart(response: object) -> dict[str, list[object]]:
    html = response.content.decode()  # type: ignore[attr-defined]
    start = html.index('<script id="history-data" type="application/json">') + len(
        '<script id="history-data" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])  # type: ignore[no-any-return]


def test_the_page_lists_the_runs_newest_first_with_their_figures(admin_client: Client) -> None:
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
    runs = _runs(10, start=start)

    response = admin_client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    order = [html.index(f'id="run-{run.pk}"') for run in reversed(runs)]
    assert order == sorted(order)
    assert "5 made, 1 removed" in html
    assert "No space left on device" in html
    assert 'class="pill pill-failed"' in html
    assert reverse("backups:history-run", args=[runs[0].pk]) in html
    assert "10 runs" in html


def test_the_chart_data_matches_the_rows_of_the_page(admin_client: Client) -> None:
    start = timezone.now() - timedelta(days=3)
    runs = _runs(RUNS_PER_PAGE + 5, start=start)

    chart = _chart(admin_client.get(URL))

    newest = sorted(runs, key=lambda run: run.started_at)[-RUNS_PER_PAGE:]  # page 1, drawn oldest first
    assert chart["ids"] == [run.pk for run in newest]
    assert chart["results"] == [run.result for run in newest]
    assert chart["snapshots"] == [run.snapshots_made for run in newest]
    assert chart["seconds"] == [round(run.duration.total_seconds()) for run in newest]  # type: ignore[union-attr]
    assert chart["gib"] == [None] * RUNS_PER_PAGE

    second = _chart(admin_client.get(URL, {"page": 2}))
    assert second["ids"] == [run.pk for run in sorted(runs, key=lambda run: run.started_at)[:5]]


def test_the_kind_filter_and_restic_sizes(admin_client: Client) -> None:
    now = timezone.now()
    _runs(3, start=now - timedelta(hours=30))
    restic = _runs(2, start=now - timedelta(days=2), kind=BackupRun.Kind.RESTIC)

    response = admin_client.get(URL, {"kind": "restic"})

    assert response.status_code == 200
    chart = _chart(response)
    assert chart["ids"] == [run.pk for run in restic]
    assert chart["gib"] == [1.0, 2.0]
    assert chart["snapshots"] == [None, None]
    assert "2 runs of this kind" in response.content.decode()


def test_bad_filter_input_is_refused_with_words_and_the_page_still_lists_runs(admin_client: Client) -> None:
    runs = _runs(3, start=timezone.now() - timedelta(hours=5))

    response = admin_client.get(URL, {"kind": "<script>x</script>", "page": "a lot"})

    assert response.status_code == 400
    html = response.content.decode()
    assert "There is no kind of run called" in html
    assert "<script>x</script>" not in html
    assert all(f'id="run-{run.pk}"' in html for run in runs)

    far = admin_client.get(URL, {"page": "999"})  # past the end: the last page, not an error
    assert far.status_code == 200
    assert _chart(far)["ids"] == [run.pk for run in runs]


def test_the_banner_names_a_failing_tier_and_the_missing_btrfs(admin_client: Client) -> None:
    policy = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    BackupPolicy.objects.filter(pk=policy.pk).update(enabled=True, updated=timezone.now() - timedelta(days=2))
    run = _runs(7, start=timezone.now() - timedelta(hours=7))[6]  # the newest run failed
    FilesystemState.objects.create(root=str(settings.STORAGE_ROOT), on_btrfs=False)

    html = admin_client.get(URL).content.decode()

    assert 'id="incident-snapshot"' in html
    assert "Local snapshots (BTRFS) failing" in html
    assert "No space left on device" in html.split('id="incident-snapshot"')[1].split("</div>")[0]
    assert "The alert has not gone out yet" in html  # judged from the rows, told or not
    assert "Local snapshots are not available" in html

    BackupPolicy.objects.filter(pk=policy.pk).update(incident="failed", incident_since=run.finished_at)
    assert "The admins were told" in admin_client.get(URL).content.decode()

    BackupRun.objects.filter(pk=run.pk).update(result=BackupRun.Result.SUCCEEDED)
    FilesystemState.objects.filter(root=str(settings.STORAGE_ROOT)).update(on_btrfs=True)
    html = admin_client.get(URL).content.decode()
    assert "incident-snapshot" not in html
    assert "no-btrfs" not in html


def test_the_banner_shows_an_overdue_tier_even_before_the_alert_went_out(admin_client: Client) -> None:
    policy = BackupPolicy.of(BackupPolicy.Tier.SNAPSHOT)
    BackupPolicy.objects.filter(pk=policy.pk).update(
        enabled=True, incident="", updated=timezone.now() - timedelta(days=2)
    )
    _runs(3, start=timezone.now() - timedelta(days=1))

    html = admin_client.get(URL).content.decode()

    assert "Local snapshots (BTRFS) overdue" in html
    assert "expects one at least every 2 h" in html

    BackupPolicy.objects.filter(pk=policy.pk).update(enabled=False)
    assert "incident-snapshot" not in admin_client.get(URL).content.decode()


def test_an_empty_history(admin_client: Client) -> None:
    html = admin_client.get(URL).content.decode()
    assert "No runs yet." in html


@pytest.mark.parametrize("count", [10, 500])
def test_the_query_count_does_not_grow_with_the_runs(admin_client: Client, count: int) -> None:
    snapshot_policy()
    offsite_policy()  # both tiers, as the migrations make them (an earlier flush may have lost them)
    BackupPolicy.objects.update(enabled=True)
    _runs(count, start=timezone.now() - timedelta(hours=count))
    admin_client.get(URL)  # the session's first load
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(URL, {"kind": "snapshot", "page": 1})
    assert response.status_code == 200
    # the user, the count, the page, the policies and two per enabled tier (its latest run, its
    # last good one), the filesystem, the menu's unread badge (the drill's judgement asks nothing
    # while the offsite tier is not set up).
    assert len(queries) == 10, [q["sql"] for q in queries]


def test_a_runs_page_shows_its_log_and_snapshots(admin_client: Client) -> None:
    run = _runs(7, start=timezone.now() - timedelta(hours=8))[6]  # the failed one
    Snapshot.objects.create(
        source="homes/alice", path="/srv/.snapshots/homes/alice/2026-12-02T140000Z", taken_at=run.started_at, run=run
    )

    response = admin_client.get(reverse("backups:history-run", args=[run.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "took 5" in html
    assert "No space left on device" in html
    assert "/srv/.snapshots/homes/alice/2026-12-02T140000Z" in html
    assert admin_client.get(reverse("backups:history-run", args=[run.pk + 10_000])).status_code == 404


def test_members_cannot_see_the_history(alice_client: Client) -> None:
    assert alice_client.get(URL).status_code == 403


def test_a_failed_offsite_run_leaves_a_gap_in_the_size_line_and_says_nothing_made(admin_client: Client) -> None:
    now = timezone.now()
    _good, bad = _runs(2, start=now - timedelta(days=2), kind=BackupRun.Kind.RESTIC)
    BackupRun.objects.filter(pk=bad.pk).update(
        result="failed", bytes_total=0, files_new=0, bytes_new=0, snapshots_made=0, snapshots_removed=0
    )

    response = admin_client.get(URL, {"kind": "restic"})

    assert _chart(response)["gib"] == [1.0, None]
    row = response.content.decode().split(f'id="run-{bad.pk}"')[1].split("</tr>")[0]
    assert "0 files" not in row
    assert "—" in row


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(42, "42 s"), (68, "1 min 08 s"), (51 * 60, "51 min"), (85 * 60 + 20, "1 h 25 min")],
)
def test_durations_read_as_people_say_them(seconds: int, words: str) -> None:
    start = timezone.now()
    run = BackupRun(kind=BackupRun.Kind.SNAPSHOT, started_at=start, finished_at=start + timedelta(seconds=seconds))
    assert _duration(run) == words
