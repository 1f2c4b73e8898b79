#!/usr/bin/env bash
# `make run`: the portal on SQLite with Celery's filesystem transport. The worker and beat run
# as separate processes, so background jobs and progress bars behave as in production.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG=${DEBUG:-true}
export DJANGO_SETTINGS_MODULE=portal.settings
mkdir -p var
.venv/bin/python manage.py migrate --noinput >/dev/null
.venv/bin/python manage.py ensure_admin
trap 'trap - EXIT INT TERM; kill 0 2>/dev/null' EXIT INT TERM
.venv/bin/celery -A portal worker -Q portal,host.local --concurrency 2 --hostname dev@%h \
  --loglevel WARNING --logfile var/worker.log &
.venv/bin/celery -A portal beat --loglevel WARNING --logfile var/beat.log \
  --schedule var/celerybeat-schedule &
echo "Portal: http://127.0.0.1:8000   (worker log: var/worker.log, beat log: var/beat.log)"
.venv/bin/python manage.py runserver 127.0.0.1:8000
