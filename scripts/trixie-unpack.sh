#!/usr/bin/env bash
# Unpack one package of Debian 13 "trixie" under DEST (dpkg -x), installing nothing (restic for
# the image and the tests, docker-compose for the tests). Its source list and package lists
# are kept apart from the system's (the system's apt never sees trixie); apt checks the .deb
# against trixie's signed Release with the system's debian-archive-keyring. The Debian mirror
# is the one this system already uses, else deb.debian.org.
#   scripts/trixie-unpack.sh docker-compose /usr/local/lib/portal-test/compose
set -euo pipefail

package=${1:?usage: scripts/trixie-unpack.sh PACKAGE DEST}
dest=${2:?usage: scripts/trixie-unpack.sh PACKAGE DEST}
[[ $package =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || { echo "trixie-unpack: bad package name $package" >&2; exit 2; }
list=/etc/apt/portal-trixie.list
lists=/var/lib/apt/portal-trixie-lists
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
           | awk '/^URIs:/ {print $2}' | grep -v -e security -e '^$' | grep -m1 /debian || true)
[ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
           | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' | grep -v security \
           | grep -m1 /debian || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
[ -f "$keyring" ] || { echo "trixie-unpack: $keyring is missing (apt-get install debian-archive-keyring)" >&2; exit 1; }

echo "deb [signed-by=$keyring] $mirror trixie main" >"$list"
mkdir -p "$lists/partial"
apt_opts=(-o "Dir::Etc::sourcelist=$list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$lists"
          -o "APT::Get::List-Cleanup=0")
apt-get "${apt_opts[@]}" update -qq
tmp=$(mktemp -d) && chmod 755 "$tmp"  # apt fetches as _apt
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root download "$package" >/dev/null)
rm -rf "$dest.new" && mkdir -p "$dest.new"
dpkg -x "$tmp"/"${package}"_*.deb "$dest.new"
rm -rf "$dest" && mv "$dest.new" "$dest"
