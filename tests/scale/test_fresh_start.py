"""Orders in the first second of a fresh install: never "Symbol not found" for a symbol being loaded.

A fresh install (no master contract yet, SAMPLE_CONTRACT on) served by 4 gunicorn workers through
gunicorn.conf.py, on SQLite and on PostgreSQL. Client threads place valid orders from before the
server listens until well after the sample contract has loaded, each with a strategy name of its
own. The sample contract is loaded by the first worker to serve a request, while the others (and
that one) take orders. Every order is answered 200, or 503 "master contract loading, retry" while
the contract is not loaded yet; never 404 (nor 500). Every order answered 200 is journaled once,
and no order answered 503 is journaled. The counts are printed.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.helpers.databases import create_pg_database, drop_pg_database, sqlite_url
from tests.scale.conftest import ROOT, Answer, api_call, order_body, query, server_env

pytestmark = pytest.mark.slow

CLIENTS = 8
CLIENT_TIMEOUT = 30.0
LOADING = {"status": "error", "message": "master contract loading, retry"}
AFTER_LOAD = 40  # orders answered 200 once the contract is in, before the clients stop

# A trader and an API key, and nothing else: the master contract stays empty (tests.scale.seed loads one).
SEED = """
from app import create_app
from database import db
from services.accounts import api_keys
from tests.helpers.accounts import make_user

app = create_app({"SETUP_ENVIRONMENT": True, "SCHEDULER_ENABLED": False, "SAMPLE_CONTRACT": False})
with app.app_context():
    _row, key = api_keys.create_key(make_user("fresh", "trader"), "fresh", ["orders", "read", "data"])
    db.session.commit()
app.extensions["algobridge.writer"].shutdown(timeout=10)
app.extensions["algobridge.cache"].stop()
with app.app_context():
    db.engine.dispose()
print(key)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        yield request.param, sqlite_url(str(tmp_path / "instance"))
        return
    url = create_pg_database("algobridge_fresh")
    try:
        yield request.param, url
    finally:
        drop_pg_database(url)


def _rows(backend: str, url: str, sql: str) -> list[tuple]:
    if backend == "postgresql":
        return query(url, sql)
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute(sql).fetchall()


def test_orders_while_the_sample_contract_loads_are_never_404(database, tmp_path, start_server):
    backend, url = database
    instance = str(tmp_path / "instance")
    os.makedirs(instance, exist_ok=True)
    env = server_env(url, instance, SAMPLE_CONTRACT="true", WEB_WORKERS="4")
    seeded = subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert seeded.returncode == 0, seeded.stderr
    key = seeded.stdout.strip().splitlines()[-1]
    assert _rows(backend, url, "SELECT count(*) FROM sym_tokens") == [(0,)]

    sent: list[tuple[str, float, Answer]] = []  # (strategy, wall-clock time sent, answer)
    lock = threading.Lock()
    done = threading.Event()
    base = "http://" + env["WEB_BIND"]

    def client(n: int) -> None:
        with requests.Session() as session:
            i = 0
            while not done.is_set():
                i += 1
                strategy = f"fresh-{n}-{i}"
                at = time.time()
                answer = api_call(session, base, "placeorder", order_body(key, strategy=strategy),
                                  timeout=CLIENT_TIMEOUT)
                if answer.status is None and answer.error and "onnection refused" in answer.error:
                    time.sleep(0.01)  # not listening yet: that order never reached the server
                    continue
                with lock:
                    sent.append((strategy, at, answer))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        server = start_server(env)  # the clients knock from before it listens
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with lock:
                ok = sum(1 for _s, _t, a in sent if a.status == 200)
            if ok >= AFTER_LOAD:
                break
            time.sleep(0.1)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=CLIENT_TIMEOUT + 5)
    assert server.stop() == 0, server.log()

    (loaded_at,) = _rows(backend, url, "SELECT finished_at FROM master_contract_status WHERE broker = 'sample'")[0]
    loaded_at = loaded_at if isinstance(loaded_at, dt.datetime) else dt.datetime.fromisoformat(loaded_at)
    loaded = (loaded_at if loaded_at.tzinfo else loaded_at.replace(tzinfo=dt.UTC)).timestamp()
    statuses: dict[int | None, int] = {}
    for _s, _t, a in sent:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    early = [a for _s, at, a in sent if at < loaded]
    journaled: dict[str, int] = {}
    for (strategy,) in _rows(backend, url, "SELECT strategy FROM orders WHERE strategy LIKE 'fresh-%'"):
        journaled[strategy] = journaled.get(strategy, 0) + 1
    print(f"\n[{backend}] fresh install, 4 workers: {len(sent)} orders answered {statuses}; {len(early)} sent "
          f"before the sample contract was in ({sum(1 for a in early if a.status == 200)} of them answered "
          f"200 after waiting for it); {sum(journaled.values())} journaled")

    assert early, "no order was sent while the contract was loading: the test did not test anything"
    wrong = [a for _s, _t, a in sent if a.status != 200 and (a.status, a.body) != (503, LOADING)]
    assert not wrong, f"{len(wrong)} orders answered otherwise than 200 or 503 loading, e.g. {wrong[:3]}"
    ok = {s for s, _t, a in sent if a.status == 200}
    assert set(journaled) == ok, "journaled orders differ from those answered 200"
    assert set(journaled.values()) == {1}, "an order was journaled twice"
