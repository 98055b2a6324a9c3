"""PostgreSQL restarts while 4 gunicorn workers take orders.

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
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
import requests

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
