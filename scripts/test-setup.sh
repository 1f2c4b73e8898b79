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
dockerd_pid=$(pgrep -xo dockerd || true)
if [ -n "$dockerd_pid" ] && [ -f /run/portal-test/dockerd.pid ] && [ "$(cat /run/portal-test/dockerd.pid)" = "$dockerd_pid" ] \
    && ! tr '\0' '\n' <"/proc/$dockerd_pid/environ" | grep -q "^PATH=.*$stand_ins"; then
  echo "test-setup: restarting dockerd with the NVIDIA hook stand-in"
  kill "$dockerd_pid"
  for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
fi
if ! docker info >/dev/null 2>&1; then
  echo "test-setup: starting dockerd"
  mkdir -p /var/log
  (PATH="$stand_ins:$PATH" setsid dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
  pgrep -xo dockerd >/run/portal-test/dockerd.pid
fi

if [ -x workspaces/image/build-test-image.sh ]; then
  workspaces/image/build-test-image.sh
fi
