"""SIGKILL a worker under order load: nothing placed twice, no 500, every order answered 200 journaled.

A real gunicorn (4 gthread workers, through gunicorn.conf.py) on PostgreSQL and Redis. Client threads
place analyze-mode orders for two traders, each order with a strategy name of its own (its name in the
journal), on kept-alive connections; one worker is stopped (SIGSTOP) midway, then sent SIGKILL a second later
(no flush, no cleanup: its transactions die with its connections), the master starts another, and
the clients keep placing.
Then:
  - no call is answered otherwise than 200: a call on a connection the dead worker held gets no
    answer at all (the connection is reset), never a 500;
  - every order answered 200 is journaled exactly once, as answered; no order is journaled twice;
  - an order whose connection died may have been journaled (the worker committed it, then died before
    answering): those are counted and printed, as are the API-log rows (the dead worker's unwritten
    log rows die with it) and the orders answered 200 without a log row.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

from tests.scale.conftest import Answer, api_call, order_body, query, seed, server_env

pytestmark = pytest.mark.slow

CLIENTS = 8
CLIENT_TIMEOUT = 30.0
BEFORE, AFTER = 80, 120  # orders answered before the kill, and after it, before the clients stop


def _workers(server) -> set[int]:
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as fh:
        return {int(pid) for pid in fh.read().split()}


def test_sigkill_a_worker_under_order_load(scale_db, redis_url, start_server, tmp_path):
    server = start_server(server_env(scale_db, str(tmp_path / "instance"), redis_url=redis_url))
    users = seed(server.env, {"users": [{"name": "alice"}, {"name": "bob"}]})
    keys = [users["alice"]["keys"][0]["key"], users["bob"]["keys"][0]["key"]]
    server.wait_for_symbols(keys[0])
    workers_before = _workers(server)

    sent: list[tuple[str, Answer]] = []
    lock = threading.Lock()
    done = threading.Event()

    def client(n: int) -> None:
        session = requests.Session()
        i = 0
        while not done.is_set():
            i += 1
            strategy = f"kill-{n}-{i}"
            answer = api_call(session, server.base, "placeorder",
                              order_body(keys[n % 2], strategy=strategy, action=("BUY", "SELL")[i % 2]),
                              timeout=CLIENT_TIMEOUT)
            with lock:
                sent.append((strategy, answer))
            if answer.status is None:  # its connection died with the worker: a new one, to a live worker
                session.close()
                session = requests.Session()
        session.close()

    def answered() -> int:
        with lock:
            return sum(1 for _s, a in sent if a.status is not None)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while answered() < BEFORE and time.monotonic() < deadline:
            time.sleep(0.05)
        # Stopped first, so that it dies with calls in flight (the clients kept-alive on it wait), its
        # transactions open: a worker that hangs, then is killed (the kernel's OOM killer, an operator).
        victim = min(workers_before)
        os.kill(victim, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        killed_at = answered()
        deadline = time.monotonic() + 60
        while answered() < killed_at + AFTER and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=CLIENT_TIMEOUT + 5)
    workers_after = _workers(server)
    assert server.stop(signal.SIGTERM) == 0, server.log()

    statuses: dict[int | None, int] = {}
    for _s, a in sent:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    ok = {strategy: a.body["orderid"] for strategy, a in sent if a.status == 200}
    died = {strategy for strategy, a in sent if a.status is None}
    journaled: dict[str, list[str]] = {}
    for strategy, orderid in query(scale_db, "SELECT strategy, orderid FROM orders WHERE strategy LIKE 'kill-%%'"):
        journaled.setdefault(strategy, []).append(orderid)
    logged = query(scale_db, "SELECT status_code, response->>'orderid' FROM api_logs WHERE api_type = 'placeorder'")
    logged_ok = {orderid for status, orderid in logged if status == 200}
    unanswered_journaled = set(journaled) & died
    print(f"\nSIGKILL of worker {victim} of {sorted(workers_before)} under {CLIENTS} clients "
          f"(workers after: {sorted(workers_after)}): {len(sent)} orders sent, answered {statuses}; "
          f"{sum(len(v) for v in journaled.values())} journaled, {len(unanswered_journaled)} of them without an "
          f"answer (their connection died); {len(logged)} placeorder calls in the API log, "
          f"{len(set(ok.values()) - logged_ok)} orders answered 200 without their API-log row")

    assert killed_at >= 20, "the load did not get going before the kill"
    assert len(ok) > killed_at, "the load did not go on after the kill"
    assert victim not in workers_after, "the worker was not killed"
    assert len(workers_after) == len(workers_before), "the dead worker was not replaced"
    assert set(statuses) <= {200, None}, f"calls answered otherwise than 200: {statuses}"
    twice = {s: ids for s, ids in journaled.items() if len(ids) > 1}
    assert not twice, f"{len(twice)} orders journaled more than once, e.g. {list(twice.items())[:3]}"
    assert {s: journaled.get(s, [None])[0] for s in ok} == ok, "an order answered 200 is not journaled as answered"
    assert set(journaled) <= set(ok) | died, "an order was journaled whose caller got another answer"
    assert logged_ok <= {ids[0] for ids in journaled.values()}, "the API log names an order that is not journaled"
