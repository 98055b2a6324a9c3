"""Benchmark: master contract import on SQLite and PostgreSQL, and symbol lookups and search.

    .venv/bin/python -m bench.symbols [--rows 150000] [--repeat 3] [--pg-admin-url URL]

For each database (a fresh SQLite file and a fresh PostgreSQL database, migrated to head, dropped
afterwards) it prints the import time of `rows` generated Zerodha rows beside a floor measured in
the same run: the raw load of the same, already mapped rows in one transaction (PostgreSQL: DELETE
+ COPY; SQLite: DELETE + executemany), with no mapping, no status and no invalidation. The ratio is
floor / import (1.0 = no overhead over the raw load). Targets: import <= 3 s, ratio >= 0.5.

Then lookups (get_token, get_symbol_info, get_oa_symbol) and search over the same contract, p50
and p99 per query kind. Target: search p99 <= 2 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TODAY = dt.date(2024, 3, 20)  # fixed, so that every run loads the same contract


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _make_app(url: str, instance: str):
    import secrets

    from cryptography.fernet import Fernet

    from app import create_app

    # Throwaway secrets for a throwaway database (a DATABASE_URL requires explicit secrets).
    return create_app({"DATABASE_URL": url, "INSTANCE_PATH": instance, "AUTO_MIGRATE": True,
                       "SETUP_ENVIRONMENT": True, "LOG_LEVEL": "WARNING",
                       "SECRET_KEY": secrets.token_urlsafe(48), "API_KEY_PEPPER": secrets.token_urlsafe(48),
                       "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode()})


def _floor(mapped, dialect: str) -> float:
    """The raw load of pre-mapped rows: what the import would cost with zero overhead."""
    from sqlalchemy import text

    from database import db, write_unit
    from services.market.master_contract import COLUMNS, _sqlite_values

    session = db.session()  # the Session itself (write_unit needs in_transaction())
    session.rollback()
    t0 = time.perf_counter()
    if dialect == "postgresql":
        conn = session.connection()
        conn.execute(text("DELETE FROM sym_tokens"))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY sym_tokens ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in mapped:
                copy.write_row(row)
    else:
        write_unit(session)
        conn = session.connection()
        conn.execute(text("DELETE FROM sym_tokens"))
        raw = conn.connection.driver_connection
        sql = f"INSERT INTO sym_tokens ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        raw.executemany(sql, [_sqlite_values(r) for r in mapped])
    session.commit()
    return time.perf_counter() - t0


def bench_import(app, rows, repeat: int) -> dict[str, float]:
    from database import db
    from services.market import master_contract, symbol_index

    with app.app_context():
        dialect = db.engine.dialect.name
        mapped, _, _ = master_contract.map_rows(rows)
        floors, imports, builds = [], [], []
        for _ in range(repeat):
            floors.append(_floor(mapped, dialect))
            t0 = time.perf_counter()
            result = master_contract.import_rows(rows, broker="bench", source="bench", force=True,
                                                 rebuild_index=False)
            imports.append(time.perf_counter() - t0)
            if result.rows_mapped != len(mapped):
                raise SystemExit(f"import mapped {result.rows_mapped} of {len(mapped)}: {result.summary()}")
            t0 = time.perf_counter()
            symbol_index.reload()
            builds.append(time.perf_counter() - t0)
        if symbol_index.count() != len(mapped):
            raise SystemExit(f"index holds {symbol_index.count()} symbols, expected {len(mapped)}")
        return {"floor": min(floors), "import": min(imports), "index": min(builds), "rows": len(mapped)}


def _queries(index, n: int, rng: random.Random) -> dict[str, list[tuple[str, str | None]]]:
    recs = index.records
    eq = [r for r in recs if r.instrumenttype in ("EQ", "INDEX")]
    opts = [r for r in recs if r.instrumenttype in ("CE", "PE")]
    futs = [r for r in recs if r.instrumenttype == "FUT"]
    names = sorted({w for r in eq if r.name for w in r.name.split() if len(w) > 3 and w.isalpha()})
    kinds: dict[str, list[tuple[str, str | None]]] = {
        "exact symbol": [(rng.choice(recs).symbol, None) for _ in range(n)],
        "prefix (2-5 chars)": [(rng.choice(eq).symbol[: rng.randint(2, 5)], None) for _ in range(n)],
        "name word": [(rng.choice(names), None) for _ in range(n)],
        "token": [(rng.choice(recs).token, None) for _ in range(n)],
        "base strike type": [
            (f"{o.name} {o.strike.normalize():f} {o.instrumenttype}", None) for o in rng.sample(opts, n)
        ],
        "base expiry (broker)": [(f"{f.name} {f.brsymbol[len(f.name):len(f.name) + 5]}", None)
                                 for f in rng.choices(futs, k=n)],
        "substring": [(r.symbol[1:6], None) for r in rng.choices(eq, k=n)],
        "no match": [("".join(rng.choices("QXZJ", k=5)), None) for _ in range(n)],
        "with exchange": [(rng.choice(eq).symbol[:4], rng.choice(["NSE", "BSE", "NFO", "MCX"])) for _ in range(n)],
    }
    return kinds


def bench_lookups(app, n: int = 2000, seed: int = 7) -> None:
    from services.market import symbol_index

    rng = random.Random(seed)
    with app.app_context():
        index = symbol_index.index()
        recs = index.records
        sample = rng.sample(recs, n)
        timings: dict[str, list[float]] = {"get_token": [], "get_symbol_info": [], "get_oa_symbol": []}
        pc = time.perf_counter
        for r in sample:
            t0 = pc()
            symbol_index.get_token(r.symbol, r.exchange)
            t1 = pc()
            symbol_index.get_symbol_info(r.symbol, r.exchange)
            t2 = pc()
            symbol_index.get_oa_symbol(r.brsymbol, r.brexchange)
            t3 = pc()
            timings["get_token"].append(t1 - t0)
            timings["get_symbol_info"].append(t2 - t1)
            timings["get_oa_symbol"].append(t3 - t2)
        print(f"  lookups over {len(recs):,} symbols ({n} each, app context, µs):")
        for k, v in timings.items():
            print(f"    {k:<22} p50 {_pct(v, 50) * 1e6:7.1f}  p99 {_pct(v, 99) * 1e6:7.1f}")

        kinds = _queries(index, 300, rng)
        everything: list[float] = []
        print(f"  search over {len(recs):,} symbols (limit 50, ms):")
        for kind, queries in kinds.items():
            times = []
            for q, ex in queries:
                t0 = pc()
                symbol_index.search(q, ex)
                times.append(pc() - t0)
            everything.extend(times)
            print(f"    {kind:<22} p50 {_pct(times, 50) * 1e3:6.3f}  p99 {_pct(times, 99) * 1e3:6.3f}"
                  f"  max {max(times) * 1e3:6.3f}")
        p99 = _pct(everything, 99)
        print(f"    {'ALL (' + str(len(everything)) + ' queries)':<22} p50 {_pct(everything, 50) * 1e3:6.3f}  "
              f"p99 {p99 * 1e3:6.3f}  mean {statistics.mean(everything) * 1e3:6.3f}   "
              f"target p99 <= 2 ms: {'OK' if p99 <= 0.002 else 'MISSED'}")


def _report(name: str, r: dict[str, float]) -> None:
    ratio = r["floor"] / r["import"]
    ok = r["import"] <= 3.0 and ratio >= 0.5
    print(f"  {name:<11} {int(r['rows']):,} rows: import {r['import']:.3f} s, floor {r['floor']:.3f} s, "
          f"ratio {ratio:.2f}; index rebuild {r['index']:.3f} s   target (<= 3 s, >= 0.5): {'OK' if ok else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "ALGOBRIDGE_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args(argv)

    import psycopg

    from services.market import sample_contract

    rows = list(sample_contract.generate(args.rows, today=TODAY))
    print(f"symbol master benchmark: {len(rows):,} generated Zerodha rows, best of {args.repeat}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="algobridge-bench-") as tmp:
        sqlite_app = _make_app("sqlite:///" + os.path.join(tmp, "bench.db"), os.path.join(tmp, "sqlite"))
        results["SQLite"] = bench_import(sqlite_app, rows, args.repeat)
        _report("SQLite", results["SQLite"])
        if not args.skip_pg:
            dbname = f"algobridge_bench_{uuid.uuid4().hex[:8]}"
            admin = args.pg_admin_url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{dbname}"')
            try:
                url = args.pg_admin_url.rsplit("/", 1)[0] + "/" + dbname
                pg_app = _make_app(url, os.path.join(tmp, "pg"))
                results["PostgreSQL"] = bench_import(pg_app, rows, args.repeat)
                _report("PostgreSQL", results["PostgreSQL"])
                _shutdown(pg_app)
            finally:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        bench_lookups(sqlite_app)
        _shutdown(sqlite_app)
    return 0


def _shutdown(app) -> None:
    from database import db

    for key in ("algobridge.writer", "algobridge.cache"):
        ext = app.extensions.get(key)
        if ext is not None:
            (getattr(ext, "shutdown", None) or ext.stop)(*(() if key.endswith("cache") else (5,)))
    with app.app_context():
        db.engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
