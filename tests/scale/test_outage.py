"""PostgreSQL restarts, and Redis dies, while 4 gunicorn workers take orders.

A PostgreSQL cluster of the test's own (the shared one is never restarted) is stopped (fast mode:
every connection is cut), kept down for a few seconds, and started again, while client threads
place analyze-mode orders. Then:
  - during the outage every call is answered, promptly, with the 503 JSON error, never a hang, a
    500 or a traceback;
  - once the database is back, service resumes by itself within 5 s (the pool pre-pings and drops
    dead connections): the recovery time is measured and printed;
  - every order answered 200 is in the journal;
  - every answered call has its API-log row once the server has stopped (the log writer retried
    through the outage and flushed at SIGTERM).

A Redis server of the test's own (REDIS_URL; the shared one on 6379 is never stopped) is killed while
client threads place orders, each with a strategy name of its own, and started again: every call is
answered 200 (the limits count in each process meanwhile, the cache works as without Redis), every
answered order is journaled once, no order is journaled whose caller got anything else, every call
is logged; once Redis is back the limiter and the cache use it again. The counts are printed.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
import requests

from tests.blueprints.api_v1.test_redis_down import PrivateRedis
from tests.scale.conftest import DB_UNAVAILABLE, Answer, api_call, order_body, query, seed, server_env

pytestmark = pytest.mark.slow

CLIENTS = 8
CLIENT_TIMEOUT = 10.0  # seconds: a call not answered by then counts as a hang
DOWN_FOR = 3.0
RECOVERY_LIMIT = 5.0


def test_postgres_restart_under_load(private_postgres, redis_url, start_server, tmp_path):
    url = private_postgres.create_database("algobridge_outage")
    server = start_server(server_env(url, str(tmp_path / "instance"), redis_url=redis_url))
    key = seed(server.env, {"users": [{"name": "trader"}]})["trader"]["keys"][0]["key"]
    server.wait_for_symbols(key)
    with requests.Session() as session:  # the position exists before the load
        assert api_call(session, server.base, "placeorder", order_body(key)).status == 200

    answers: list[Answer] = []
    lock = threading.Lock()
    done = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not done.is_set():
                answer = api_call(session, server.base, "placeorder", order_body(key), timeout=CLIENT_TIMEOUT)
                with lock:
                    answers.append(answer)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 20
        while len(answers) < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        down_at = time.monotonic()
        private_postgres.stop("fast")
        time.sleep(DOWN_FOR)
        start_at = time.monotonic()
        private_postgres.start()  # returns once it accepts connections
        up_at = time.monotonic()
        time.sleep(RECOVERY_LIMIT + 3)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=CLIENT_TIMEOUT + 5)
    assert server.stop(signal.SIGTERM) == 0, server.log()

    unanswered = [a for a in answers if a.status is None]
    assert not unanswered, f"{len(unanswered)} calls without an answer, e.g. {unanswered[0].error}"
    failed = [a for a in answers if a.status != 200]
    assert failed, "no call saw the outage: the test did not test anything"
    wrong = [a for a in failed if a.status != 503 or a.body != DB_UNAVAILABLE]
    assert not wrong, f"{len(wrong)} calls failed otherwise than with the 503 JSON error, e.g. {wrong[:3]}"
    assert "Traceback" not in server.log()

    last_failure = max(failed, key=lambda a: a.sent)
    resumed = [a for a in answers if a.status == 200 and a.sent > last_failure.sent]
    assert len(resumed) >= 10, "service did not resume after the database came back"
    recovery = max(0.0, min(a.done for a in resumed) - up_at)
    slowest = max(a.done - a.sent for a in answers if down_at <= a.sent <= up_at)
    print(f"\nPostgreSQL down {up_at - down_at:.1f} s (its own start took {up_at - start_at:.1f} s): "
          f"{len(answers)} calls, {len(failed)} answered 503 (slowest answer during the outage {slowest:.2f} s); "
          f"service resumed {recovery:.2f} s after the database accepted connections again")
    assert recovery <= RECOVERY_LIMIT

    ok_ids = {a.body["orderid"] for a in answers if a.status == 200}
    journal = {row[0] for row in query(url, "SELECT orderid FROM orders")}
    missing = ok_ids - journal
    assert not missing, f"{len(missing)} orders answered 200 are not in the journal"

    # Every answered call was logged, the 503s included; each 200 with its order id.
    (logged,) = query(url, "SELECT count(*) FROM api_logs WHERE api_type = 'placeorder'")[0]
    assert logged == len(answers) + 1  # the warm-up order too
    logged_ids = [row[0] for row in query(
        url, "SELECT response->>'orderid' FROM api_logs WHERE api_type = 'placeorder' AND status_code = 200")]
    assert len(logged_ids) == len(ok_ids) + 1
    assert set(logged_ids) >= ok_ids
    assert query(url, "SELECT count(*) FROM api_logs WHERE status_code = 503")[0][0] == len(failed)


REDIS_DOWN_FOR = 4.0
REDIS_RECOVERY_LIMIT = 90.0  # seconds: Flask-Limiter checks a dead storage again after 1, 2, 4 ... 32 s


def test_redis_outage_under_order_load(scale_db, start_server, tmp_path):
    private = PrivateRedis().start()
    try:
        _redis_outage(private, scale_db, start_server, tmp_path)
    finally:
        private.kill()


def _redis_outage(private: PrivateRedis, url: str, start_server, tmp_path) -> None:
    server = start_server(server_env(url, str(tmp_path / "instance"), redis_url=private.url))
    key = seed(server.env, {"users": [{"name": "trader"}]})["trader"]["keys"][0]["key"]
    server.wait_for_symbols(key)

    sent: list[tuple[str, Answer]] = []  # (strategy, answer): each call's strategy names it in the journal
    lock = threading.Lock()
    done = threading.Event()

    def client(n: int) -> None:
        with requests.Session() as session:
            i = 0
            while not done.is_set():
                i += 1
                strategy = f"redis-{n}-{i}"
                answer = api_call(session, server.base, "placeorder", order_body(key, strategy=strategy),
                                  timeout=CLIENT_TIMEOUT)
                with lock:
                    sent.append((strategy, answer))

    def back_in_redis() -> bool:
        shared = private.client()
        try:  # the limiter counts there again, and the cache shares entries there again
            return any(shared.scan_iter("LIMITS*", count=1000)) and any(shared.scan_iter("algobridge:cache:*"))
        finally:
            shared.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 20
        while len(sent) < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        down_at = time.monotonic()
        private.kill()
        time.sleep(REDIS_DOWN_FOR)
        private.start()  # empty: no persistence
        up_at = time.monotonic()
        recovered_at = None
        while time.monotonic() < up_at + REDIS_RECOVERY_LIMIT:
            if back_in_redis():
                recovered_at = time.monotonic()
                break
            time.sleep(0.5)
        time.sleep(2)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=CLIENT_TIMEOUT + 5)
    assert server.stop(signal.SIGTERM) == 0, server.log()

    answers = [a for _, a in sent]
    statuses: dict[int | None, int] = {}
    for a in answers:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    during = [a for a in answers if down_at <= a.sent <= up_at]
    ok = {strategy: a.body["orderid"] for strategy, a in sent if a.status == 200}
    rows = query(url, "SELECT strategy, orderid FROM orders WHERE strategy LIKE 'redis-%'")
    journaled: dict[str, list[str]] = {}
    for strategy, orderid in rows:
        journaled.setdefault(strategy, []).append(orderid)
    (logged,) = query(url, "SELECT count(*) FROM api_logs WHERE api_type = 'placeorder'")[0]
    logged_ok = {row[0] for row in query(
        url, "SELECT response->>'orderid' FROM api_logs WHERE api_type = 'placeorder' AND status_code = 200")}
    print(f"\nRedis killed for {up_at - down_at:.1f} s under {CLIENTS} clients: {len(answers)} calls answered "
          f"{statuses} ({len(during)} sent while it was down); {len(rows)} orders journaled for "
          f"{len(journaled)} calls; {logged} calls logged; limiter and cache back in Redis "
          + (f"{recovered_at - up_at:.1f} s after its restart" if recovered_at else "never"))

    assert len(during) >= 20, "too few calls during the outage: the test did not test anything"
    assert statuses == {200: len(answers)}, f"not every call was answered 200: {statuses}"
    twice = {s: ids for s, ids in journaled.items() if len(ids) > 1}
    assert not twice, f"{len(twice)} calls placed more than once, e.g. {list(twice.items())[:3]}"
    assert {s: ids[0] for s, ids in journaled.items()} == ok  # each answered order, as answered; nothing else
    assert logged == len(answers)
    assert logged_ok == set(ok.values())
    assert recovered_at is not None, "the limiter and the cache did not use Redis again after its restart"
