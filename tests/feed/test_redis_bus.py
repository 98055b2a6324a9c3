"""Two feed servers sharing one Redis (feed.bus.RedisBus): every client of either gets the ticks, one server
streams each instrument upstream, the other takes the upstream over when the holder stops or freezes, and
the upstream ends when the last client anywhere leaves.

The Redis is the test's own (a `redis-server` on a free port, nothing saved), never the shared one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time

import openalgo
import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from feed.bus import LEASE_MS, PREFIX
from feed.server import FeedServer
from tests.feed.conftest import WAIT, wait_for
from tests.helpers.api import user_with_key

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")]

INFY = [{"exchange": "NSE", "symbol": "INFY"}]
KEY = ("analyze", "INFY", "NSE")
LEASE = f"{PREFIX}lease:analyze:NSE:INFY"
CHANNEL = f"{PREFIX}tick:analyze:NSE:INFY"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url():
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",  # noqa: S603, S607
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url, socket_connect_timeout=1)

    def answers() -> bool:
        try:
            return bool(probe.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, "the test's redis-server answering")
        yield url
    finally:
        probe.close()
        proc.terminate()
        proc.wait(10)


class Feed:
    """A FeedServer on its own loop in a thread; `freeze` stops the loop dead (a hung or paused process:
    nothing is cleaned up, the lease is not renewed), `stop` ends it as SIGTERM does."""

    def __init__(self, app, redis_url: str, name: str) -> None:
        self.server = FeedServer(app, host="127.0.0.1", port=0, tick_interval=0.2, redis_url=redis_url)
        self.loop = asyncio.new_event_loop()
        self.stopping = asyncio.Event()
        self.name = name
        self.failure: list[BaseException] = []
        self.thread: threading.Thread | None = None
        self.task = self.loop.create_task(self.server.serve(self.stopping))
        self._start(lambda: self.loop.run_until_complete(self.task))
        wait_for(lambda: self.server.ready.is_set() or self.failure, f"{name} listening")
        assert not self.failure, self.failure
        self.url = f"ws://127.0.0.1:{self.server.port_bound}"

    def _start(self, body) -> None:
        def main() -> None:
            try:
                body()
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                self.failure.append(exc)

        self.thread = threading.Thread(target=main, name=f"feed-{self.name}", daemon=True)
        self.thread.start()

    @property
    def published(self) -> int:
        return self.server.published[KEY]

    def holds(self) -> bool:
        return KEY in self.server.bus.held

    def freeze(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(15)
        assert not self.thread.is_alive()
        self.failure.clear()  # run_until_complete complains that the loop stopped early: that was the point

    def resume(self) -> None:
        self._start(lambda: self.loop.run_until_complete(self.task))

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        if not self.thread.is_alive():  # frozen and never resumed
            self.resume()
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), f"{self.name} never stopped"
        assert not self.failure, self.failure
        self.loop.close()


@pytest.fixture
def feeds(app, contract, redis_url):
    started: list[Feed] = []
    try:
        started += [Feed(app, redis_url, "a"), Feed(app, redis_url, "b")]
        yield started
    finally:
        for feed in started:
            feed.stop()


class Listener:
    """An SDK client subscribed to INFY's LTP on one feed, counting the ticks it gets."""

    def __init__(self, feed: Feed, key: str) -> None:
        self.ticks: list[dict] = []
        self.sdk = openalgo.api(api_key=key, host="http://127.0.0.1:1", ws_url=feed.url)
        assert self.sdk.connect() is True
        assert self.sdk.subscribe_ltp(INFY, on_data_received=self.ticks.append)

    def more(self, n: int = 3) -> None:
        """Wait until `n` more ticks arrive."""
        seen = len(self.ticks)
        wait_for(lambda: len(self.ticks) >= seen + n, f"{n} more ticks")

    def close(self) -> None:
        self.sdk.disconnect()


class RawListener(Listener):
    """The same with a plain websockets client, which closes its socket when the server goes away (the SDK's
    client leaves it open, which the suite's warnings-as-errors would blame on a later test)."""

    def __init__(self, feed: Feed, key: str) -> None:
        self.ticks = []
        self.ws = connect(feed.url)
        self.ws.send(json.dumps({"action": "authenticate", "api_key": key}))
        assert json.loads(self.ws.recv(timeout=WAIT))["status"] == "success"
        self.ws.send(json.dumps({"action": "subscribe", "mode": 1, "symbols": INFY}))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            for raw in self.ws:
                if (msg := json.loads(raw))["type"] == "market_data":
                    self.ticks.append(msg)

    def close(self) -> None:
        self.ws.close()
        self.reader.join(WAIT)


