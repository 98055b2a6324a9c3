#!/usr/bin/env bash
# The one run command: bash scripts/run.sh [app.py args...]
# Installs runtime requirements into .venv, then starts the app
# (app.py migrates the SQLite database and serves on 127.0.0.1:5000).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh
exec .venv/bin/python app.py "$@"
