#!/usr/bin/env bash
# shellcheck disable=SC2016  # the single-quoted remote commands expand in the workspace
# Builds and checks the production workspace image (Dockerfile) on a machine without Docker Hub.
# Not part of CI: a first run downloads about 1 GB and takes 5-25 minutes.
#
#   1. ubuntu:24.04: when the engine lacks it, debootstraps Ubuntu noble (minbase, with the
#      sources, dpkg excludes and "ubuntu" account of the official image) and imports it.
#   2. portal/workspace:verify: the Dockerfile without the three steps whose hosts a build
#      machine may not reach (Firefox from packages.mozilla.org, code-server from github.com,
#      PyTorch from download.pytorch.org). The /opt/ml venv gets ml-requirements.txt from
#      wheels that the host's pip downloads, so Jupyter runs for real. Everything else,
#      the whole apt step included, is the production Dockerfile unchanged.
#   3. Starts it the way the portal does (workspaces/spec.py: PORTAL_* environment, home and
#      host-key mounts, docker-init) with ports published on 127.0.0.1, checks every service
#      and prints one PASS/FAIL/SKIP line per check. The container is always removed.
#
# Needs root, docker with BuildKit (the buildx plugin, or the built-in client of Debian's
# docker.io CLI), debootstrap, gpgv, python3 with pip, the Ubuntu archive and PyPI.
# Optional, else their checks are skipped: xvfb + freerdp2-x11 (RDP login), pyhoca-cli +
# nxproxy (an X2Go session: start, suspend, resume).
# Environment: PORTAL_VERIFY_IMAGE (portal/workspace:verify), PORTAL_UBUNTU_MIRROR
# (http://archive.ubuntu.com/ubuntu), PORTAL_VERIFY_WORKDIR (/var/tmp/prodimg-verify: build
# context, wheel cache, logs), PORTAL_VERIFY_SKIP_BUILD=1 (check the existing image only),
# PORTAL_VERIFY_PIP (the pip that downloads the wheels; "python3 -m pip").
# Exit status: 0 when no check failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=${PORTAL_VERIFY_IMAGE:-portal/workspace:verify}
base_tag=ubuntu:24.04
mirror=${PORTAL_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
work=${PORTAL_VERIFY_WORKDIR:-/var/tmp/prodimg-verify}
# The member the test container is made for (uid and gid differ on purpose).
member=verify
member_uid=2001
member_gid=2002

log() { echo "verify-prod-image: $*" >&2; }
die() {
    log "error: $*"
    exit 2
}

# ---------------------------------------------------------------------------------------------
# 1. The Ubuntu base
# ---------------------------------------------------------------------------------------------

# Ubuntu's archive key. Debian has no ubuntu-keyring package in every release, so without
# /usr/share/keyrings/ubuntu-archive-keyring.gpg it is taken from Ubuntu's own package, over
# HTTPS: the noble Release file names the hash of the package index, the index that of the
# ubuntu-keyring .deb, and the key inside must then verify the Release file's signature.
ubuntu_keyring() {
    local system=/usr/share/keyrings/ubuntu-archive-keyring.gpg dir=$work/keyring
    local https=${mirror/#http:/https:} index_sha deb deb_sha
    if [[ -s $system ]]; then
        echo "$system"
        return
    fi
    if [[ ! -s $dir/ubuntu-archive-keyring.gpg ]]; then
        log "fetching Ubuntu's archive keyring from $https"
        rm -rf "$dir" && mkdir -p "$dir"
        curl -fsS -o "$dir/InRelease" "$https/dists/noble/InRelease"
        curl -fsS -o "$dir/Packages.gz" "$https/dists/noble/main/binary-amd64/Packages.gz"
        index_sha=$(awk '$3 == "main/binary-amd64/Packages.gz" && length($1) == 64 { print $1 }' "$dir/InRelease")
        echo "$index_sha  $dir/Packages.gz" | sha256sum -c --quiet - || die "Packages.gz does not match InRelease"
        deb=$(zcat "$dir/Packages.gz" | awk '/^Package: /{p = $2} p == "ubuntu-keyring" && /^Filename: /{print $2; exit}')
        deb_sha=$(zcat "$dir/Packages.gz" | awk '/^Package: /{p = $2} p == "ubuntu-keyring" && /^SHA256: /{print $2; exit}')
        [[ -n $deb && -n $deb_sha ]] || die "no ubuntu-keyring in the noble index"
        curl -fsS -o "$dir/keyring.deb" "$https/$deb"
        echo "$deb_sha  $dir/keyring.deb" | sha256sum -c --quiet - || die "ubuntu-keyring .deb does not match the index"
        dpkg-deb -x "$dir/keyring.deb" "$dir/x"
        gpgv --keyring "$dir/x/usr/share/keyrings/ubuntu-archive-keyring.gpg" "$dir/InRelease" 2>/dev/null ||
            die "the keyring does not verify noble's InRelease"
        cp "$dir/x/usr/share/keyrings/ubuntu-archive-keyring.gpg" "$dir/ubuntu-archive-keyring.gpg"
    fi
    echo "$dir/ubuntu-archive-keyring.gpg"
}

build_base() {
    local keyring root script=/usr/share/debootstrap/scripts/noble
    keyring=$(ubuntu_keyring)
    # Older debootstraps have no noble script; gutsy is the one every Ubuntu release uses.
    [[ -e $script ]] || script=/usr/share/debootstrap/scripts/gutsy
    root=$(mktemp -d /var/tmp/ubuntu-debootstrap.XXXXXX)
    # --one-file-system: should debootstrap die with /proc mounted inside, never descend into it.
    trap 'umount -R "$root/proc" "$root/sys" 2>/dev/null || true; rm -rf --one-file-system "$root"' EXIT
    log "debootstrapping Ubuntu noble (minbase) from $mirror"
    debootstrap --variant=minbase --keyring="$keyring" noble "$root" "$mirror" "$script" >"$work/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $work/debootstrap.log"
    umount -R "$root/proc" "$root/sys" 2>/dev/null || true
    # What the official ubuntu:24.04 image has: all components in deb822 sources, a minimized
    # dpkg (no docs or man pages) and the account "ubuntu" with uid/gid 1000.
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/ubuntu.sources" <<SOURCES
Types: deb
URIs: $mirror/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://security.ubuntu.com/ubuntu/
Suites: noble-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
SOURCES
    cat >"$root/etc/dpkg/dpkg.cfg.d/excludes" <<'EXCLUDES'
path-exclude=/usr/share/man/*
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/groff/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/lintian/*
path-exclude=/usr/share/linda/*
EXCLUDES
    chroot "$root" useradd --create-home --uid 1000 --user-group --shell /bin/bash ubuntu
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" --numeric-owner -c . | docker import --change 'CMD ["/bin/bash"]' - "$base_tag" >/dev/null
    rm -rf --one-file-system "$root"
    trap - EXIT
}

# ---------------------------------------------------------------------------------------------
# 2. The offline-verifiable variant of the Dockerfile
# ---------------------------------------------------------------------------------------------

fetch_wheels() {
    local pip platforms=() tag
    read -ra pip <<<"${PORTAL_VERIFY_PIP:-python3 -m pip}"
    for tag in manylinux2014_x86_64 manylinux_2_{17,24,27,28,31,34,35,39}_x86_64 linux_x86_64; do
        platforms+=(--platform "$tag")
    done
    mkdir -p "$work/wheels"
    log "downloading wheels of ml-requirements.txt for CPython 3.12 (noble's python3)"
    "${pip[@]}" download -q --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
        "${platforms[@]}" -d "$work/wheels" -r "$here/ml-requirements.txt" pip >"$work/pip.log" 2>&1 ||
        die "pip download failed; see $work/pip.log"
}

# Writes ctx/Dockerfile.verify: the Dockerfile with the three network steps replaced. Each
# must match exactly once, so a changed Dockerfile fails here instead of being half-verified.
make_context() {
    local ctx=$work/ctx
    rm -rf "$ctx" && mkdir -p "$ctx"
    cp -a "$here/." "$ctx/"
    mkdir -p "$ctx/wheels"
    cp -l "$work"/wheels/*.whl "$ctx/wheels/" 2>/dev/null || cp "$work"/wheels/*.whl "$ctx/wheels/"
    python3 - "$ctx/Dockerfile" "$ctx/Dockerfile.verify" <<'PY'
import sys

src, dst = sys.argv[1], sys.argv[2]
instructions, current = [], []
for line in open(src).read().splitlines(keepends=True):
    current.append(line)
    if not line.rstrip("\n").endswith("\\"):  # a backslash continues the instruction
        instructions.append("".join(current))
        current = []
instructions.append("".join(current))
offline_venv = (
    "# verify-prod-image.sh: the venv from wheels downloaded on the host, without PyTorch.\n"
    "RUN --mount=type=bind,source=wheels,target=/mnt \\\n"
    "    set -eu; python3 -m venv --system-site-packages /opt/ml; \\\n"
    "    /opt/ml/bin/pip install --no-cache-dir --no-index --find-links /mnt --upgrade pip; \\\n"
    "    /opt/ml/bin/pip install --no-cache-dir --no-index --find-links /mnt -r /opt/ml-requirements.txt\n"
)
replace = {
    "packages.mozilla.org": "# verify-prod-image.sh: Firefox step left out (packages.mozilla.org)\n",
    "code-server.deb": "# verify-prod-image.sh: code-server step left out (github.com)\n",
    "TORCH_INDEX_URL\" \\": offline_venv,
}
hits = dict.fromkeys(replace, 0)
out = []
for instruction in instructions:
    for marker, replacement in replace.items():
        if instruction.startswith("RUN ") and marker in instruction:
            hits[marker] += 1
            out.append(replacement)
            break
    else:
        out.append(instruction)
if any(count != 1 for count in hits.values()):
    sys.exit(f"verify-prod-image: the Dockerfile's network steps changed: {hits}")
open(dst, "w").write("".join(out))
PY
}

# BuildKit is required (RUN --mount). Docker >= 23 CLIs need the buildx plugin for it; the
# 20.10 CLI of Debian's docker.io has a built-in BuildKit client and needs no plugin.
build_command() {
    local cli
    if docker buildx version >/dev/null 2>&1; then
        echo "docker buildx build --load"
        return
    fi
    for cli in docker /usr/bin/docker; do
        if command -v "$cli" >/dev/null && DOCKER_BUILDKIT=1 "$cli" build --help >/dev/null 2>&1; then
            echo "env DOCKER_BUILDKIT=1 $cli build"
            return
        fi
    done
    die "no BuildKit-capable docker build (install the buildx plugin)"
}

build_image() {
    local cmd attempt start=$SECONDS
    cmd=$(build_command)
    log "building $image with '$cmd' (log: $work/build.log)"
    # Two attempts: an engine restarted under a long build (another job on the machine) loses
    # the build, and the layers done so far are cached.
    for attempt in 1 2; do
        if $cmd --progress=plain -f "$work/ctx/Dockerfile.verify" -t "$image" "$work/ctx" >"$work/build.log" 2>&1; then
            log "built $image in $((SECONDS - start))s, $(docker image inspect -f '{{ .Size }}' "$image" | awk '{ printf "%.2f GB", $1 / 1e9 }')"
            return
        fi
        log "build attempt $attempt failed: $(tail -n 3 "$work/build.log" | tr '\n' ' ')"
    done
    die "the build failed; see $work/build.log"
}

# ---------------------------------------------------------------------------------------------
# 3. Run it like the portal and check every service
# ---------------------------------------------------------------------------------------------

failures=0
pass() { printf 'PASS  %s\n' "$1"; }
fail() {
    printf 'FAIL  %s: %s\n' "$1" "$2"
    failures=$((failures + 1))
}
skip() { printf 'SKIP  %s: %s\n' "$1" "$2"; }
# check NAME COMMAND...: PASS when the command succeeds, else FAIL with its last output line.
check() {
    local name=$1 output
    shift
    if output=$("$@" 2>&1); then
        pass "$name"
    else
        fail "$name" "$(tail -n 1 <<<"$output")"
    fi
}

container=portal-verify-$$
run_dir=""
# Checks run in subshells, so the clients they leave in the background are listed in a file.
track() { echo "$1" >>"$run_dir/pids"; }
cleanup() {
    local pid
    if [[ -n $run_dir && -e $run_dir/pids ]]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$run_dir/pids"
    fi
    docker rm -f "$container" >/dev/null 2>&1 || true
    docker volume rm "$container-sshkeys" >/dev/null 2>&1 || true
    [[ -z $run_dir ]] || rm -rf --one-file-system "$run_dir"
}

in_container() { docker exec "$container" "$@"; }
as_member() { docker exec -u "$member" "$container" "$@"; }
# A clean environment: ssh would otherwise pass the host's LANG and LC_* (SendEnv).
member_ssh() {
    env -i PATH="$PATH" HOME="$HOME" ssh -p "$ssh_port" -i "$run_dir/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 "$member@127.0.0.1" "$@"
}
# wait_for SECONDS COMMAND...: retries the command every 2 s until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 2
    done
}

start_container() {
    run_dir=$(mktemp -d /var/tmp/portal-verify-run.XXXXXX)
    mkdir "$run_dir/home" "$run_dir/x2go"
    ssh-keygen -q -t ed25519 -N '' -C verify -f "$run_dir/id_ed25519"
    desktop_password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    docker volume create "$container-sshkeys" >/dev/null
    # As hostops.docker.ensure_container creates it from build_spec (minus GPUs and limits).
    docker run -d --init --name "$container" --hostname ws-verify \
        -e PORTAL_USER="$member" -e PORTAL_UID="$member_uid" -e PORTAL_GID="$member_gid" \
        -e PORTAL_SUDO=0 -e PORTAL_DOCKER=0 \
        -e PORTAL_AUTHORIZED_KEYS="$(cat "$run_dir/id_ed25519.pub")" \
        -e PORTAL_DESKTOP_PASSWORD="$desktop_password" \
        -e NVIDIA_VISIBLE_DEVICES=void -e NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics,video \
        --mount "type=bind,source=$run_dir/home,target=/home/$member" \
        --mount "type=volume,source=$container-sshkeys,target=/etc/ssh/keys" \
        --shm-size 1g --pids-limit 4096 \
        -p 127.0.0.1::22 -p 127.0.0.1::3389 -p 127.0.0.1::8888 -p 127.0.0.1::8080 \
        "$image" >/dev/null
    read_ports
}

read_ports() {
    ssh_port=$(docker port "$container" 22/tcp | head -n 1 | cut -d: -f2)
    rdp_port=$(docker port "$container" 3389/tcp | head -n 1 | cut -d: -f2)
    jupyter_port=$(docker port "$container" 8888/tcp | head -n 1 | cut -d: -f2)
}

has_code_server() { in_container test -x /usr/bin/code-server; }

# The image's own health check, with code-server's check only where code-server is installed.
health_checks() {
    if has_code_server; then
        in_container portal-healthcheck ssh:22 tcp:3389 http:8080/healthz http:8888/api
    else
        in_container portal-healthcheck ssh:22 tcp:3389 http:8888/api
    fi
}

check_health() {
    if ! wait_for 150 health_checks; then
        fail "health check" "$(health_checks 2>&1 | tail -n 1)"
        docker logs "$container" 2>&1 | tail -n 20 >&2
        return
    fi
    if has_code_server; then
        pass "health check (ssh:22 tcp:3389 http:8080/healthz http:8888/api)"
        check "docker health status: healthy" wait_for 60 \
            bash -c "[[ \$(docker inspect -f '{{.State.Health.Status}}' $container) == healthy ]]"
    else
        pass "health check (ssh:22 tcp:3389 http:8888/api; code-server is not in this variant)"
        skip "docker health status" "needs code-server (github.com)"
    fi
}

supervised_running() {
    local status program
    status=$(in_container supervisorctl status || true)
    for program in sshd xrdp xrdp-sesman x2gocleansessions jupyter; do
        grep -Eq "^$program +RUNNING" <<<"$status" || { echo "$program is not RUNNING"; return 1; }
    done
    if has_code_server; then
        grep -Eq "^code-server +RUNNING" <<<"$status" || { echo "code-server is not RUNNING"; return 1; }
    fi
}

ssh_ids() {
    local ids
    ids=$(member_ssh 'id -u; id -g')
    [[ $ids == "$member_uid"$'\n'"$member_gid" ]] || { echo "got: $(tr '\n' ' ' <<<"$ids")"; return 1; }
}

ssh_no_password() {
    local out
    out=$(ssh -p "$ssh_port" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive \
        "$member@127.0.0.1" true 2>&1) && { echo "a login without key succeeded"; return 1; }
    grep -q 'Permission denied (publickey)' <<<"$out" || { tail -n 1 <<<"$out"; return 1; }
}

login_environment() {
    local out
    out=$(member_ssh 'bash -lc "echo \$PATH; echo \$LANG; command -v jupyter"')
    [[ $(sed -n 1p <<<"$out") == /opt/ml/bin:* ]] || { echo "PATH is '$(sed -n 1p <<<"$out")'"; return 1; }
    [[ $(sed -n 2p <<<"$out") == C.UTF-8 ]] || { echo "LANG is '$(sed -n 2p <<<"$out")'"; return 1; }
    [[ $(sed -n 3p <<<"$out") == /opt/ml/bin/jupyter ]] || { echo "jupyter is '$(sed -n 3p <<<"$out")'"; return 1; }
}

command_environment() {  # "ssh ws python train.py": no login shell, pam_env's /etc/environment only
    local out
    out=$(member_ssh 'echo $PATH; command -v python3 jupyter')
    [[ $(sed -n 1p <<<"$out") == /opt/ml/bin:* ]] || { echo "PATH is '$(sed -n 1p <<<"$out")'"; return 1; }
    [[ $(sed -n 2p <<<"$out") == /opt/ml/bin/python3 ]] || { echo "python3 is '$(sed -n 2p <<<"$out")'"; return 1; }
}

xrdp_up() {
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$rdp_port" || { echo "nothing on 127.0.0.1:$rdp_port"; return 1; }
    [[ $(in_container ps -C xrdp -o user= | sort -u) == xrdp ]] || { echo "xrdp does not run as user xrdp"; return 1; }
    in_container pgrep -x xrdp-sesman >/dev/null || { echo "xrdp-sesman is not running"; return 1; }
}

x2go_installed() {
    local bin
    for bin in x2gostartagent x2goruncommand x2golistsessions x2goresume-session x2goagent startplasma-x11 ss; do
        in_container sh -c "command -v $bin" >/dev/null || { echo "$bin is missing"; return 1; }
    done
    member_ssh x2golistsessions >/dev/null || { echo "x2golistsessions fails for the member"; return 1; }
    # Resuming rewrites the agent's options with x2gooptionsstring (Perl, Encode::Locale).
    member_ssh 'x2gooptionsstring -t -c -b -- "$(printf nx/nx,link=lan:50 | base64 -w0)" "$(printf link=wan | base64 -w0)" | base64 -d' |
        grep -qx 'nx/nx,link=wan:50' || { echo "x2gooptionsstring does not work"; return 1; }
}

x2go_state() { as_member x2golistsessions | awk -F'|' -v s="$1" '$5 == s { print $2 }'; }
# The agent's own state: the database says R as soon as a resume is attempted, even a failed one.
agent_state() { as_member cat "/home/$member/.x2go/C-$1/state" 2>/dev/null; }
agent_running() { [[ $(agent_state "$1") == RUNNING ]]; }
plasma_for_member() { [[ -n $(in_container pgrep -u "$member_uid" -x plasmashell) ]]; }
plasma_count() { in_container pgrep -c -u "$member_uid" -x plasmashell || true; }
# The newest KDE session got the locale and the venv on its PATH (via pam_env and /etc/profile).
desktop_environment() {
    local pid env
    pid=$(in_container pgrep -n -u "$member_uid" -x plasmashell)
    env=$(as_member cat "/proc/$pid/environ" | tr '\0' '\n')
    grep -qx 'LANG=C.UTF-8' <<<"$env" || { echo "the desktop's LANG is '$(sed -n 's/^LANG=//p' <<<"$env")'"; return 1; }
    grep -q '^PATH=/opt/ml/bin:' <<<"$env" || { echo "the desktop's PATH is '$(sed -n 's/^PATH=//p' <<<"$env")'"; return 1; }
}

# A real X2Go client (pyhoca-cli) starts a KDE desktop, is cut off (the session must be
# suspended), resumes it, and the session is terminated. pyhoca-cli would refuse "KDE" itself
# (it looks for startkde); x2goclient sends "KDE", which x2goruncommand maps to startplasma-x11.
x2go_session() {
    local home=$run_dir/x2go session pid
    mkdir -p "$home/.ssh" && cp "$run_dir/id_ed25519" "$home/.ssh/id_ed25519"
    HOME=$home timeout 300 xvfb-run -a pyhoca-cli --server 127.0.0.1 -p "$ssh_port" -l "$member" \
        --add-to-known-hosts -t desktop -c startplasma-x11 -g 1024x768 --sound none -q lan \
        </dev/null >"$run_dir/x2go-start.log" 2>&1 &
    pid=$!
    track "$pid"
    wait_for 90 bash -c "[[ -n \$(docker exec -u $member $container x2golistsessions | awk -F'|' '\$5 == \"R\"') ]]" ||
        { echo "no running session: $(grep -v '^ ' "$run_dir/x2go-start.log" | tail -n 1)"; return 1; }
    wait_for 60 plasma_for_member || { echo "session started, but no plasmashell"; return 1; }
    session=$(x2go_state R)
    agent_running "$session" || { echo "the agent of $session is $(agent_state "$session")"; return 1; }
    desktop_environment || return 1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    wait_for 30 bash -c "[[ -n \$(docker exec -u $member $container x2golistsessions | awk -F'|' '\$5 == \"S\"') ]]" ||
        { echo "$session was not suspended after the client went away"; return 1; }
    HOME=$home timeout 300 xvfb-run -a pyhoca-cli --server 127.0.0.1 -p "$ssh_port" -l "$member" \
        -R "$session" -g 1024x768 --sound none -q lan </dev/null >"$run_dir/x2go-resume.log" 2>&1 &
    pid=$!
    track "$pid"
    wait_for 60 bash -c "[[ \$(docker exec -u $member $container x2golistsessions | awk -F'|' '\$5 == \"R\" { print \$2 }') == $session ]]" ||
        { echo "$session was not resumed: $(grep -v '^ ' "$run_dir/x2go-resume.log" | grep -i error | tail -n 1)"; return 1; }
    wait_for 30 agent_running "$session" || { echo "the agent of $session is $(agent_state "$session") after the resume"; return 1; }
    sleep 5
    agent_running "$session" || { echo "the agent of $session is $(agent_state "$session") 5 s after the resume"; return 1; }
    ! grep -m 1 ERROR "$run_dir/x2go-resume.log" || return 1
    plasma_for_member || { echo "plasmashell is gone after the resume"; return 1; }
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    member_ssh x2goterminate-session "$session" >/dev/null 2>&1 || true
    wait_for 30 bash -c "! docker exec $container pgrep -u $member_uid -x plasmashell" || true
}

sessions_created() { in_container grep -c "created session (access granted): username $member" /var/log/xrdp-sesman.log || true; }

# A wrong password gets no session; the member's password gets KDE on an Xorg of xorgxrdp.
rdp_login() {
    local pid before shells
    before=$(sessions_created)
    shells=$(plasma_count)
    HOME=$run_dir timeout 25 xvfb-run -a xfreerdp /v:"127.0.0.1:$rdp_port" /u:"$member" /p:wrong-password \
        /cert:ignore /size:1024x768 -sec-nla >"$run_dir/rdp-wrong.log" 2>&1 || true
    in_container grep -q "AUTHFAIL: user=$member" /var/log/xrdp-sesman.log || { echo "no AUTHFAIL for the wrong password"; return 1; }
    [[ $(sessions_created) == "$before" ]] || { echo "a session started with a wrong password"; return 1; }
    HOME=$run_dir timeout 120 xvfb-run -a xfreerdp /v:"127.0.0.1:$rdp_port" /u:"$member" /p:"$desktop_password" \
        /cert:ignore /size:1024x768 -sec-nla >"$run_dir/rdp.log" 2>&1 &
    pid=$!
    track "$pid"
    wait_for 60 in_container pgrep -u "$member_uid" -f 'Xorg :1[0-9]' || { echo "no xorgxrdp X server"; return 1; }
    wait_for 90 bash -c "(( \$(docker exec $container pgrep -c -u $member_uid -x plasmashell) > $shells ))" ||
        { echo "no plasmashell after the login: $(in_container tail -n 1 /var/log/xrdp-sesman.log)"; return 1; }
    desktop_environment || return 1
    in_container grep -q 'TLS connection established' /var/log/xrdp.log || { echo "the connection did not use TLS"; return 1; }
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Log the session out: the window manager's end ends it (sesman then stops Xorg).
    in_container sh -c "kill \$(pgrep -u $member_uid -x startplasma-x11)" || true
    wait_for 30 bash -c "! docker exec $container pgrep -u $member_uid -x plasmashell" || true
}

http_code() { curl -s -o /dev/null -w '%{http_code}' -m 10 "$@"; }

jupyter_checks() {
    local base=http://127.0.0.1:$jupyter_port cookies=$run_dir/cookies xsrf kernel code
    code=$(http_code "$base/api/contents")
    [[ $code == 200 ]] || { echo "GET /api/contents without a token: $code"; return 1; }
    code=$(http_code -H 'Origin: https://evil.example' "$base/api/contents")
    [[ $code == 403 || $code == 404 ]] || { echo "a cross-origin request got $code"; return 1; }
    code=$(http_code -X POST -H 'Content-Type: application/json' -d '{}' "$base/api/kernels")
    [[ $code == 403 ]] || { echo "a POST without the XSRF token got $code"; return 1; }
    # The way JupyterLab does it: the _xsrf cookie from /lab echoed in X-XSRFToken.
    curl -s -o /dev/null -m 10 -c "$cookies" "$base/lab"
    xsrf=$(awk '$6 == "_xsrf" { print $7 }' "$cookies")
    kernel=$(curl -s -m 20 -b "$cookies" -H "X-XSRFToken: $xsrf" -H 'Content-Type: application/json' \
        -d '{"name":"python3"}' "$base/api/kernels" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])') ||
        { echo "no kernel started"; return 1; }
    wait_for 30 bash -c "docker exec $container pgrep -u $member_uid -f 'ipykernel_launcher.*$kernel'" ||
        { echo "kernel $kernel has no process"; return 1; }
    in_container pgrep -u "$member_uid" -af "ipykernel_launcher.*$kernel" | grep -q '^[0-9]* /opt/ml/bin/python' ||
        { echo "the kernel does not run the /opt/ml venv"; return 1; }
    curl -s -o /dev/null -m 10 -X DELETE -b "$cookies" -H "X-XSRFToken: $xsrf" "$base/api/kernels/$kernel"
}

python_stack() {
    member_ssh /opt/ml/bin/python -c "'import jupyterlab, ipykernel, ipywidgets, numpy, pandas, scipy, sklearn, matplotlib'"
}

host_key() { ssh-keyscan -t ed25519 -p "$ssh_port" 127.0.0.1 2>/dev/null | awk '{ print $3 }'; }

# After a restart (host reboot, engine restart) every service is back, the SSH identity is
# the same, and X2Go lists no session of the previous run.
restart_checks() {
    local before
    before=$(host_key)
    docker restart "$container" >/dev/null
    read_ports
    wait_for 150 health_checks || { echo "not healthy after the restart"; return 1; }
    supervised_running || return 1
    [[ -n $before && $(host_key) == "$before" ]] || { echo "the SSH host key changed"; return 1; }
    ssh_ids || return 1
}

# A session whose agent died with the container must not be offered for resuming.
stale_x2go_session() {
    local home=$run_dir/x2go pid
    HOME=$home timeout 300 xvfb-run -a pyhoca-cli --server 127.0.0.1 -p "$ssh_port" -l "$member" \
        -t desktop -c startplasma-x11 -g 1024x768 --sound none -q lan </dev/null >"$run_dir/x2go-stale.log" 2>&1 &
    pid=$!
    track "$pid"
    wait_for 90 bash -c "[[ -n \$(docker exec -u $member $container x2golistsessions | awk -F'|' '\$5 == \"R\"') ]]" ||
        { echo "no session started"; return 1; }
    docker restart "$container" >/dev/null
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    read_ports
    wait_for 150 health_checks || { echo "not healthy after the restart"; return 1; }
    wait_for 30 bash -c "[[ -z \$(docker exec -u $member $container x2golistsessions) ]]" ||
        { echo "a dead session is still listed: $(as_member x2golistsessions | cut -d'|' -f2,5)"; return 1; }
}

run_checks() {
    local state
    trap cleanup EXIT
    start_container
    log "started $container (ssh 127.0.0.1:$ssh_port, rdp :$rdp_port, jupyter :$jupyter_port)"
    sleep 3
    state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$container")
    if [[ $state != running* ]]; then
        fail "container starts" "$state: $(docker logs "$container" 2>&1 | tail -n 1)"
        return
    fi
    pass "container starts (portal-entrypoint execs supervisord)"
    check_health
    check "supervisord runs sshd, xrdp, xrdp-sesman, x2gocleansessions, jupyter" supervised_running
    check "ssh with the portal's key: uid $member_uid, gid $member_gid" ssh_ids
    check "sshd refuses logins without a key" ssh_no_password
    check "login shell: PATH starts with /opt/ml/bin, LANG=C.UTF-8" login_environment
    check "ssh with a command (no login shell): /opt/ml/bin first in PATH" command_environment
    check "xrdp listens on 3389 as user xrdp, xrdp-sesman runs" xrdp_up
    check "x2goserver installed and usable by the member (incl. ss, x2gooptionsstring)" x2go_installed
    if command -v pyhoca-cli >/dev/null && command -v nxproxy >/dev/null && command -v xvfb-run >/dev/null; then
        check "X2Go: KDE session starts (LANG, PATH), suspends when the client leaves, resumes" x2go_session
    else
        skip "X2Go session" "needs pyhoca-cli, nxproxy and xvfb on the host"
    fi
    if command -v xfreerdp >/dev/null && command -v xvfb-run >/dev/null; then
        check "RDP: wrong password refused, desktop password opens KDE (TLS, LANG, PATH)" rdp_login
    else
        skip "RDP login" "needs freerdp2-x11 and xvfb on the host"
    fi
    check "Jupyter: no token, cross-origin refused, XSRF enforced, kernel runs in /opt/ml" jupyter_checks
    check "python stack of ml-requirements.txt imports" python_stack
    if in_container test -e /opt/ml/lib/python3.12/site-packages/torch; then
        check "torch imports" member_ssh /opt/ml/bin/python -c "'import torch'"
    else
        skip "torch" "not in this variant (download.pytorch.org)"
    fi
    if in_container sh -c 'command -v firefox' >/dev/null; then pass "firefox installed"; else skip "firefox" "not in this variant (packages.mozilla.org)"; fi
    check "restart: services back, same SSH host key" restart_checks
    read_ports # the restart (in check's subshell) published new ports
    if command -v pyhoca-cli >/dev/null && command -v xvfb-run >/dev/null; then
        check "restart: X2Go lists no dead session of the previous run" stale_x2go_session
    fi
}

# ---------------------------------------------------------------------------------------------

[[ $(id -u) == 0 ]] || die "run as root (debootstrap, docker)"
mkdir -p "$work"
if [[ ${PORTAL_VERIFY_SKIP_BUILD:-0} != 1 ]]; then
    if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
        start=$SECONDS
        build_base
        log "imported $base_tag in $((SECONDS - start))s"
    fi
    fetch_wheels
    make_context
    build_image
fi
docker image inspect "$image" >/dev/null 2>&1 || die "no image $image"
run_checks
if ((failures)); then
    log "$failures check(s) failed"
    exit 1
fi
log "all checks passed"
