"""The feed as a child process of the web server: `python app.py` and gunicorn start it with their master
and stop it with it (gunicorn.conf.py's on_starting and on_exit hooks).

Spawning is all `start` does (no wait for the child to listen), so the web server starts as fast as
without it; a feed that cannot start (its port taken) logs why and leaves the web server serving. With
WEBSOCKET_WITH_WEB=false the feed runs on its own (deploy/systemd/algobridge-feed.service) and these do
nothing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("algobridge.feed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STOP_TIMEOUT = 10.0


def start(settings: Mapping[str, Any]) -> subprocess.Popen | None:
    """Spawn `python -m feed` (config.server_settings() says whether and where); its handle, or None."""
    if not settings.get("WEBSOCKET_WITH_WEB", True):
        return None
    handle = subprocess.Popen([sys.executable, "-m", "feed"], cwd=ROOT, stdin=subprocess.DEVNULL)  # noqa: S603
    log.info("feed started (pid %s) on ws://%s:%s", handle.pid, settings.get("WEBSOCKET_HOST"),
             settings.get("WEBSOCKET_PORT"))
    return handle


def stop(handle: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT seconds."""
    if handle is None or handle.poll() is not None:
        return
    handle.terminate()
    try:
        handle.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        handle.kill()
        handle.wait(STOP_TIMEOUT)
