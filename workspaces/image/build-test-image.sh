#!/usr/bin/env bash
# Builds the offline test images, only when they are missing or stale (a fast no-op otherwise):
#   portal/debian-base:bookworm   debootstrap --variant=minbase of Debian bookworm, imported
#   portal/workspace-slim:test    Dockerfile.slim on that base (sshd + Jupyter Server)
# Needs root, docker and debootstrap (scripts/test-setup.sh installs them); no Docker Hub.
# The slim image carries the hash of its inputs as the label portal.build-hash, so editing the
# Dockerfile, the entrypoint or any file it copies triggers a rebuild.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base_tag=${PORTAL_BASE_IMAGE:-portal/debian-base:bookworm}
slim_tag=${PORTAL_SLIM_IMAGE:-portal/workspace-slim:test}
mirror=${PORTAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
slim_inputs=(Dockerfile.slim entrypoint.sh healthcheck.sh supervise-slim.sh sshd-portal.conf jupyter_server_config.py)

log() { echo "build-test-image: $*" >&2; }

# The debootstrap folder, removed however the script ends: a failure (set -e), Ctrl-C, or
# SIGTERM (make run's stop), which without a trap of its own would skip the EXIT trap.
root=""
cleanup() {
    [[ -n $root ]] || return 0
    # --one-file-system: should debootstrap die with /proc mounted inside, never descend into it.
    umount -R "$root/proc" "$root/sys" 2>/dev/null || true
    rm -rf --one-file-system "$root"
    root=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_base() {
    root=$(mktemp -d /var/tmp/portal-debootstrap.XXXXXX)
    log "debootstrapping Debian bookworm (minbase) from $mirror"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
    cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" --numeric-owner -c . | docker import \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$base_tag" >/dev/null
    cleanup
}

inputs_hash() {
    (cd "$here" && sha256sum "${slim_inputs[@]}") | sha256sum | cut -c1-16
}

current_hash() {
    docker image inspect -f '{{ index .Config.Labels "portal.build-hash" }}' "$slim_tag" 2>/dev/null || true
}

start=$SECONDS
if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
    build_base
    log "imported $base_tag in $((SECONDS - start))s"
fi
wanted=$(inputs_hash)
if [[ $(current_hash) == "$wanted" ]]; then
    log "$slim_tag is up to date ($wanted)"
    exit 0
fi
log "building $slim_tag ($wanted)"
previous=$(docker image inspect -f '{{ .Id }}' "$slim_tag" 2>/dev/null || true)
# The legacy builder is enough (Debian's docker.io may lack buildx) and needs no Docker Hub.
DOCKER_BUILDKIT=0 docker build -q --label "portal.build-hash=$wanted" \
    -f "$here/Dockerfile.slim" -t "$slim_tag" "$here" >/dev/null
log "built $slim_tag in $((SECONDS - start))s"
# Drop the stale image unless a container still uses it.
if [[ -n $previous && $previous != "$(docker image inspect -f '{{ .Id }}' "$slim_tag")" ]]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
fi
