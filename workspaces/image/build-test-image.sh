#!/usr/bin/env bash
# Builds the offline test images, only when they are missing or stale (a fast no-op otherwise):
#   portal/debian-base:bookworm   debootstrap --variant=minbase of Debian bookworm, imported
#   portal/workspace-slim:test    Dockerfile.slim on that base (sshd + JupyterLab)
# Needs root, docker and debootstrap (scripts/test-setup.sh installs them) and a pip that
# reaches PyPI (PORTAL_TEST_PIP; the checkout's .venv, else "python3 -m pip"); no Docker Hub.
# JupyterLab and ipykernel come at production's pins (ml-requirements.txt) as CPython 3.11
# wheels downloaded on the host into PORTAL_TEST_WHEELS (/var/cache/portal-test/slim-wheels),
# once per set of pins.
# The slim image carries the hash of its inputs as the label portal.build-hash, so editing the
# Dockerfile, the entrypoint, any file it copies or those pins triggers a rebuild.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base_tag=${PORTAL_BASE_IMAGE:-portal/debian-base:bookworm}
slim_tag=${PORTAL_SLIM_IMAGE:-portal/workspace-slim:test}
mirror=${PORTAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
wheel_cache=${PORTAL_TEST_WHEELS:-/var/cache/portal-test/slim-wheels}
slim_inputs=(Dockerfile.slim entrypoint.sh healthcheck.sh supervise-slim.sh sshd-portal.conf jupyter_server_config.py)

log() { echo "build-test-image: $*" >&2; }

# The debootstrap folder and the build context, removed however the script ends: a failure
# (set -e), Ctrl-C, or SIGTERM (make run's stop), which without a trap of its own would skip
# the EXIT trap.
root=""
context=""
cleanup() {
    [[ -n $context ]] && rm -rf "$context"
    context=""
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

# The slim image's Python packages: production's pins of JupyterLab and ipykernel.
slim_requirements() {
    grep -E '^(jupyterlab|ipykernel)==' "$here/ml-requirements.txt"
}

inputs_hash() {
    { (cd "$here" && sha256sum "${slim_inputs[@]}"); slim_requirements; } | sha256sum | cut -c1-16
}

# Wheels for bookworm's CPython 3.11 on x86_64 (glibc 2.36), whatever Python the host runs.
fetch_wheels() {
    local dir=$1 pip platforms=() tag
    [[ -f $dir/requirements.txt ]] && return 0
    local default="python3 -m pip"
    [[ -x $here/../../.venv/bin/python ]] && default="$here/../../.venv/bin/python -m pip"  # make's venv
    read -ra pip <<<"${PORTAL_TEST_PIP:-$default}"
    for tag in manylinux2014_x86_64 manylinux_2_{17,24,27,28,31,34,35,36}_x86_64 linux_x86_64; do
        platforms+=(--platform "$tag")
    done
    log "downloading JupyterLab's wheels into $dir"
    rm -rf "$dir.part" && mkdir -p "$dir.part"
    slim_requirements >"$dir.part/requirements.txt"
    "${pip[@]}" download -q --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
        "${platforms[@]}" -d "$dir.part" -r "$dir.part/requirements.txt" >"$dir.part/pip.log" 2>&1 || {
        log "pip download failed; see $dir.part/pip.log"
        exit 1
    }
    mv "$dir.part" "$dir"
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
wheels=$wheel_cache/$(slim_requirements | sha256sum | cut -c1-16)
fetch_wheels "$wheels"
context=$(mktemp -d /var/tmp/portal-slim-context.XXXXXX)
(cd "$here" && cp "${slim_inputs[@]}" "$context/")
cp -rl "$wheels" "$context/wheels" 2>/dev/null || cp -r "$wheels" "$context/wheels"
# The legacy builder is enough (Debian's docker.io may lack buildx) and needs no Docker Hub.
DOCKER_BUILDKIT=0 docker build -q --label "portal.build-hash=$wanted" \
    -f "$context/Dockerfile.slim" -t "$slim_tag" "$context" >/dev/null
log "built $slim_tag in $((SECONDS - start))s"
# Drop the stale image unless a container still uses it.
if [[ -n $previous && $previous != "$(docker image inspect -f '{{ .Id }}' "$slim_tag")" ]]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
fi
