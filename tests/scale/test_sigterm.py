"""SIGTERM the server under load: every call that was answered has its log rows, none lost.

A real gunicorn (4 gthread workers, through gunicorn.conf.py) on PostgreSQL and Redis. Client
threads call a mix of endpoints until the server is gone; the master is sent SIGTERM midway. Each
worker finishes its requests, then its log writer flushes (gunicorn.conf.py: worker_exit). After
the server exited, the API log holds exactly one row per answered call, the latency log one per
answered order call, and the traffic log one per answered request.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time

import pytest
import requests

from tests.scale.conftest import api_call, order_body, query, seed, server_env

pytestmark = pytest.mark.slow

CLIENTS = 8


def test_sigterm_under_load_loses_no_log_row(scale_db, redis_url, start_server, tmp_path):
    instance = str(tmp_path / "instance")
    server = start_server(server_env(scale_db, instance, redis_url=redis_url))
    key = seed(server.env, {"users": [{"name": "loader"}]})["loader"]["keys"][0]["key"]
    server.wait_for_symbols(key)
    calls = [
        ("placeorder", order_body(key)),
        ("placeorder", order_body(key, action="SELL", symbol="TCS")),
        ("quotes", {"apikey": key, "symbol": "INFY", "exchange": "NSE"}),
        ("funds", {"apikey": key}),
        ("orderbook", {"apikey": key}),
        ("placeorder", order_body(key, quantity="oops")),  # a 400 is a call answered, and logged, too
    ]
    with requests.Session() as session:  # one of each first: the positions exist before the load
        warm_up = [(name, api_call(session, server.base, name, body)) for name, body in calls]
    assert {a.status for _n, a in warm_up} == {200, 400}, warm_up
    answers: list[tuple[str, object]] = []
    lock = threading.Lock()
    server_gone = threading.Event()

    def client(n: int) -> None:
        with requests.Session() as session:
            i = n
            while not server_gone.is_set():
                name, body = calls[i % len(calls)]
                i += 1
                answer = api_call(session, server.base, name, body, timeout=30)
                with lock:
                    answers.append((name, answer))
                if answer.status is None:
                    time.sleep(0.01)  # the listener is closed: keep knocking until the server is gone

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 20
        while True:  # under way on every worker: a good number of calls answered (the machine may be busy)
            time.sleep(0.2)
            with lock:
                before = sum(1 for _n, a in answers if a.status is not None)
            if before >= 150 or time.monotonic() > deadline:
                break
        assert before >= 20, f"the load did not get going: {before} answers"
        returncode = server.stop(signal.SIGTERM, timeout=60)
    finally:
        server_gone.set()
        for t in threads:
            t.join(timeout=60)
    assert returncode == 0, server.log()

    answered = [(n, a) for n, a in answers if a.status is not None]
    statuses = {a.status for _n, a in answered}
    assert statuses <= {200, 400}, f"unexpected statuses {statuses}: {[a for _n, a in answered if a.status >= 500][:3]}"
    print(f"\nSIGTERM under load: {len(answered)} calls answered ({before} before the signal), "
          f"{len(answers) - len(answered)} refused once the listener closed")

    every = warm_up + answered
    # An order call whose key was verified has a latency row (the invalid body fails before that).
    orders_ok = sum(1 for n, a in every if n == "placeorder" and a.status == 200)
    # (wait_for_symbols' calls are left out: they are not part of the load)
    (api_rows,) = query(scale_db, "SELECT count(*) FROM api_logs WHERE api_type <> 'symbol'")[0]
    assert api_rows == len(every), f"{len(every)} calls answered, {api_rows} api_logs rows"
    by_status = dict(query(scale_db, "SELECT status_code, count(*) FROM api_logs WHERE api_type <> 'symbol' "
                                     "GROUP BY status_code"))
    assert by_status == {s: sum(1 for _n, a in every if a.status == s) for s in {a.status for _n, a in every}}
    assert query(scale_db, "SELECT count(*) FROM order_latency")[0][0] == orders_ok
    assert query(scale_db, "SELECT count(*) FROM orders")[0][0] == orders_ok
    if importlib.util.find_spec("services.logs.traffic") is not None:
        (traffic_rows,) = query(scale_db, "SELECT count(*) FROM traffic_logs WHERE path LIKE '/api/v1/%%' "
                                          "AND path <> '/api/v1/symbol'")[0]
        assert traffic_rows == len(every)
    spool = os.path.join(instance, "spool")
    assert not os.path.isdir(spool) or not os.listdir(spool), "rows were spooled instead of written"
