#!/usr/bin/env bash
# `make run`: the portal on SQLite with Celery's filesystem transport. The worker and beat run
# as separate processes, so background jobs and progress bars behave as in production.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG=${DEBUG:-true}
export DJANGO_SETTINGS_MODULE=project.settings
mkdir -p var
# Workspaces on this machine's Docker engine (if one runs): homes under var/, and the slim
# image when the full desktop image was not built.
export WORKSPACE_HOME_ROOT=${WORKSPACE_HOME_ROOT:-$PWD/var/homes}
export WORKSPACE_SCRATCH_ROOT=${WORKSPACE_SCRATCH_ROOT:-$PWD/var/scratch}
export WORKSPACE_DATASETS_PATH=${WORKSPACE_DATASETS_PATH:-$PWD/var/datasets}
export WORKSPACE_SHM_SIZE=${WORKSPACE_SHM_SIZE:-256M}
# A laptop can't promise the production default of 32G per member.
export QUOTA_MEM_GUARANTEE=${QUOTA_MEM_GUARANTEE:-1G} QUOTA_MEM_LIMIT=${QUOTA_MEM_LIMIT:-4G} QUOTA_SWAP=${QUOTA_SWAP:-1G}
if [ -z "${WORKSPACE_IMAGE:-}" ] && ! docker image inspect portal/workspace:latest >/dev/null 2>&1 \
   && docker image inspect portal/workspace-slim:test >/dev/null 2>&1; then
  export WORKSPACE_IMAGE=portal/workspace-slim:test
fi
mkdir -p "$WORKSPACE_HOME_ROOT" "$WORKSPACE_SCRATCH_ROOT" "$WORKSPACE_DATASETS_PATH"
.venv/bin/python manage.py migrate --noinput >/dev/null
.venv/bin/python manage.py ensure_admin
trap 'trap - EXIT INT TERM; kill 0 2>/dev/null' EXIT INT TERM
.venv/bin/celery -A portal worker -Q portal,host.local --concurrency 2 --hostname dev@%h \
  --loglevel WARNING --logfile var/worker.log &
.venv/bin/celery -A portal beat --loglevel WARNING --logfile var/beat.log \
  --schedule var/celerybeat-schedule &
echo "Portal: http://127.0.0.1:8000   (worker log: var/worker.log, beat log: var/beat.log)"
.venv/bin/python manage.py runserver 127.0.0.1:8000
