"""REDIS_URL set and Redis unreachable, or failing in the middle of a call: orders are still answered,
each placed once, and the caller of a journaled order gets its success answer; the rate limits count
in the process meanwhile; the cache works as without Redis (invalidations through the database) and
shares again once Redis is back.

The application runs in a child process (the rate limiter is one object per process, and the session's
application must keep its own storage); a Redis server of the test's own is killed, paused and
restarted (the machine's shared one on 6379 is never touched).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import select

from database import db
from database.apilog_db import ApiLog
from database.cache import TwoLevelCache
from database.order_db import Order
from tests.helpers.api import load_symbols, user_with_key
from tests.helpers.databases import app_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, without persistence: killed, paused
    (SIGSTOP: a Redis that hangs) and started again on the same port."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed: cannot run a Redis of the test's own")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                client.close()
                return self
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, and wait for it: the port refuses connections afterwards."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused one too
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.kill()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll until `condition()` holds; False if it still does not after `timeout` seconds (a generous bound:
    callers assert the condition, not the time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- the API, in a process of its own ---------------------------------------------------------------------
CHILD = r"""
import json, os, signal, sys, time
sys.path.insert(0, {root!r})
from flask import request
from app import create_app

spec = json.loads(sys.argv[1])
app = create_app(spec["overrides"])
victim = spec.get("kill")  # the pid of a Redis to kill once the first order is placed and answered
killed = []

@app.after_request  # registered last, so it runs first: before the rate limiter writes its headers
def kill_redis_after_the_view(response):
    if victim and not killed and request.path == "/api/v1/placeorder":
        os.kill(victim, signal.SIGKILL)
        killed.append(time.time())
        time.sleep(0.2)  # its port closes with it
    return response

client = app.test_client()
answers = []
for strategy in spec["strategies"]:
    body = dict(spec["order"], strategy=strategy)
    resp = client.post("/api/v1/placeorder", json=body)
    answers.append({{"strategy": strategy, "status": resp.status_code, "body": resp.get_json(silent=True)}})
app.extensions["algobridge.writer"].shutdown(timeout=30)  # every api_logs row written
app.extensions["algobridge.cache"].stop()
print(json.dumps(answers), flush=True)
"""


def run_api(app, instance: str, redis_url: str, key: str, strategies: list[str], *, kill: int | None = None,
            **config: str) -> tuple[list[dict], str]:
    """Place one order per strategy name through a child process's application: its answers, and what it
    wrote to stderr (its log)."""
    overrides = app_overrides(app.config["DATABASE_URL"], instance, REDIS_URL=redis_url, **config)
    spec = {"overrides": overrides, "kill": kill, "strategies": strategies,
            "order": {"apikey": key, "exchange": "NSE", "symbol": "INFY", "action": "BUY", "quantity": "1",
                      "pricetype": "MARKET", "product": "MIS"}}
    done = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT), json.dumps(spec)], cwd=ROOT,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def journal() -> dict[str, list[str]]:
    """strategy -> the order ids journaled under it."""
    db.session.rollback()
    found: dict[str, list[str]] = {}
    for strategy, orderid in db.session.execute(select(Order.strategy, Order.orderid)):
        found.setdefault(strategy, []).append(orderid)
    return found


def logged() -> list[tuple[int, str | None]]:
    db.session.rollback()
    rows = db.session.scalars(select(ApiLog).where(ApiLog.api_type == "placeorder").order_by(ApiLog.id))
    return [(row.status_code, (row.response or {}).get("orderid")) for row in rows]


@pytest.fixture
def key(app):
    load_symbols()
    return user_with_key("alice")[2]


def test_redis_unreachable_orders_are_placed_once_and_limited_in_process(app, key, tmp_path):
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    answers, log = run_api(app, str(tmp_path / "instance"), closed, key, ["s1", "s2", "s3"],
                           ORDER_RATE_LIMIT="2 per hour")
    assert [a["status"] for a in answers] == [200, 200, 429], answers
    assert "Traceback" not in log, log[-4000:]
    placed = {a["strategy"]: a["body"]["orderid"] for a in answers if a["status"] == 200}
    assert journal() == {strategy: [orderid] for strategy, orderid in placed.items()}  # once each; s3 nowhere
    assert logged() == [(200, placed["s1"]), (200, placed["s2"]), (429, None)]


def test_redis_dying_after_the_order_is_placed_leaves_its_success_answer(app, key, tmp_path, private_redis):
    # The first order passes the limit in Redis; Redis dies before the limiter's after-request reads it
    # again for the headers. The order is journaled: its caller gets the success answer. The next orders
    # are counted in the process (3 per hour: the fourth after the death is refused).
    strategies = ["first", "s2", "s3", "s4", "s5"]
    answers, log = run_api(app, str(tmp_path / "instance"), private_redis.url, key, strategies,
                           kill=private_redis.proc.pid, ORDER_RATE_LIMIT="3 per hour")
    assert [a["status"] for a in answers] == [200, 200, 200, 200, 429], answers
    assert "Traceback" not in log, log[-4000:]
    assert answers[0]["body"] == {"status": "success", "orderid": answers[0]["body"]["orderid"], "mode": "analyze"}
    placed = {a["strategy"]: a["body"]["orderid"] for a in answers if a["status"] == 200}
    assert journal() == {strategy: [orderid] for strategy, orderid in placed.items()}
    assert [status for status, _ in logged()] == [200, 200, 200, 200, 429]


# -- the cache -----------------------------------------------------------------------------------------------
@pytest.fixture
def two_processes(app, private_redis) -> Iterator[tuple[TwoLevelCache, TwoLevelCache]]:
    """Two processes' caches on one database and one Redis, their listeners started."""
    caches = [TwoLevelCache(db.engine, redis_url=private_redis.url, poll_interval=0.05) for _ in range(2)]
    for c in caches:
        c.start()
    yield caches[0], caches[1]
    for c in caches:
        c.stop()


