#!/usr/bin/env bash
# Create .venv with the given requirements file. On a fresh Debian/Ubuntu, python3-venv may be
# missing: install it when we are root, otherwise say exactly what to run.
set -euo pipefail
python=${1:-python3}
requirements=${2:-requirements.txt}
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev
  else
    echo "Python's venv module is missing: run 'sudo apt-get install python3-venv' and try again." >&2
    exit 1
  fi
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
