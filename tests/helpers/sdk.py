"""The `openalgo` SDK, unchanged, against the app on a real local port."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import openalgo
import pytest
from werkzeug.serving import make_server

from tests.helpers.api import load_symbols, raise_limits, user_with_key


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """The app served on a free local port (threaded) while the block runs: its base URL."""
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, name="sdk-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(timeout=10)
        srv.server_close()


@pytest.fixture
def server(app, monkeypatch) -> Iterator[str]:
    """The app on a real port, with the sample contract loaded and high rate limits."""
    raise_limits(app, monkeypatch)
    load_symbols()
    with serving(app) as url:
        yield url


def sdk_client(server: str, username: str = "sdkuser"):
    """(user, SDK client) for a new user with a key of every scope."""
    user, _row, key = user_with_key(username)
    return user, openalgo.api(api_key=key, host=server, timeout=30)


def ok(resp: dict) -> dict:
    assert resp.get("status") == "success", resp
    return resp
