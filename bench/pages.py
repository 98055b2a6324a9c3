"""Render time of the traffic log page at a million rows: first page and a deep page, p99.

Fills `traffic_logs` of a fresh scratch database (SQLite, then a fresh PostgreSQL database) with
1,000,000 rows, generated in SQL in chunks (progress printed), then renders `/logs/traffic` through
the Flask test client, signed in, as an admin (every user's rows: the primary key) and as a trader
(their own rows: the (user_id, id) index):
  - the first page (no cursor),
  - a deep page (`?before=<cursor>` about 99% of the way back).
Target: p99 <= 50 ms for each. The floor is the bare indexed SELECT of the same page through the
driver (`WHERE id < ? ORDER BY id DESC LIMIT 51`), measured in the same run; the ratio says what
the page costs on top of its query (session, user, template).

    .venv/bin/python bench/pages.py [--rows 1000000] [--repeats 300] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import text  # noqa: E402

from app import create_app  # noqa: E402
from database import db  # noqa: E402
from tests.conftest import shutdown_app  # noqa: E402
from tests.helpers.accounts import isolated_client, login, make_user  # noqa: E402
from tests.helpers.databases import app_overrides, create_pg_database, drop_pg_database, sqlite_url  # noqa: E402

CHUNK = 100_000
USERS = 7  # rows are spread over user ids 1..7; the trader is user 2
TARGET_MS = 50.0

_SQLITE_FILL = """
INSERT INTO traffic_logs (created_at, client_ip, method, path, status_code, duration_ms, user_id, user_agent)
WITH RECURSIVE c(n) AS (SELECT :lo UNION ALL SELECT n + 1 FROM c WHERE n < :hi)
SELECT strftime('%Y-%m-%d %H:%M:%S', :start, '+' || n || ' seconds') || '.000000',
       '10.0.' || (n % 250) || '.' || (n % 200), CASE WHEN n % 5 = 0 THEN 'POST' ELSE 'GET' END,
       '/api/v1/' || CASE n % 4 WHEN 0 THEN 'placeorder' WHEN 1 THEN 'funds' WHEN 2 THEN 'quotes' ELSE 'ping' END,
       CASE WHEN n % 50 = 0 THEN 429 WHEN n % 97 = 0 THEN 500 ELSE 200 END,
       (n % 1000) / 100.0, 1 + n % :users, 'bench/1.0'
FROM c
"""

_PG_FILL = """
INSERT INTO traffic_logs (created_at, client_ip, method, path, status_code, duration_ms, user_id, user_agent)
SELECT CAST(:start AS timestamptz) + n * interval '1 second',
       '10.0.' || (n % 250) || '.' || (n % 200), CASE WHEN n % 5 = 0 THEN 'POST' ELSE 'GET' END,
       '/api/v1/' || CASE n % 4 WHEN 0 THEN 'placeorder' WHEN 1 THEN 'funds' WHEN 2 THEN 'quotes' ELSE 'ping' END,
       CASE WHEN n % 50 = 0 THEN 429 WHEN n % 97 = 0 THEN 500 ELSE 200 END,
       (n % 1000) / 100.0, 1 + n % :users, 'bench/1.0'
