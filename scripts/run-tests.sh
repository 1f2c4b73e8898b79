#!/usr/bin/env bash
# The test suite in two passes (make test runs it; arguments go to pytest in both):
#   1. the tests that share nothing but PostgreSQL and Redis (no dockerd, Celery worker,
#      Chromium or loop device), on PYTEST_PROCESSES processes (pytest-xdist, 2 by default),
#      each with its own database, Redis database, storage root and OIDC stand-in port
#      (project/settings_test.py), a test file wholly on one process (its fixtures made once);
#   2. the others one at a time: they share the one dockerd, its default bridge, members'
#      container names and the machine's loop devices, and some time what they watch.
# Both passes run even when the first fails; a pass that selects nothing is not a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
serial="docker or worker or e2e or loopdev"
status=0
pass() {
    .venv/bin/pytest --create-db "$@"  # a fresh database: one left by an older checkout may hold other migrations
    local rc=$?
    if [[ $rc -ne 0 && $rc -ne 5 ]]; then  # 5: no test selected
        status=$rc
    fi
}
pass -n "${PYTEST_PROCESSES:-2}" --dist loadfile -m "not ($serial)" "$@"
pass -m "$serial" "$@"
exit "$status"
