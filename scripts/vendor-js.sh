#!/usr/bin/env bash
# Copy the browser libraries pinned in package.json / package-lock.json into static/vendor/.
# The copies are committed, so `make run`, CI and production need no npm; run this only to
# update them (change the version in package.json, `npm install --package-lock-only`, then
# this script, then update static/vendor/README.md and commit all of it).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp "$root/package.json" "$root/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
modules="$work/node_modules"

fc="$root/static/vendor/fullcalendar"
chartjs="$root/static/vendor/chartjs"
rm -rf "$fc" "$chartjs"
mkdir -p "$fc" "$chartjs"

# FullCalendar 7 ships its script-tag build as the `fullcalendar` package: every view and the
# interaction plugin in all/global.js (window.FullCalendar, Temporal shim included), a theme
# as a plugin (themes/<name>/global.js) and its stylesheets.
cp "$modules/fullcalendar/all/global.js" "$fc/fullcalendar.global.js"
cp "$modules/fullcalendar/themes/classic/global.js" "$fc/theme-classic.global.js"
cp "$modules/fullcalendar/skeleton.css" "$fc/skeleton.css"
cp "$modules/fullcalendar/themes/classic/theme.css" "$fc/theme-classic.css"
cp "$modules/fullcalendar/themes/classic/palette.css" "$fc/palette-classic.css"
cp "$modules/fullcalendar/LICENSE.md" "$fc/LICENSE.md"

cp "$modules/chart.js/dist/chart.umd.min.js" "$chartjs/chart.umd.min.js"
# Its last line names the source map; collectstatic's manifest storage refuses a missing one.
cp "$modules/chart.js/dist/chart.umd.min.js.map" "$chartjs/chart.umd.min.js.map"
cp "$modules/chart.js/LICENSE.md" "$chartjs/LICENSE.md"

echo "fullcalendar $(node -p "require('$modules/fullcalendar/package.json').version")," \
  "chart.js $(node -p "require('$modules/chart.js/package.json').version") copied into static/vendor/"
