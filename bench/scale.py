"""placeorder throughput with 1, 2 and 4 gunicorn workers on PostgreSQL + Redis, as a ratio to 1 worker.

The production entry point, `gunicorn 'app:create_app()'` run from the repository root (so it reads
gunicorn.conf.py: gthread, preload, the writer's flush at exit), with -w N --threads T. Analyze mode,
every log on (API, traffic, latency rows through the log writer). Redis serves the cache, its
invalidation and the rate-limit storage (limits raised out of the way). Several users (as many as
wrk connections by default), the requests cycling through them, each user alternating BUY and SELL,
so the per-user funds lock does not serialise the run. (bench/orders.py's Lua script starts every wrk
thread at the same body, so its threads do meet on a user now and then.) The same fresh PostgreSQL
database for every worker count; the 1-worker baseline is measured first and last and averaged, so
drift (a growing journal, other load on the machine) shows and is shared.

Load from `wrk` (bench/orders.py's Lua script and runner; a Python client when wrk is missing). A
2-CPU machine bounds the ratios: wrk, PostgreSQL and Redis share the cores with the workers, so
4 workers cannot be 4x there; the figure to read is whether adding workers adds throughput at all.

    .venv/bin/python bench/scale.py [--seconds 10] [--connections 16] [--threads 4] [--workers 1,2,4]
                                    [--users 16] [--redis redis://127.0.0.1:6379/7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.orders import UNLIMITED, close, free_port, run_python, run_wrk, start_server, stop_server  # noqa: E402
from database import db  # noqa: E402
from tests.helpers.databases import app_overrides, create_pg_database, drop_pg_database  # noqa: E402


def prepare(url: str, instance: str, users: int) -> list[str]:
    """Migrate, load the sample contract, create `users` traders with a key each; their keys."""
    from app import create_app
    from services.accounts import api_keys
    from services.market.master_contract import ensure_sample_contract
    from tests.helpers.accounts import make_user

    app = create_app(app_overrides(url, instance, LOG_LEVEL="WARNING", **UNLIMITED))
    keys = []
    with app.app_context():
        ensure_sample_contract()
        for i in range(users):
            user = make_user(f"scale{i:02d}", "trader")
            _row, key = api_keys.create_key(user, "scale", ["orders", "read", "data"])
            db.session.commit()
            keys.append(key)
    close(app)
    return keys


def bodies(keys: list[str]) -> list[str]:
    """Every user's BUY, then every user's SELL: neighbouring requests belong to different users."""
    order = {"strategy": "scale", "exchange": "NSE", "symbol": "INFY", "quantity": "1", "pricetype": "MARKET",
             "product": "MIS"}
    return [json.dumps({**order, "apikey": key, "action": action}) for action in ("BUY", "SELL") for key in keys]


def measure(url: str, instance: str, workers: int, args, load, payloads: list[str]) -> dict:
    port = free_port()
    print(f"  starting gunicorn 'app:create_app()' -w {workers} --threads {args.threads} ...", flush=True)
    proc = start_server(url, instance, port, workers, args.threads)
    try:
        print(f"  warming up ({args.warmup:g} s) ...", flush=True)
        load(port, "/api/v1/placeorder", payloads, args.warmup, args.connections)
        print(f"  measuring placeorder for {args.seconds:g} s with {args.connections} connections ...", flush=True)
        result = load(port, "/api/v1/placeorder", payloads, args.seconds, args.connections)
    finally:
        stop_server(proc)
    print(f"  {workers} worker(s): {result['rps']:.1f} req/s ({result['requests']} requests, "
          f"{result['errors']} non-2xx)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--users", type=int, default=0, help="traders (default: one per connection)")
    parser.add_argument("--redis", default=os.environ.get("ALGOBRIDGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))
    parser.add_argument("--python-client", action="store_true", help="use the Python client even if wrk exists")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    if 1 not in counts:
        counts.insert(0, 1)
    users = args.users or args.connections
    os.environ["REDIS_URL"] = args.redis  # for every process started from here: the app and gunicorn's
    load = run_wrk if shutil.which("wrk") and not args.python_client else run_python
    print(f"bench/scale: PostgreSQL + Redis ({args.redis}), client={load.__name__.removeprefix('run_')}, "
          f"{users} users, {os.cpu_count()} CPUs", flush=True)

    results: dict[int, list[float]] = {}
    errors = 0
    url = create_pg_database("algobridge_bench_scale")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as instance:
            print("preparing the database (migrate, sample contract, users and keys) ...", flush=True)
            payloads = bodies(prepare(url, instance, users))
            order = [1, *[n for n in counts if n != 1], 1]  # the baseline first and last
            for i, n in enumerate(order, 1):
                print(f"[{i}/{len(order)}] {n} worker(s)", flush=True)
                r = measure(url, instance, n, args, load, payloads)
                results.setdefault(n, []).append(r["rps"])
                errors += r["errors"]
    finally:
        drop_pg_database(url)

    base = statistics.fmean(results[1])
    print()
    print(f"placeorder throughput, analyze mode, every log on; PostgreSQL + Redis; {args.threads} threads per "
          f"worker, {args.connections} connections, {users} users")
    print(f"  1 worker baseline: {base:.1f} req/s (first {results[1][0]:.1f}, last {results[1][-1]:.1f})")
    for n in counts:
        rps = statistics.fmean(results[n])
        print(f"  {n} worker(s): {rps:9.1f} req/s   ratio to 1 worker {rps / base:5.2f}")
    print(f"  non-2xx answers in all runs: {errors}")
    if (os.cpu_count() or 1) < max(counts):
        print(f"  note: {os.cpu_count()} CPUs shared with wrk, PostgreSQL and Redis bound the ratio for "
              f"{max(counts)} workers")


if __name__ == "__main__":
    main()
