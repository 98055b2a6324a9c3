#!/usr/bin/env bash
# Re-vendor the charting library: bash scripts/vendor.sh
# Installs the pinned Chart.js from the npm registry into a temporary folder and copies its
# self-contained UMD build (and licence) into static/vendor/, which is committed: the app
# never loads anything from the internet, and neither a run nor the tests need npm.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CHARTJS_VERSION=4.6.1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund "chart.js@${CHARTJS_VERSION}" >/dev/null)
mkdir -p static/vendor
cp "$work/node_modules/chart.js/dist/chart.umd.min.js" static/vendor/chart.umd.min.js
cp "$work/node_modules/chart.js/LICENSE.md" static/vendor/chart.js.LICENSE.md
echo "vendored chart.js ${CHARTJS_VERSION} into static/vendor/"
