"""A real feed server (feed.server.FeedServer) on a free local port, in a thread of the test process,
reading the test's database."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from feed.server import FeedServer
from tests.helpers.orders import contract, users  # noqa: F401 - fixtures

WAIT = 20.0  # seconds a test waits for something that must happen (a bound, not a measurement)


def wait_for(condition: Callable[[], object], what: str, limit: float = WAIT) -> object:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@contextlib.contextmanager
def running_feed(app, **kwargs) -> Iterator[FeedServer]:
    kwargs.setdefault("tick_interval", 0.2)
    server = FeedServer(app, host="127.0.0.1", port=0, **kwargs)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def main() -> None:
        try:
            loop.run_until_complete(server.serve(stop))
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failure.append(exc)

    thread = threading.Thread(target=main, name="feed-test-server", daemon=True)
    thread.start()
    wait_for(lambda: server.port_bound or failure, "the feed listening")
    assert not failure, failure
    server.url = f"ws://127.0.0.1:{server.port_bound}"
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        loop.close()


@pytest.fixture
def feed(app, contract):  # noqa: F811 - the fixture imported above
    with running_feed(app) as server:
        yield server
