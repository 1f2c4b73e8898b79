#!/usr/bin/env bash
# Builds the portal's own image (Dockerfile) and runs it the way docker-compose.yml does: migrate,
# gunicorn, a Celery worker with the Docker socket and beat on the database scheduler, against
# the PostgreSQL and Redis on this machine. Passes when /healthz reports database, broker and
# worker ok, the login page and static files are served, and the worker has read the host's
# size from the engine, and render_deploy writes Traefik's files (compose's deploy-config).
# `make test` runs it after the suite (a minute or two of image building).
#
# Offline machines: when python:3.11-slim-bookworm can't be pulled, a stand-in with Debian's
# Python 3.11 is built from portal/debian-base:bookworm (workspaces/image/build-test-image.sh
# makes that base). Needs root, docker with BuildKit, PostgreSQL on 127.0.0.1:5432 (trust auth)
# and Redis on 127.0.0.1:6379.
set -euo pipefail

cd "$(dirname "$0")/.."
tag=gpu-portal:verify
port=${VERIFY_PORT:-8765}
db=portal_verify
# The 20.10 client has BuildKit built in; a newer client without the buildx plugin refuses it.
docker_bin=$(command -v /usr/bin/docker || command -v docker)
log() { echo "verify-portal-image: $*" >&2; }

cleanup() { docker rm -f pv-web pv-worker pv-beat >/dev/null 2>&1 || true; rm -rf "${standin:-}"; }
trap cleanup EXIT

if ! docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 \
    && ! docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
    log "Docker Hub unreachable: building a stand-in python:3.11-slim-bookworm"
    bash workspaces/image/build-test-image.sh
    standin=$(mktemp -d)
    cat >"$standin/Dockerfile" <<'EOF'
FROM portal/debian-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* && python3 -m venv /usr/local/py \
 && ln -s /usr/local/py/bin/python /usr/local/py/bin/pip /usr/local/bin/
ENV PATH=/usr/local/py/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
EOF
    DOCKER_BUILDKIT=1 "$docker_bin" build -q -t python:3.11-slim-bookworm "$standin" >/dev/null
fi

log "building $tag"
secret=()
[[ -s /etc/ssl/certs/ca-certificates.crt ]] && secret=(--secret id=cabundle,src=/etc/ssl/certs/ca-certificates.crt)
DOCKER_BUILDKIT=1 "$docker_bin" build -q "${secret[@]}" -t "$tag" . >/dev/null
log "image size: $(docker image inspect -f '{{ .Size }}' "$tag" | numfmt --to=iec)"

psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
env=(
    -e SECRET_KEY="verify-$(head -c 32 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
    -e GOOGLE_CLIENT_ID=verify -e GOOGLE_CLIENT_SECRET=verify -e GATE_FORWARD_AUTH_KEY=verify
    -e PORTAL_DOMAIN=verify.example -e SECURE_SSL_REDIRECT=false
    -e DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" -e REDIS_URL=redis://127.0.0.1:6379/1
)
docker run --rm --network host "${env[@]}" "$tag" python manage.py migrate --noinput >/dev/null
docker run -d --name pv-web --network host "${env[@]}" "$tag" \
    gunicorn project.wsgi:application --bind "127.0.0.1:$port" --workers 2 --worker-class gthread >/dev/null
docker run -d --name pv-worker --user root --network host "${env[@]}" \
    -v /var/run/docker.sock:/var/run/docker.sock "$tag" \
    celery -A project worker -Q portal,host.local --hostname local@verify --concurrency 2 >/dev/null
docker run -d --name pv-beat --network host "${env[@]}" "$tag" \
    celery -A project beat --scheduler django_celery_beat.schedulers:DatabaseScheduler >/dev/null

get() { curl -s -H "Host: portal.verify.example" "http://127.0.0.1:$port$1"; }
failed=0
check() {  # check NAME COMMAND...: PASS or FAIL
    if "${@:2}"; then echo "PASS $1"; else echo "FAIL $1"; failed=1; fi
}
healthy() {
    local deadline=$((SECONDS + 90))
    until get /healthz | grep -q '"status": "ok"'; do
        ((SECONDS < deadline)) || { get /healthz; echo; return 1; }
        sleep 3
    done
}
host_measured() {  # the reconciler on beat (every minute) reads it
    local deadline=$((SECONDS + 90))
    until docker exec pv-web python manage.py shell -c \
        "from portal.models import Host; h = Host.local(); assert h.cpu_count and h.memory_bytes" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 5
    done
}
check "healthz: database, broker and worker heartbeat ok" healthy
check "login page served" bash -c "curl -s -H 'Host: portal.verify.example' http://127.0.0.1:$port/login/admin/ | grep -q '<form'"
check "static files served by whitenoise" bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: portal.verify.example' http://127.0.0.1:$port/static/portal/portal.css) == 200 ]]"
check "worker read the host's size from the engine" host_measured
check "the image's restic is 0.18 (Debian 13's)" bash -c "docker run --rm $tag restic version | grep -q '^restic 0\.18\.'"
check "no restic version warning (backups.W001)" bash -c "! docker exec pv-web python manage.py check 2>&1 | grep -q backups.W001"
check "render_deploy writes Traefik's files from the environment" bash -c "docker run --rm --user root ${env[*]} \
    -e TRAEFIK_ACME_EMAIL=ops@verify.example -e GATE_FORWARD_AUTH_KEY=verify-key-of-at-least-24-chars $tag \
    sh -c 'python manage.py render_deploy --target /tmp/d >/dev/null && grep -q forwardAuth /tmp/d/traefik/dynamic.yml'"
check "ensure_admin prints the break-glass login" bash -c "docker exec pv-web python manage.py ensure_admin | grep -q portaladmin"
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
exit $failed
