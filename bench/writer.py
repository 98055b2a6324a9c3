"""Rows per second through the background log writer, against a floor measured in the same run.

The floor is a plain DBAPI `executemany` of the same rows into the same table (sqlite3 / psycopg),
with no queue, no threads and no type processing. The writer's figure is wall time from the first
`enqueue()` to the end of `flush()`, with 4 producer threads. Target: ratio >= 0.5.

    .venv/bin/python bench/writer.py [--rows 100000]   (SQLite and a fresh PostgreSQL database)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import text  # noqa: E402

from app import create_app  # noqa: E402
from database import Base, db  # noqa: E402
from database.types import utcnow  # noqa: E402
from database.writer import WRITTEN_TABLES, LogWriter  # noqa: E402
from tests.helpers.databases import app_overrides, create_pg_database, drop_pg_database, sqlite_url  # noqa: E402


def make_rows(n: int) -> list[dict]:
    now = utcnow()
    return [
        {"created_at": now, "user_id": i % 7, "api_type": "placeorder", "mode": "analyze",
         "request": {"symbol": "INFY", "exchange": "NSE", "action": "BUY", "quantity": str(i % 100 + 1)},
         "response": {"status": "success", "orderid": f"{i:012d}"}, "status_code": 200,
         "duration_ms": 0.8, "client_ip": "127.0.0.1"}
        for i in range(n)
    ]


def floor(engine, rows: list[dict]) -> float:
    """Plain executemany through the driver, in one transaction: the least work that turns these
    dict rows into table rows (serialise the JSON and the time, then one executemany)."""
    cols = list(rows[0])
    dialect = engine.dialect.name
    mark = "?" if dialect == "sqlite" else "%s"
    sql = f"INSERT INTO api_logs ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
    raw = engine.raw_connection()
    try:
        start = time.perf_counter()
        params = [
            tuple(
                json.dumps(r[c]) if isinstance(r[c], dict)
                else (r[c].replace(tzinfo=None).isoformat(" ") if dialect == "sqlite" else r[c])
                if c == "created_at" else r[c]
                for c in cols
            )
            for r in rows
        ]
        cur = raw.cursor()
        if dialect == "sqlite":
            cur.execute("BEGIN")
        cur.executemany(sql, params)
        raw.commit()
        return time.perf_counter() - start
    finally:
        raw.close()


def through_writer(engine, rows: list[dict], producers: int = 4) -> float:
    writer = LogWriter(engine, {t: Base.metadata.tables[t] for t in WRITTEN_TABLES}, queue_size=50000)
    writer.start()
    chunks = [rows[i::producers] for i in range(producers)]

    def produce(chunk: list[dict]) -> None:
        for r in chunk:
            writer.enqueue("api_logs", r)

    start = time.perf_counter()
    threads = [threading.Thread(target=produce, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.flush(timeout=600)
    elapsed = time.perf_counter() - start
    writer.shutdown()
    return elapsed


def count_and_clear(engine) -> int:
    with engine.begin() as conn:
        n = conn.execute(text("SELECT count(*) FROM api_logs")).scalar()
        conn.execute(text("DELETE FROM api_logs"))
    return n


def run(label: str, url: str, instance: str, n: int, repeats: int) -> None:
    application = create_app(app_overrides(url, instance))
    with application.app_context():
        engine = db.engine
        rows = make_rows(n)
        best_floor = best_writer = float("inf")
        for _ in range(repeats):
            best_floor = min(best_floor, floor(engine, rows))
            assert count_and_clear(engine) == n
            best_writer = min(best_writer, through_writer(engine, rows))
            assert count_and_clear(engine) == n
        print(f"{label:<11} rows={n}  floor(executemany)={n / best_floor:>9,.0f} rows/s  "
              f"writer={n / best_writer:>9,.0f} rows/s  ratio={best_floor / best_writer:.2f}  (target >= 0.5)")
    application.extensions["algobridge.writer"].shutdown()
    application.extensions["algobridge.cache"].stop()
    with application.app_context():
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", sqlite_url(tmp), tmp, args.rows, args.repeats)
    pg = create_pg_database("algobridge_bench")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run("postgresql", pg, tmp, args.rows, args.repeats)
    finally:
        drop_pg_database(pg)


if __name__ == "__main__":
    main()
