#!/usr/bin/env bash
# The one run command: bash scripts/run.sh [app.py args...]
# Installs runtime requirements into .venv (pip's progress shown: the first run downloads for a minute or
# two), then starts the app (app.py migrates the SQLite database and serves on 127.0.0.1:5000). Its last
# line says what to open: the address, and /setup on a fresh install.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "run: checking the Python environment (.venv)"
BOOTSTRAP_PIP_FLAGS="--progress-bar on" bash scripts/bootstrap.sh
echo "run: starting Algobridge (first start: the database is created and migrated)"
exec .venv/bin/python app.py "$@"
