#!/usr/bin/env bash
# Unpack Debian 13 "trixie"'s restic (0.18: a static binary that needs only libc) under DEST, as
# DEST/usr/bin/restic, with scripts/trixie-unpack.sh (nothing of trixie is installed through apt).
# Debian 12 ships 0.14, which lacks forget's "oldest snapshot" rule and the JSON the backups app
# reads (backups/checks.py warns about it). Used by the image build (Dockerfile) and
# scripts/test-setup.sh.
set -euo pipefail

dest=${1:?usage: scripts/restic-trixie.sh DEST}
"$(dirname "$0")/trixie-unpack.sh" restic "$dest.new"
"$dest.new/usr/bin/restic" version | grep -q '^restic 0\.18\.' \
  || { echo "restic-trixie: trixie's restic is not 0.18: $("$dest.new/usr/bin/restic" version)" >&2; exit 1; }
rm -rf "$dest" && mv "$dest.new" "$dest"