def _lease(url: str) -> tuple[bytes | None, int]:
    with redis.Redis.from_url(url) as r:
        return r.get(LEASE), r.pttl(LEASE)


def _subscribers(url: str) -> int:
    with redis.Redis.from_url(url) as r:
        return dict(r.pubsub_numsub(CHANNEL))[CHANNEL.encode()]


def _holder(a: Feed, b: Feed) -> tuple[Feed, Feed]:
    """(the feed streaming INFY upstream, the other), after checking only one streams it."""
    holder = wait_for(lambda: [f for f in (a, b) if f.holds()], "a holder of the upstream")
    assert len(holder) == 1
    holder, other = (a, b) if holder[0] is a else (b, a)
    return holder, other


def _only_one_streams(holder: Feed, other: Feed, *listeners: Listener) -> None:
    before = holder.published, other.published
    for listener in listeners:
        listener.more(5)
    assert holder.published > before[0]
    assert other.published == before[1]


def test_clients_of_both_feeds_get_the_ticks_of_one_upstream(feeds, redis_url):
    a, b = feeds
    _user, _row, key = user_with_key("twofeeds")
    on_a, on_b = Listener(a, key), Listener(b, key)
    on_a.more(), on_b.more()
    holder, other = _holder(a, b)
    _only_one_streams(holder, other, on_a, on_b)
    assert other.published == 0
    assert not other.server.simulator.infos  # the other's simulator was never asked for INFY
    assert _lease(redis_url)[0] == holder.server.bus.me.encode()
    assert 0 < _lease(redis_url)[1] <= LEASE_MS
    # the same tick reached both: one upstream, two deliveries
    assert {t["data"]["timestamp"] for t in on_a.ticks} & {t["data"]["timestamp"] for t in on_b.ticks}

    # the holder's client leaves: the other feed, which still has a client, takes the upstream
    mine, theirs = (on_a, on_b) if holder is a else (on_b, on_a)
    assert mine.sdk.unsubscribe_ltp(INFY)
    wait_for(other.holds, "the other feed taking the upstream over")
    assert not holder.holds()
    assert not holder.server.simulator.infos
    _only_one_streams(other, holder, theirs)

    # the last client anywhere leaves: no upstream, no lease, nobody on the channel
    assert theirs.sdk.unsubscribe_ltp(INFY)
    wait_for(lambda: not other.server.simulator.infos, "the upstream dropped")
    assert not a.holds()
    assert not b.holds()
    assert _lease(redis_url) == (None, -2)
    wait_for(lambda: _subscribers(redis_url) == 0, "nobody listening on the channel")
    counts = a.published, b.published
    time.sleep(1.0)  # five tick intervals: a leftover upstream would tick meanwhile
    assert (a.published, b.published) == counts
    for listener in (on_a, on_b):
        listener.close()


def test_when_the_holder_stops_the_other_feed_takes_over(feeds, redis_url):
    a, b = feeds
    _user, _row, key = user_with_key("failover")
    on_a, on_b = RawListener(a, key), RawListener(b, key)
    holder, other = _holder(a, b)
    survivor = on_b if other is b else on_a
    survivor.more()
    holder.stop()
    # a clean stop gives the lease back at once, so the takeover waits for no expiry
    assert _lease(redis_url)[0] in (None, other.server.bus.me.encode())
    wait_for(other.holds, "the surviving feed taking the upstream over")
    assert _lease(redis_url)[0] == other.server.bus.me.encode()
    before = other.published
    survivor.more(5)
    assert other.published > before
    for listener in (on_a, on_b):
        listener.close()


def test_when_the_holder_freezes_its_lease_expires_and_the_other_takes_over(feeds, redis_url):
    a, b = feeds
    _user, _row, key = user_with_key("frozen")
    on_a, on_b = RawListener(a, key), RawListener(b, key)
    holder, other = _holder(a, b)
    survivor = on_b if other is b else on_a
    survivor.more()
    holder.freeze()
    owner, ttl = _lease(redis_url)
    if owner == holder.server.bus.me.encode():  # not yet expired: it will within the lease, unrenewed
        assert 0 < ttl <= LEASE_MS
    wait_for(lambda: _lease(redis_url)[0] == other.server.bus.me.encode(), "the lease passing to the other feed")
    wait_for(lambda: other.published > 0, "the other feed streaming")
    survivor.more(5)

    # the frozen feed wakes up: it finds the lease gone and stops its own upstream
    holder.resume()
    wait_for(lambda: not holder.holds(), "the woken feed giving up the upstream it lost")
    assert not holder.server.simulator.infos
    _only_one_streams(other, holder, survivor)
    for listener in (on_a, on_b):
        listener.close()
