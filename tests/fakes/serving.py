"""Serving a fake broker (or bot API) on 127.0.0.1 in a background thread, for tests that talk HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from werkzeug.serving import WSGIRequestHandler, make_server

Server = TypeVar("Server")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class ServerThread:
    """A socketserver server's serve_forever in a daemon thread. A short poll interval: shutdown()
    waits for it, once per test."""

    def __init__(self, server: Any, *, name: str | None = None, poll_interval: float = 0.02):
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serving(server: Any, *, name: str | None = None, poll_interval: float = 0.02) -> Iterator[Any]:
    """Serve `server` (a socketserver server) in a background thread for the duration of the block."""
    thread = ServerThread(server, name=name, poll_interval=poll_interval)
    thread.start()
    try:
        yield server
    finally:
        thread.stop()


class RunningFake:
    """A WSGI fake (`fake`) served on 127.0.0.1 on a free port, in a background thread; `url` is its root."""

    def __init__(self, fake: Any):
        self.fake = fake
        self._server = make_server("127.0.0.1", 0, fake, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = ServerThread(self._server)

    def start(self):  # -> Self
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """Start a RunningFake, yield it, and stop it when the block ends."""
    server.start()  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()  # type: ignore[attr-defined]
