"""Headless-browser tests: Debian's chromium, started with the team's flags; CI must have it (bootstrap installs it),
elsewhere a test module without it is skipped."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_chromium() -> None:
    """Skip the calling module when chromium is missing outside CI (in CI a missing browser fails)."""
    if not IN_CI and not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; CI installs it)", allow_module_level=True)
