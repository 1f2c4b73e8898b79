#!/usr/bin/env bash
# Everything the suite needs besides the venv, idempotent, on a fresh Debian 12 / Ubuntu 24.04
# machine as root: system packages, PostgreSQL and Redis (started if installed but stopped),
# dockerd, and the slim workspace test image.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
command -v btrfs >/dev/null || need_pkgs+=(btrfs-progs)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v restic >/dev/null || need_pkgs+=(restic)
command -v rclone >/dev/null || need_pkgs+=(rclone)
command -v ssh >/dev/null || need_pkgs+=(openssh-client)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v pg_ctlcluster >/dev/null || need_pkgs+=(postgresql)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
# smartctl: the minute sample's SMART reader is tested against it (a loop device has no SMART).
command -v smartctl >/dev/null || need_pkgs+=(smartmontools)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "test-setup: installing ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# caddy for the gate's proxy end-to-end test and `make bench` (tests/e2e/test_proxy_e2e.py,
# bench/proxy.py, which loads it with wrk): they run their own caddy on free loopback ports
# with admin off. The Debian package also ships a service on :80 with the default Caddyfile;
# leave none of it running.
proxy_pkgs=()
command -v caddy >/dev/null || proxy_pkgs+=(caddy)
command -v wrk >/dev/null || proxy_pkgs+=(wrk)
if [ ${#proxy_pkgs[@]} -gt 0 ]; then
  echo "test-setup: installing ${proxy_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${proxy_pkgs[@]}" >/dev/null
fi
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet caddy 2>/dev/null; then
  systemctl disable --now caddy >/dev/null 2>&1 || true
else
  # No systemd: the package starts nothing, but one started by hand as its service user goes.
  pkill -x -u caddy caddy 2>/dev/null || true
fi

# restic 0.18 (Debian 13 "trixie"'s package) beside the system's: Debian 12 ships 0.14, which
# lacks forget's "oldest snapshot" rule the backups app matches. scripts/restic-trixie.sh (which
# the Dockerfile uses too) only downloads and unpacks it, under /usr/local/lib/portal-test/restic-0.18;
# the binary is linked at /usr/local/lib/portal-test/bin/restic, which tests/conftest.py names in
# RESTIC_BINARY. Skipped quickly once that binary answers with 0.18.
restic_home=/usr/local/lib/portal-test/restic-0.18
restic_bin=/usr/local/lib/portal-test/bin/restic
if ! "$restic_bin" version 2>/dev/null | grep -q '^restic 0\.18\.'; then
  echo "test-setup: installing restic 0.18 from Debian trixie into $restic_home"
  if scripts/restic-trixie.sh "$restic_home"; then
    mkdir -p "$(dirname "$restic_bin")"  # a fresh machine has no bin folder yet
    ln -sfn "$restic_home/usr/bin/restic" "$restic_bin"
  else
    echo "test-setup: could not install restic 0.18; its tests will skip" >&2
  fi
fi

# Docker Compose v2 (Debian 13's docker-compose package, a CLI plugin that also runs on its own)
# for tests/test_compose.py, which runs `docker-compose config` on docker-compose.yml. Unpacked
# by scripts/trixie-unpack.sh under /usr/local/lib/portal-test/compose and linked at
# /usr/local/lib/portal-test/bin/docker-compose; skipped once that answers with v2.
compose_home=/usr/local/lib/portal-test/compose
compose_bin=/usr/local/lib/portal-test/bin/docker-compose
if ! "$compose_bin" version 2>/dev/null | grep -q 'version v\?2\.'; then
  echo "test-setup: installing Docker Compose v2 from Debian trixie into $compose_home"
  if scripts/trixie-unpack.sh docker-compose "$compose_home"; then
    mkdir -p "$(dirname "$compose_bin")"
    ln -sfn "$compose_home/usr/libexec/docker/cli-plugins/docker-compose" "$compose_bin"
  else
    echo "test-setup: could not install Docker Compose v2; tests/test_compose.py will skip" >&2
  fi
fi

# Prometheus and promtool (Debian 12's prometheus package) for tests/monitoring/test_prometheus.py.
# Installing the package would start and enable its daemon (its postinst runs the init script),
# so the .deb is only downloaded and unpacked under /usr/local/lib/portal-test/prometheus, and
# both binaries linked into /usr/local/lib/portal-test/bin. Nothing is left running.
prom_home=/usr/local/lib/portal-test/prometheus
prom_bin=/usr/local/lib/portal-test/bin
if ! "$prom_bin/promtool" --version >/dev/null 2>&1 || ! "$prom_bin/prometheus" --version >/dev/null 2>&1; then
  echo "test-setup: unpacking Debian's prometheus into $prom_home"
  prom_tmp=$(mktemp -d) && chmod 755 "$prom_tmp"  # apt fetches as _apt
  if (cd "$prom_tmp" && apt-get -o APT::Sandbox::User=root download prometheus >/dev/null); then
    rm -rf "$prom_home" && mkdir -p "$prom_home" "$prom_bin"
    dpkg-deb -x "$prom_tmp"/prometheus_*.deb "$prom_home"
    ln -sfn "$prom_home/usr/bin/prometheus" "$prom_bin/prometheus"
    ln -sfn "$prom_home/usr/bin/promtool" "$prom_bin/promtool"
  else
    echo "test-setup: could not download prometheus; its tests will skip" >&2
  fi
  rm -rf "$prom_tmp"
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "test-setup: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "test-setup: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi

# Without an NVIDIA driver, dockerd refuses containers that ask for GPUs. The GPU booking's
# tests need them started, so the dockerd this script starts finds a stand-in of the driver's
# hook on its PATH (tests/stand-ins/nvidia-container-runtime-hook), installed outside the
# checkout so it outlives it. A dockerd we started earlier without it is restarted; one
# started by anyone else is left alone (those tests then skip, saying why).
stand_ins=/usr/local/lib/portal-test/bin
mkdir -p "$stand_ins" /run/portal-test
install -m 0755 tests/stand-ins/nvidia-container-runtime-hook "$stand_ins/"
# An engine of an older version of this script is stopped and started again the current way:
# a gpu2 engine started with `--bridge none` made dockerd delete docker0 at its start, and the
# first engine, still running, can't attach containers to the default bridge until it is
# restarted (it creates docker0 again at its start).
gpu2_pid=$(cat /run/portal-test/dockerd-gpu2.pid 2>/dev/null || true)
if [ -n "$gpu2_pid" ] && [ -r "/proc/$gpu2_pid/cmdline" ] \
    && ! tr '\0' ' ' <"/proc/$gpu2_pid/cmdline" | grep -q -- "--bridge portal-gpu2"; then
  echo "test-setup: restarting the second dockerd (gpu2), started by an older test-setup"
  kill "$gpu2_pid"
  for _ in $(seq 1 60); do kill -0 "$gpu2_pid" 2>/dev/null || break; sleep 0.5; done
fi
# The first engine is the dockerd that is not gpu2's: the oldest may be gpu2's, since the
# dockerd outage test restarts the first one.
gpu2_sock=/run/portal-test/docker-gpu2.sock
first_engine_pid() {
  local pid
  for pid in $(pgrep -x dockerd || true); do
    if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$gpu2_sock"; then
      echo "$pid"
      return
    fi
  done
}
dockerd_pid=$(first_engine_pid)
if [ -n "$dockerd_pid" ] && [ -f /run/portal-test/dockerd.pid ] && [ "$(cat /run/portal-test/dockerd.pid)" = "$dockerd_pid" ]; then
  restart_reason=
  if ! tr '\0' '\n' <"/proc/$dockerd_pid/environ" | grep -q "^PATH=.*$stand_ins"; then
    restart_reason="with the NVIDIA hook stand-in"
  elif ! ip link show docker0 >/dev/null 2>&1; then
    restart_reason="to create its default bridge docker0 again"
  fi
  if [ -n "$restart_reason" ]; then
    echo "test-setup: restarting dockerd $restart_reason"
    kill "$dockerd_pid"
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
  fi
elif [ -n "$dockerd_pid" ] && ! ip link show docker0 >/dev/null 2>&1; then
  echo "test-setup: warning: the running dockerd (not started by this script) has no docker0;" \
    "tests of containers on the default bridge will skip until it is restarted" >&2
fi
if ! docker info >/dev/null 2>&1; then
  echo "test-setup: starting dockerd"
  mkdir -p /var/log
  (PATH="$stand_ins:$PATH" setsid dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
  first_engine_pid >/run/portal-test/dockerd.pid
fi

if [ -x workspaces/image/build-test-image.sh ]; then
  workspaces/image/build-test-image.sh
fi

# A second Docker engine, the test's GPU server "gpu2" (tests/workspaces/test_two_hosts.py): its
# own socket, data root, exec root (and so its own containerd) and pid file. Two engines on one
# machine must not share a bridge or fight over iptables: this one has no default bridge
# (members' networks are user-defined, on a subnet pool of their own) and leaves iptables to
# the first engine; published ports still answer through docker-proxy. The slim image is
# copied across (built offline, no registry) when the engine lacks it or holds an older one.
start_gpu2_engine() {
  local sock=$gpu2_sock pidfile=/run/portal-test/dockerd-gpu2.pid
  local gpu2=(docker -H "unix://$sock")
  if ! "${gpu2[@]}" info >/dev/null 2>&1; then
    echo "test-setup: starting the second dockerd (gpu2)"
    # Its default bridge is one of its own: `--bridge none` would make dockerd delete docker0,
    # the first engine's bridge, which `docker build` and default-network containers need.
    if ! ip link show portal-gpu2 >/dev/null 2>&1; then
      ip link add portal-gpu2 type bridge
      ip addr add 10.216.0.1/24 dev portal-gpu2
      ip link set portal-gpu2 up
    fi
    (PATH="$stand_ins:$PATH" setsid dockerd --host "unix://$sock" --data-root /var/lib/docker-gpu2 \
      --exec-root /run/docker-gpu2 --pidfile "$pidfile" --bridge portal-gpu2 --iptables=false --ip-masq=false \
      --default-address-pool base=10.215.0.0/16,size=24 >/var/log/dockerd-gpu2.log 2>&1 &)
    for _ in $(seq 1 60); do "${gpu2[@]}" info >/dev/null 2>&1 && break; sleep 0.5; done
    "${gpu2[@]}" info >/dev/null 2>&1 || { echo "dockerd gpu2 did not start; see /var/log/dockerd-gpu2.log" >&2; exit 1; }
  fi
  local image=portal/workspace-slim:test
  local want have
  want=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) || return 0  # not built: its tests skip
  have=$("${gpu2[@]}" image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "test-setup: copying $image to the gpu2 engine"
    docker save "$image" | "${gpu2[@]}" load -q >/dev/null
  fi
}
start_gpu2_engine
