"""feed.process: the web server's hooks spawn `python -m feed` as a child and stop it."""

from __future__ import annotations

import json
import socket

import pytest
from websockets.sync.client import connect

import config
from feed import process
from tests.feed.conftest import wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with connect(url, open_timeout=2) as ws:
            ws.send(json.dumps({"action": "authenticate", "api_key": "not a key"}))
            return json.loads(ws.recv(timeout=10))["code"] == "AUTHENTICATION_ERROR"
    except OSError:
        return False


def test_start_spawns_the_feed_and_stop_ends_it(tmp_path, monkeypatch):
    port = _free_port()
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("WEBSOCKET_PORT", str(port))
    monkeypatch.setenv("WEBSOCKET_WITH_WEB", "true")  # the suite turns it off for the servers it starts
    settings = config.server_settings()
    handle = process.start(settings)
    try:
        wait_for(lambda: _answers(f"ws://127.0.0.1:{port}"), "the child feed answering", limit=120)
    finally:
        process.stop(handle)
    assert handle.returncode is not None
    assert process.start({**settings, "WEBSOCKET_WITH_WEB": False}) is None
