#!/usr/bin/env bash
# `make run`: the portal on SQLite with Celery's filesystem transport. The worker and beat run
# as separate processes, so background jobs and progress bars behave as in production.
#
# Environment (all optional):
#   PORTAL_VAR_DIR           where the database, broker folders, logs and homes go (./var)
#   PORTAL_DEV_PORT          the development server's port on 127.0.0.1 (8000)
#   PORTAL_DEV_BUILD_IMAGE   0: never build the slim workspace image, only say how (1)
#   PORTAL_DEV_STOP_TIMEOUT  seconds the processes get to stop before SIGKILL (10)
#
# Ctrl-C or SIGTERM stops everything this script started: each process runs in a process group
# of its own (so the terminal's Ctrl-C reaches only this script, which then stops them in order),
# gets SIGTERM once, and whatever is left after PORTAL_DEV_STOP_TIMEOUT gets SIGKILL.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG=${DEBUG:-true}
export DJANGO_SETTINGS_MODULE=project.settings
mkdir -p "${PORTAL_VAR_DIR:-var}"
PORTAL_VAR_DIR=$(cd "${PORTAL_VAR_DIR:-var}" && pwd)
export PORTAL_VAR_DIR
var=$PORTAL_VAR_DIR
port=${PORTAL_DEV_PORT:-8000}
stop_timeout=${PORTAL_DEV_STOP_TIMEOUT:-10}

say() { echo "run-dev: $*" >&2; }

# --- stopping: every process group started here, SIGTERM once, SIGKILL after the timeout ----
worker_pid="" groups=() stopping=0 hurry=0

