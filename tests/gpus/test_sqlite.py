"""`make run` keeps the portal on SQLite, which has no exclusion constraints: there the
booking service's check-then-insert runs in a serialized write transaction (BEGIN
IMMEDIATE), so racing requests still make exactly one booking. This runs the portal's real
settings on a fresh SQLite file in a process of its own, as `make run` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RACE = r"""
import threading
from datetime import timedelta

import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

call_command("migrate", verbosity=0)
from gpus.models import GPU, Booking, BookingGPU
from gpus.services import BookingConflict, booking_create, slot_floor
from portal.models import Host, Quota, User

host = Host.local()
GPU.objects.create(host=host, index=0, name="RTX 5080")
users = []
for i in range(8):
    user = User.objects.create(username=f"racer{i}", email=f"racer{i}@corp.example", status="active")
    Quota.objects.create(user=user, **Quota.team_defaults())
    users.append(user)
start = slot_floor(timezone.now(), timedelta(minutes=30)) + timedelta(hours=2)
won, lost, failed = [], [], []
barrier = threading.Barrier(len(users))

def race(user):
    barrier.wait()
    try:
        won.append(booking_create(user=user, host=host, start=start, end=start + timedelta(hours=1), actor=user))
    except BookingConflict as conflict:
        lost.append(conflict)
    except Exception as error:
        failed.append(repr(error))
    finally:
        connection.close()

threads = [threading.Thread(target=race, args=(u,)) for u in users]
for t in threads: t.start()
for t in threads: t.join()
assert connection.vendor == "sqlite", connection.vendor
assert not failed, failed
assert len(won) == 1, (won, lost)
assert len(lost) == len(users) - 1
assert all(c.conflicting == won[0] for c in lost), [str(c) for c in lost]
assert Booking.objects.count() == 1 and BookingGPU.objects.count() == 1
print("one booking,", len(lost), "conflicts")
"""


def test_racing_bookings_on_sqlite_make_exactly_one(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DEBUG": "true",
        "PORTAL_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "SECRET_KEY": "sqlite-race-test",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", RACE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "one booking, 7 conflicts" in done.stdout
