"""Headless-browser tests: Debian's chromium, started with the team's flags; CI must have it (bootstrap installs it),
elsewhere a test module without it is skipped."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_chromium() -> None:
    """Skip the calling module when chromium is missing outside CI (in CI a missing browser fails)."""
    if not IN_CI and not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; CI installs it)", allow_module_level=True)


ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_until(ready: Callable[[], bool], what: str, proc: subprocess.Popen, log_path: Path,
               seconds: float = 45) -> None:
    """Wait for `ready()`, failing the test with the end of the log if `proc` exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"{what} exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start in {seconds:.0f} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`python <args>` in the project's folder, its output in `log_path`."""
    with open(log_path, "wb") as out:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env,  # noqa: S603
                                stdout=out, stderr=subprocess.STDOUT)


def web_ready(base: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return requests.get(f"{base}/health", timeout=2).status_code in (200, 503)
        except requests.ConnectionError:
            return False

    return ready


@contextmanager
def web_server(tmp_path: Path, **settings: str) -> Iterator[tuple[str, dict[str, str]]]:
    """`python app.py` (gunicorn, the embedded SQLite default) on a free port, on a fresh instance in
    `tmp_path`, with `settings` added to its environment; yields (base URL, the environment)."""
    instance = tmp_path / "instance"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update({
        "INSTANCE_PATH": str(instance), "DATABASE_URL": f"sqlite:///{instance / 'algobridge.db'}",
        "AUTO_MIGRATE": "true", "SAMPLE_CONTRACT": "true", "REDIS_URL": "",
        "ANALYZE_MARKET_HOURS": "always",  # orders fill, and ticks come, at any hour
        "HOST": "127.0.0.1", "PORT": str(port), "WEB_WORKERS": "1", "WEB_THREADS": "4", "LOG_LEVEL": "WARNING",
        "SECRET_KEY": secrets.token_urlsafe(48), "API_KEY_PEPPER": secrets.token_urlsafe(48),
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        **settings,
    })
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "web.log"
    proc = start(["app.py"], env, log_path)
    try:
        wait_until(web_ready(base), "the web server", proc, log_path)
        yield base, env
    finally:
        stop(proc)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless chromium through Playwright, closed after the block (a missing one fails in CI)."""
    if IN_CI and not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing in CI: scripts/test.sh should have installed it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