alive() {  # any process (not a zombie) left in our groups?
  [ ${#groups[@]} -gt 0 ] || return 1
  ps -e -o pgid=,stat= | awk -v want=" ${groups[*]} " \
    'index(want, " " $1 " ") && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

stop_all() {
  [ "$stopping" = 0 ] || return 0
  stopping=1
  trap 'hurry=1' INT TERM  # a second Ctrl-C: don't wait for the timeout
  [ ${#groups[@]} -gt 0 ] || return 0
  say "stopping"
  local group
  for group in "${groups[@]}"; do
    if [ "$group" = "$worker_pid" ]; then
      # The worker's main process only: it stops its pool itself. A signal to its pool
      # processes as well races that shutdown and could leave the main process waiting forever.
      kill -TERM "$group" 2>/dev/null || true
    else
      kill -TERM -- "-$group" 2>/dev/null || true  # runserver's reloader and its child, beat
    fi
  done
  local deadline=$((SECONDS + stop_timeout))
  while alive && [ "$hurry" = 0 ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if alive; then
    if [ "$hurry" = 0 ]; then say "still running after ${stop_timeout}s: sending SIGKILL"; else say "sending SIGKILL"; fi
    for group in "${groups[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
  fi
  wait 2>/dev/null || true
}

trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

start() {  # start COMMAND...: in a new session (its own process group, no terminal)
  setsid "$@" </dev/null &
  groups+=("$!")
}

step() {  # step COMMAND...: run it to the end, stoppable like the services (the image build)
  start "$@"
  local rc=0
  wait "${groups[-1]}" || rc=$?
  unset 'groups[-1]'
  return $rc
}

# --- workspaces on this machine's Docker engine (if one runs) ---------------------------------
# Homes under the var folder, and the slim image when the full desktop image was not built.
export WORKSPACE_HOME_ROOT=${WORKSPACE_HOME_ROOT:-$var/homes}
export WORKSPACE_SCRATCH_ROOT=${WORKSPACE_SCRATCH_ROOT:-$var/scratch}
export WORKSPACE_DATASETS_PATH=${WORKSPACE_DATASETS_PATH:-$var/datasets}
export WORKSPACE_SHM_SIZE=${WORKSPACE_SHM_SIZE:-256M}
# A laptop can't promise the production default of 32G per member.
export QUOTA_MEM_GUARANTEE=${QUOTA_MEM_GUARANTEE:-1G} QUOTA_MEM_LIMIT=${QUOTA_MEM_LIMIT:-4G} QUOTA_SWAP=${QUOTA_SWAP:-1G}
mkdir -p "$WORKSPACE_HOME_ROOT" "$WORKSPACE_SCRATCH_ROOT" "$WORKSPACE_DATASETS_PATH"
# Without an NVIDIA driver the GPU calendar needs GPUs from configuration to book: two
# made-up ones unless you name yours (the GPUs page says they come from configuration). An
# empty GPU_INVENTORY= means none.
export GPU_INVENTORY=${GPU_INVENTORY-"0:RTX 5080:16G,1:RTX 5080:16G"}

desktop_image=portal/workspace:latest
slim_image=portal/workspace-slim:test  # what build-test-image.sh builds
build_script=workspaces/image/build-test-image.sh
base_image=${PORTAL_BASE_IMAGE:-portal/debian-base:bookworm}  # build-test-image.sh reads it too
docker_ok=0 docker_error=""
if ! command -v docker >/dev/null; then
  docker_error="the docker command is not installed"
elif docker_error=$(docker info 2>&1 >/dev/null); then
  docker_ok=1
else
  docker_error=$(printf '%s\n' "$docker_error" | awk 'NF { last = $0 } END { print last }')
  docker_error=${docker_error:-docker info failed}
fi
has_image() { [ "$docker_ok" = 1 ] && docker image inspect "$1" >/dev/null 2>&1; }
if [ -z "${WORKSPACE_IMAGE:-}" ]; then
  if has_image "$desktop_image"; then WORKSPACE_IMAGE=$desktop_image; else WORKSPACE_IMAGE=$slim_image; fi
fi
export WORKSPACE_IMAGE

# How to get the slim image here. Its Debian base is debootstrapped, which needs root and
# debootstrap; once the base exists, building the image needs only Docker.
slim_build_command() {
  local sudo="" install=""
  if ! has_image "$base_image"; then
    [ "$(id -u)" = 0 ] || sudo="sudo "
    command -v debootstrap >/dev/null || install="${sudo}apt-get install -y debootstrap && "
  fi
  echo "${install}${sudo}${build_script}"
}
can_build_slim() {
  [ "$docker_ok" = 1 ] || return 1
  has_image "$base_image" && return 0
  [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null
}

# WORKSPACE_IMAGE_BUILD_HINT tells the portal (the workspace card) that the image is missing and
# what builds it; the web views never ask Docker themselves.
export WORKSPACE_IMAGE_BUILD_HINT=""
if [ "$docker_ok" = 0 ]; then
  WORKSPACE_IMAGE_BUILD_HINT="start Docker (dockerd), then $(slim_build_command)"
  say "no Docker engine answers here ($docker_error): workspaces can't start until one does;"
  say "  then build their image with: $(slim_build_command)   and restart make run"
elif [ "$WORKSPACE_IMAGE" = "$slim_image" ]; then
  if [ "${PORTAL_DEV_BUILD_IMAGE:-1}" != 0 ] && can_build_slim; then
    # A fast no-op when the image is up to date; the first build takes a few minutes.
    has_image "$slim_image" || say "building the workspace image $slim_image (once, a few minutes)"
    step "$build_script" || say "building $slim_image failed (see above)"
  fi
  if ! has_image "$slim_image"; then
    WORKSPACE_IMAGE_BUILD_HINT=$(slim_build_command)
    say "the workspace image $slim_image is not built, so \"Create and start\" will fail."
    say "  build it with: $WORKSPACE_IMAGE_BUILD_HINT   and restart make run"
  fi
elif ! has_image "$WORKSPACE_IMAGE"; then
  if [ "$WORKSPACE_IMAGE" = "$desktop_image" ]; then
    WORKSPACE_IMAGE_BUILD_HINT="docker build -t $desktop_image workspaces/image"
  else
    WORKSPACE_IMAGE_BUILD_HINT="docker pull $WORKSPACE_IMAGE (or build it)"
  fi
  say "the workspace image $WORKSPACE_IMAGE is not on this machine; get it with: $WORKSPACE_IMAGE_BUILD_HINT"
fi

.venv/bin/python manage.py migrate --noinput >/dev/null
.venv/bin/python manage.py ensure_admin

# The worker as compose runs it: one process, a pool of threads.
start .venv/bin/celery -A project worker -Q portal,host.local --pool threads --concurrency 8 --hostname dev@%h \
  --loglevel WARNING --logfile "$var/worker.log"
worker_pid=${groups[-1]}
start .venv/bin/celery -A project beat --loglevel WARNING --logfile "$var/beat.log" \
  --schedule "$var/celerybeat-schedule"
start .venv/bin/python manage.py runserver "127.0.0.1:$port"
echo "Portal: http://127.0.0.1:$port   (worker log: $var/worker.log, beat log: $var/beat.log)"
# Until one of them ends (runserver can't bind its port, say) or a signal comes: then stop all.
wait -n || true