FROM generate_series(:lo, :hi) AS n
"""


def fill(rows: int) -> None:
    engine = db.engine
    sql = _SQLITE_FILL if engine.dialect.name == "sqlite" else _PG_FILL
    start = "2026-01-01 00:00:00"
    t0 = time.perf_counter()
    done = 0
    while done < rows:
        hi = min(done + CHUNK, rows)
        with engine.begin() as conn:
            conn.execute(text(sql), {"lo": done + 1, "hi": hi, "start": start, "users": USERS})
        done = hi
        rate = done / (time.perf_counter() - t0)
        print(f"  filled {done:>9,} / {rows:,} rows ({rate:,.0f} rows/s)", flush=True)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE" if engine.dialect.name == "sqlite" else "ANALYZE traffic_logs"))
    if engine.dialect.name == "sqlite":
        # The bulk fill leaves a WAL of hundreds of MB; a running server checkpoints as it goes.
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"  fill: {time.perf_counter() - t0:.1f} s", flush=True)


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(len(ordered) * 0.99 + 0.999999) - 1)]


def time_page(client, url: str, repeats: int) -> list[float]:
    for _ in range(10):  # warm: templates compiled, connections open, caches filled
        assert client.get(url).status_code == 200
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        resp = client.get(url)
        out.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200, resp.status_code
        assert resp.get_data().count(b'<td class="path">') == 50
    return out


def time_floor(before: int | None, user_id: int | None, repeats: int) -> list[float]:
    """The same page's rows, a bare SELECT through the driver."""
    engine = db.engine
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    where, params = [], []
    if user_id is not None:
        where.append(f"user_id = {mark}")
        params.append(user_id)
    if before is not None:
        where.append(f"id < {mark}")
        params.append(before)
    sql = ("SELECT id, created_at, client_ip, method, path, status_code, duration_ms, user_id, user_agent "
           f"FROM traffic_logs {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY id DESC LIMIT 51")
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        out = []
        for i in range(repeats + 10):
            t = time.perf_counter()
            cur.execute(sql, params)
            rows = cur.fetchall()
            if i >= 10:
                out.append((time.perf_counter() - t) * 1000)
            assert len(rows) == 51
        raw.rollback()
        return out
    finally:
        raw.close()


def run(name: str, url: str, instance: str, rows: int, repeats: int) -> list[tuple]:
    print(f"\n== {name}: {rows:,} traffic rows", flush=True)
    application = create_app(app_overrides(url, instance))
    results = []
    try:
        with application.app_context():
            fill(rows)
            make_user("benchadmin", "admin")
            trader = make_user("benchtrader", "trader")
            assert trader.id == 2, "the trader owns the rows of user id 2"
            deep = max(rows // 100, 1000)  # a cursor 99% of the way back
            cases = [("admin", "first page", None, None), ("admin", "deep page", deep, None),
                     ("trader", "first page", None, trader.id), ("trader", "deep page", deep, trader.id)]
            clients = {}
            for who in ("admin", "trader"):
                c = isolated_client(application)
                assert login(c, f"bench{who}").status_code in (302, 303)
                clients[who] = c
            log_writer = application.extensions["algobridge.writer"]
            for who, label, before, uid in cases:
                log_writer.flush()  # each case starts with the traffic rows of the last one written
                page_url = "/logs/traffic" + (f"?before={before}" if before else "")
                page = time_page(clients[who], page_url, repeats)
                floor = time_floor(before, uid, repeats)
                results.append((name, who, label, p99(page), statistics.median(page), p99(floor),
                                statistics.median(floor)))
                r = results[-1]
                print(f"  {who:6} {label:10}  page p99 {r[3]:6.2f} ms (median {r[4]:5.2f})   "
                      f"floor p99 {r[5]:6.3f} ms (median {r[6]:5.3f})", flush=True)
    finally:
        shutdown_app(application)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    results = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory(prefix="algobridge-bench-pages-") as tmp:
            results += run("sqlite", sqlite_url(tmp), tmp, args.rows, args.repeats)
    if args.only in (None, "postgresql"):
        pg = create_pg_database("algobridge_bench")
        try:
            with tempfile.TemporaryDirectory(prefix="algobridge-bench-pages-") as tmp:
                results += run("postgresql", pg, tmp, args.rows, args.repeats)
        finally:
            drop_pg_database(pg)
    print(f"\n/logs/traffic at {args.rows:,} rows, {args.repeats} renders each "
          f"(target: page p99 <= {TARGET_MS:.0f} ms)")
    print(f"{'database':10} {'user':6} {'page':10} {'p99 ms':>8} {'floor p99':>10} {'ratio':>7}  verdict")
    ok = True
    for name, who, label, page_p99, _pm, floor_p99, _fm in results:
        verdict = "ok" if page_p99 <= TARGET_MS else "OVER TARGET"
        ok = ok and page_p99 <= TARGET_MS
        print(f"{name:10} {who:6} {label:10} {page_p99:8.2f} {floor_p99:10.3f} {page_p99 / floor_p99:7.0f}x  {verdict}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
