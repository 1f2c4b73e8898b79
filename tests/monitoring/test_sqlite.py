"""`make run` keeps the portal on SQLite, where there is no date_bin: the buckets are the same
arithmetic on Unix seconds (monitoring.bins.Bin). This runs the rollups and the page's reads
with the portal's real settings on a fresh SQLite file, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from datetime import timedelta

import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

call_command("migrate", verbosity=0)
from monitoring.bins import floor
from monitoring.models import Resolution, Sample
from monitoring.rollup import samples_rollup
from monitoring.series import SPANS, series_read, window_for

assert connection.vendor == "sqlite", connection.vendor
now = timezone.now()
start = floor(now - timedelta(hours=3), timedelta(hours=1))
Sample.objects.bulk_create(
    Sample(series="host.cpu.percent", at=start + timedelta(minutes=m), value=float(m % 60)) for m in range(180)
)
assert samples_rollup(now=now) == {Resolution.FIVE_MINUTES: 36, Resolution.HOUR: 3}
assert samples_rollup(now=now) == {Resolution.FIVE_MINUTES: 0, Resolution.HOUR: 0}
hourly = list(Sample.objects.filter(resolution=Resolution.HOUR).order_by("at").values_list("at", "value"))
assert hourly == [(start + timedelta(hours=h), 29.5) for h in range(3)], hourly
six = series_read(window_for(SPANS["6h"], now=now), ["host."])["host.cpu.percent"]
assert sum(value is not None for value in six) == 90, six
for span in SPANS.values():
    values = series_read(window_for(span, now=now), ["host."])["host.cpu.percent"]
    assert any(value is not None for value in values), span
# The Cost page's monthly sums (TruncMonth in the team's time zone) on SQLite too.
from gpus.models import GPU, Booking, GpuSample
from monitoring import costs
from monitoring.collect import RUNNING_SERIES
from portal.models import Host, User

month = costs.month_start(now)
hours = [month + timedelta(hours=h) for h in range(2)]
Sample.objects.bulk_create(Sample(series=RUNNING_SERIES, resolution=Resolution.HOUR, at=at, value=2.0) for at in hours)
gpu = GPU.objects.create(host=Host.local(), index=7, name="RTX 5080")
GpuSample.objects.create(gpu=gpu, at=month + timedelta(seconds=30), utilization=9, memory_used=0, power_watts=200)
user = User.objects.create(username="sqlite-member")
Booking.objects.create(user=user, host=Host.local(), start=month, end=month + timedelta(seconds=1), gpu_count=1)
report = costs.cost_report(now=now)
assert report.now.workspace_hours.measured and report.now.workspace_hours.value >= 4, report.now
assert report.now.gpu_watts.measured and report.now.gpu_watts.value == 200, report.now.gpu_watts
assert report.now.gpu_hours.value > 0 and costs.chart_data(report)["labels"], report.now
print("sqlite buckets agree")
"""


def test_rollups_and_reads_bucket_the_same_on_sqlite(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DEBUG": "true",
        "PORTAL_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "SECRET_KEY": "sqlite-monitoring-test",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sqlite buckets agree" in done.stdout
