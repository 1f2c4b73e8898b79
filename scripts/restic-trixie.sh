#!/usr/bin/env bash
# Unpack Debian 13 "trixie"'s restic (0.18: a static binary that needs only libc) under DEST, as
# DEST/usr/bin/restic. Debian 12 ships 0.14, which lacks forget's "oldest snapshot" rule and the
# JSON the backups app reads (backups/checks.py warns about it). Nothing of trixie is installed
# or upgraded through apt: its source list and package lists are kept apart from the system's
# (the system's apt never sees trixie), and the one .deb is downloaded (apt checks it against
# trixie's signed Release, with the system's debian-archive-keyring) and unpacked with dpkg -x.
# It comes from the Debian mirror this system already uses (else deb.debian.org), so it works
# wherever apt-get install does: the image build (Dockerfile) and scripts/test-setup.sh.
set -euo pipefail

dest=${1:?usage: scripts/restic-trixie.sh DEST}
list=/etc/apt/portal-trixie.list
lists=/var/lib/apt/portal-trixie-lists
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# The Debian mirror this machine already uses (deb822 or one-line sources), else deb.debian.org.
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
           | awk '/^URIs:/ {print $2}' | grep -v -e security -e '^$' | grep -m1 /debian || true)
[ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
           | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' | grep -v security \
           | grep -m1 /debian || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
[ -f "$keyring" ] || { echo "restic-trixie: $keyring is missing (apt-get install debian-archive-keyring)" >&2; exit 1; }

echo "deb [signed-by=$keyring] $mirror trixie main" >"$list"
mkdir -p "$lists/partial"
apt_opts=(-o "Dir::Etc::sourcelist=$list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$lists"
          -o "APT::Get::List-Cleanup=0")
apt-get "${apt_opts[@]}" update -qq
tmp=$(mktemp -d) && chmod 755 "$tmp"  # apt fetches as _apt
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root download restic >/dev/null)
rm -rf "$dest.new" && mkdir -p "$dest.new"
dpkg -x "$tmp"/restic_*.deb "$dest.new"
"$dest.new/usr/bin/restic" version | grep -q '^restic 0\.18\.' \
  || { echo "restic-trixie: trixie's restic is not 0.18: $("$dest.new/usr/bin/restic" version)" >&2; exit 1; }
rm -rf "$dest" && mv "$dest.new" "$dest"
