#!/usr/bin/env bash
# The one test command: bash scripts/test.sh [pytest args...]
# Installs dev requirements into .venv, makes sure PostgreSQL and Redis are up,
# then runs pytest (configured in pyproject.toml) from the repo root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh --dev
bash scripts/services.sh

# Browser (end-to-end) tests need Debian's Chromium and ChromeDriver: installed in CI (CI=true), or on
# request (ALGOBRIDGE_BROWSER_TESTS=1); elsewhere tests/browser is skipped when chromium is missing.
if { [ "${CI:-}" = true ] || [ "${ALGOBRIDGE_BROWSER_TESTS:-0}" = 1 ]; } \
        && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then
    [ "$(id -u)" = 0 ] || { echo "test: must be root to install chromium" >&2; exit 1; }
    echo "test: installing chromium and chromium-driver"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

exec .venv/bin/python -m pytest "$@"
