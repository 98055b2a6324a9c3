"""Concurrent smart orders on one symbol, through 4 gunicorn workers: the position reaches each
target once.

Many client threads send the same placesmartorder (position_size = the target) at the same moment,
each on a fresh connection, so the calls land on every worker. The per-user-and-symbol lock (a
PostgreSQL advisory lock, shared by all processes) lets one call place the difference; every other
call finds the position matched. The journal holds exactly the orders that move the position from
one target to the next.
"""

from __future__ import annotations

import threading

import pytest
import requests

from tests.scale.conftest import api_call, query, seed, server_env

pytestmark = pytest.mark.slow

CLIENTS = 16
ALREADY_MATCHED = "Positions Already Matched. No Action needed."
# target -> the one order that must reach it from the previous target
ROUNDS = [(7, ("BUY", 7)), (-3, ("SELL", 10)), (0, ("BUY", 3))]


def _at_once(base: str, body: dict) -> list:
    barrier = threading.Barrier(CLIENTS)
    answers, lock = [], threading.Lock()

    def run() -> None:
        with requests.Session() as fresh:
            fresh.get(base + "/health", timeout=10)  # connected before the barrier: the calls leave together
            barrier.wait(timeout=30)
            answer = api_call(fresh, base, "placesmartorder", body, timeout=30)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=run) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_concurrent_smart_orders_reach_the_target_once(scale_db, redis_url, start_server, tmp_path):
    server = start_server(server_env(scale_db, str(tmp_path / "instance"), redis_url=redis_url))
    key = seed(server.env, {"users": [{"name": "trader"}]})["trader"]["keys"][0]["key"]
    server.wait_for_symbols(key)
    assert len(server.worker_pids()) >= 2, "the requests did not spread over the workers"
    smart = {"apikey": key, "strategy": "scale", "symbol": "SBIN", "exchange": "NSE", "action": "BUY",
             "quantity": 0, "pricetype": "MARKET", "product": "NRML"}
    placed = []
    for target, expected in ROUNDS:
        answers = _at_once(server.base, {**smart, "position_size": target})
        assert all(a.status == 200 for a in answers), [a for a in answers if a.status != 200][:3]
        acted = [a.body["orderid"] for a in answers if "orderid" in a.body]
        matched = [a for a in answers if a.body.get("message") == ALREADY_MATCHED]
        assert len(acted) == 1, f"target {target}: {len(acted)} orders placed"
        assert len(matched) == CLIENTS - 1, f"target {target}: {len(acted)} orders placed"
        placed.append((acted[0], *expected))
        with requests.Session() as session:
            position = api_call(session, server.base, "openposition", {
                "apikey": key, "strategy": "scale", "symbol": "SBIN", "exchange": "NSE", "product": "NRML"})
        assert position.status == 200
        assert int(position.body["quantity"]) == target

    journal = query(scale_db, "SELECT orderid, action, quantity FROM orders WHERE symbol = 'SBIN' ORDER BY id")
    assert [(oid, action, int(qty)) for oid, action, qty in journal] == placed
    print(f"\nsmart orders: {len(ROUNDS)} targets x {CLIENTS} concurrent calls -> {len(journal)} orders")
