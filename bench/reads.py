"""The read API (funds, orderbook) over HTTP in analyze mode, against the same server's ping.

For SQLite and a fresh PostgreSQL database: start the app with gunicorn (gthread, 1 worker x 8 threads
unless told otherwise), place some orders so the books are not empty, then load each endpoint with
`wrk -t2 -c10` (the team guide's budget: funds and orderbook >= 700 req/s with p99 <= 30 ms) and print,
in the same run: ping (the floor), funds and orderbook req/s, their ratio to ping, and client-side
p50/p99 from wrk.

    .venv/bin/python -m bench.reads [--seconds 10] [--connections 10] [--orders 50] [--users 1]
                                    [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import tempfile

from bench.orders import (
    free_port,
    order_bodies,
    prepare,
    run_python,
    run_wrk,
    start_server,
    stop_server,
)
from tests.helpers.databases import create_pg_database, drop_pg_database, sqlite_url

BUDGET_RPS = 700
BUDGET_P99_MS = 30
ENDPOINTS = ("ping", "funds", "orderbook")


def _post(port: int, path: str, body: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def bench_backend(name: str, url: str, instance: str, args) -> dict:
    keys = prepare(url, instance, args.users)
    bodies = [json.dumps({"apikey": key}) for key in keys]
    load = run_wrk if shutil.which("wrk") and not args.python_client else run_python
    port = free_port()
    proc = start_server(url, instance, port, args.workers, args.threads)
    results = {}
    try:
        placed = order_bodies(keys)
        for n in range(args.orders * len(keys)):
            status = _post(port, "/api/v1/placeorder", placed[n % len(placed)])
            if status != 200:
                raise RuntimeError(f"placing the books' orders failed with {status}")
        for endpoint in ENDPOINTS:  # warm up every path first
            load(port, f"/api/v1/{endpoint}", bodies, 1, args.connections, 2)
        for endpoint in ENDPOINTS:
            results[endpoint] = load(port, f"/api/v1/{endpoint}", bodies, args.seconds, args.connections, 2)
    finally:
        stop_server(proc)
    return {"backend": name, "users": args.users, "client": load.__name__.removeprefix("run_"), **results}


def report(r: dict) -> None:
    floor = r["ping"]["rps"]
    print(f"[{r['backend']}] client={r['client']} users={r['users']}")
    for endpoint in ENDPOINTS:
        x = r[endpoint]
        ratio = x["rps"] / floor if floor else float("nan")
        verdict = ""
        if endpoint != "ping":
            ok = x["rps"] >= BUDGET_RPS and x["p99_ms"] <= BUDGET_P99_MS
            verdict = f"  budget >= {BUDGET_RPS} req/s, p99 <= {BUDGET_P99_MS} ms: {'ok' if ok else 'MISSED'}"
        print(f"  {endpoint:<10} {x['rps']:8.1f} req/s  ratio/ping {ratio:5.2f}  p50 {x['p50_ms']:7.2f} ms  "
              f"p99 {x['p99_ms']:7.2f} ms  ({x['requests']} requests, {x['errors']} non-2xx){verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--orders", type=int, default=50, help="orders placed per user before measuring")
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--python-client", action="store_true", help="use the Python client even if wrk exists")
    args = parser.parse_args()
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-reads-{name}-") as instance:
            if name == "sqlite":
                result = bench_backend(name, sqlite_url(instance), instance, args)
            else:
                url = create_pg_database("algobridge_bench")
                try:
                    result = bench_backend(name, url, instance, args)
                finally:
                    drop_pg_database(url)
        report(result)


if __name__ == "__main__":
    main()
