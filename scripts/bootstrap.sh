#!/usr/bin/env bash
# Create/refresh the project virtualenv (.venv at the repo root).
#   bash scripts/bootstrap.sh          runtime requirements (requirements.txt)
#   bash scripts/bootstrap.sh --dev    dev/test requirements (requirements-dev.txt)
# The pip install is skipped when .venv/.requirements-<sha256> shows that the
# same requirements files were already installed, so a second run is instant.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { echo "usage: $0 [--dev]" >&2; exit 2; }

mode=runtime
case "$#:${1:-}" in
    0:) ;;
    1:--dev) mode=dev ;;
    *) usage ;;
esac

PYTHON=${PYTHON:-python3}
VENV=.venv

# Fingerprint of a set of requirements files (names + contents).
req_hash() { sha256sum "$@" | sha256sum | cut -c1-64; }

runtime_files=(requirements.txt)
if [ "$mode" = dev ]; then
    files=(requirements-dev.txt requirements.txt)
    req=requirements-dev.txt
else
    files=("${runtime_files[@]}")
    req=requirements.txt
fi
for f in "${files[@]}"; do
    [ -f "$f" ] || { echo "bootstrap: missing $f" >&2; exit 1; }
done
stamp="$VENV/.requirements-$(req_hash "${files[@]}")"

venv_ok() {
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/pip" ] && "$VENV/bin/python" -c '' 2>/dev/null
}

# Fast path: healthy venv with the same requirements already installed.
if [ -f "$stamp" ] && venv_ok; then
    exit 0
fi

# Serialise concurrent bootstraps (e.g. several test runs started at once).
# The lock is held on requirements.txt itself, so nothing extra is created and
# `venv --clear` can't pull it away.
if command -v flock >/dev/null 2>&1; then
    exec 9<requirements.txt
    flock 9
    # Someone else may have finished the job while we waited.
    if [ -f "$stamp" ] && venv_ok; then
        exit 0
    fi
fi

if ! venv_ok; then
    echo "bootstrap: creating $VENV with $("$PYTHON" --version 2>&1)"
    if ! "$PYTHON" -m venv --clear "$VENV"; then
        # Debian's python3 needs python3-venv (ensurepip) for `-m venv`.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "bootstrap: python3 -m venv failed; installing python3-venv" >&2
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$PYTHON" -m venv --clear "$VENV"
        else
            echo "bootstrap: '$PYTHON -m venv' failed (install python3-venv?)" >&2
            exit 1
        fi
    fi
fi

echo "bootstrap: installing $req into $VENV"
# Old stamps describe what used to be installed; drop them before changing it.
rm -f "$VENV"/.requirements-*
# BOOTSTRAP_PIP_FLAGS: pip's verbosity (scripts/run.sh shows its progress; quiet by default).
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install ${BOOTSTRAP_PIP_FLAGS--qq} --disable-pip-version-check --no-input -r "$req"
touch "$stamp"
# requirements-dev.txt pulls in requirements.txt, so the runtime set is installed too.
if [ "$mode" = dev ] && grep -Eq '^[[:space:]]*(-r|--requirement)[[:space:]=]+requirements\.txt[[:space:]]*$' requirements-dev.txt; then
    touch "$VENV/.requirements-$(req_hash "${runtime_files[@]}")"
fi
echo "bootstrap: done"
