#!/usr/bin/env bash
# Vendor the console's front-end libraries into web/console/static/vendor/ (committed, so the
# console works offline and needs no build step): htmx and Chart.js, at the pinned versions
# below, fetched from the npm registry into a temporary directory. Copies each library's
# minified file and its licence, and records the versions in vendor/VERSIONS.
# Run it again after changing a version; it changes only web/console/static/vendor/.
set -euo pipefail

HTMX_VERSION=2.0.11
CHARTJS_VERSION=4.6.2

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/web/console/static/vendor"
command -v npm >/dev/null 2>&1 || { echo "vendor_assets: npm is required (apt-get install npm)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "vendor_assets: fetching htmx.org@$HTMX_VERSION and chart.js@$CHARTJS_VERSION from npm"
npm pack --silent "htmx.org@$HTMX_VERSION" "chart.js@$CHARTJS_VERSION" >/dev/null
mkdir htmx chartjs
tar -xzf "htmx.org-$HTMX_VERSION.tgz" -C htmx
tar -xzf "chart.js-$CHARTJS_VERSION.tgz" -C chartjs

mkdir -p "$dest"
cp htmx/package/dist/htmx.min.js "$dest/htmx.min.js"
cp htmx/package/LICENSE "$dest/htmx.LICENSE"
cp chartjs/package/dist/chart.umd.min.js "$dest/chart.umd.min.js"
cp chartjs/package/LICENSE.md "$dest/chart.js.LICENSE.md"
cat > "$dest/VERSIONS" <<VERSIONS
# Vendored by scripts/vendor_assets.sh from the npm registry; do not edit by hand.
htmx.org $HTMX_VERSION dist/htmx.min.js (BSD Zero Clause, htmx.LICENSE)
chart.js $CHARTJS_VERSION dist/chart.umd.min.js (MIT, chart.js.LICENSE.md)
VERSIONS
(cd "$dest" && sha256sum htmx.min.js chart.umd.min.js >> VERSIONS)
echo "vendor_assets: updated $dest"