def test_the_cache_invalidates_through_the_database_while_redis_is_down_and_shares_again_after(
        private_redis, two_processes):
    a, b = two_processes
    shared = private_redis.client()
    b.set("outage", "before", "v")
    assert shared.exists("algobridge:cache:outage:before")
    private_redis.kill()
    assert wait_until(lambda: a.redis_down and b.redis_down)
    b.set("outage", "k1", "old")  # in b's process only now
    b.set("outage", "k2", "old")
    assert b.get("outage", "k1") == "old"
    a.invalidate("outage", "k1")  # a change by a's process, not tied to a session
    a.committed("outage", "k2", None)  # a unit's commit announced without a counter bump (Redis was up then)
    assert wait_until(lambda: b.get("outage", "k1") is None and b.get("outage", "k2") is None)

    private_redis.start()  # empty, on the same port
    shared = private_redis.client()
    assert wait_until(lambda: not a.redis_down and not b.redis_down)
    b.set("outage", "k3", "new")
    assert shared.exists("algobridge:cache:outage:k3")  # shared through Redis again
    a.invalidate("outage", "k3")
    assert wait_until(lambda: b.get("outage", "k3") is None)
    assert not shared.exists("algobridge:cache:outage:k3")


def test_a_hung_redis_is_noticed_and_the_entries_changed_meanwhile_are_not_served_after(app, private_redis,
                                                                                        two_processes):
    a, b = two_processes
    b.set("outage", "k", "old")  # here and in Redis
    private_redis.pause()  # accepts connections, answers nothing: the listeners' pings time out
    assert wait_until(lambda: a.redis_down and b.redis_down)
    a.invalidate("outage", "k")  # Redis cannot be told: the database counter
    assert wait_until(lambda: b.get("outage", "k") is None)
    private_redis.resume()  # with the old entry still in it
    assert wait_until(lambda: not a.redis_down and not b.redis_down)
    newcomer = TwoLevelCache(db.engine, redis_url=private_redis.url)  # a process started now reads Redis
    assert newcomer.get("outage", "k") is None


def test_a_failing_local_update_drops_the_entry_instead_of_raising(app):
    cache = TwoLevelCache(db.engine)
    cache.set("outage", "k", {"v": 1})

    def broken(entry):
        return entry["missing"]

    cache.update_local("outage", "k", broken)
    assert cache.get("outage", "k") is None


def test_health_reports_redis_down_as_degraded_not_failing(app, client, private_redis, monkeypatch):
    # The API keeps serving without Redis: /health must not take the instance out of rotation for it.
    shared = TwoLevelCache(db.engine, redis_url=private_redis.url)
    monkeypatch.setitem(app.extensions, "algobridge.cache", shared)
    up = client.get("/health").get_json()
    assert up["checks"]["redis"] == {"ok": True, "configured": True}
    assert "degraded" not in up
    private_redis.kill()
    resp = client.get("/health")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["status"] == "ok"
    assert body["degraded"] == ["redis"]
    assert body["checks"]["redis"]["degraded"] is True
