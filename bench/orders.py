"""placeorder over HTTP (analyze mode, every log on) against the same server's cheapest endpoint.

For SQLite and a fresh PostgreSQL database: start the app with gunicorn (gthread, the embedded
default's 1 worker x 8 threads unless told otherwise) on loopback, load it with `wrk` (a Lua script
posts the JSON bodies; a Python thread-pool client when wrk is missing), and measure in the same run:
- the floor: POST /api/v1/ping (parse, validate, key lookup, answer, API log row);
- placeorder, alternating BUY and SELL so funds never run out (paper fill, journal, latency row);
- the ratio placeorder / ping (target >= 0.5);
- the server-side overhead (total minus broker time) p50 / p99 from the order_latency rows
  (targets: p50 <= 1.5 ms, p99 <= 5 ms).

    .venv/bin/python -m bench.orders [--seconds 10] [--connections 16] [--workers 1] [--threads 8]
                                     [--backends sqlite,postgresql] [--users 1]

--users N spreads the orders over N traders (one API key each): N=1 measures one account's orders
serialised on its funds lock, N>1 how far orders of different accounts go in parallel.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sqlalchemy import select  # noqa: E402

from app import create_app  # noqa: E402
from database import db  # noqa: E402
from database.latency_db import OrderLatency  # noqa: E402
from tests.helpers.databases import (  # noqa: E402
    TEST_SECRETS,
    app_overrides,
    create_pg_database,
    drop_pg_database,
    sqlite_url,
)

# No rate limit, and a practice market open around the clock: the benchmark runs at any hour.
UNLIMITED = {"API_RATE_LIMIT": "10000000 per second", "ORDER_RATE_LIMIT": "10000000 per second",
             "SMART_ORDER_RATE_LIMIT": "10000000 per second", "ANALYZE_MARKET_HOURS": "always"}

LUA = """
local bodies = {%(bodies)s}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, "%(path)s", nil, bodies[(n %% #bodies) + 1])
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(url: str, instance: str, users: int = 1) -> list[str]:
    """Migrate, load the sample contract, create `users` traders with an API key each; return the keys."""
    from services.accounts import api_keys
    from services.market.master_contract import ensure_sample_contract
    from tests.helpers.accounts import make_user

    app = create_app(app_overrides(url, instance, LOG_LEVEL="WARNING", **UNLIMITED))
    keys = []
    with app.app_context():
        ensure_sample_contract()
        for n in range(users):
            user = make_user("bench" if n == 0 else f"bench{n}", "trader")
            _row, key = api_keys.create_key(user, "bench", ["orders", "read", "data"])
            keys.append(key)
        db.session.commit()
    close(app)
    return keys


def close(app) -> None:
    app.extensions["algobridge.writer"].shutdown(timeout=30)
    app.extensions["algobridge.cache"].stop()
    with app.app_context():
        db.engine.dispose()


def start_server(url: str, instance: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, **TEST_SECRETS, **UNLIMITED, "DATABASE_URL": url, "INSTANCE_PATH": instance,
           "AUTO_MIGRATE": "true", "LOG_LEVEL": "WARNING", "WEBSOCKET_WITH_WEB": "false"}
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    proc = subprocess.Popen(
        [gunicorn, "-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "app:create_app()"],
        cwd=ROOT, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)  # workers flush the log writer at exit
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_wrk(port: int, path: str, bodies: list[str], seconds: float, connections: int,
            threads: int | None = None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(LUA % {"bodies": ", ".join(json.dumps(b) for b in bodies), "path": path})
        script = fh.name
    try:
        threads = threads or max(1, min(4, connections))
        out = subprocess.run(
            [shutil.which("wrk") or "wrk", "--latency", "-t", str(threads), "-c", str(connections),
             "-d", f"{max(1, round(seconds))}s", "-s", script, f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    found = {}
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            found[f"p{q}_ms"] = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return {"rps": rps, "requests": total, "errors": int(bad.group(1)) if bad else 0,
            "p50_ms": found.get("p50_ms", float("nan")), "p99_ms": found.get("p99_ms", float("nan"))}


def run_python(port: int, path: str, bodies: list[str], seconds: float, connections: int,
               threads: int | None = None) -> dict:
    """Fallback load generator: one keep-alive connection per thread (GIL-bound: a lower bound)."""
    stop = time.perf_counter() + seconds
    counts = [0] * connections
    errors = [0] * connections
    times: list[float] = []

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = i
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            conn.request("POST", path, body=bodies[n % len(bodies)], headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            times.append((time.perf_counter() - t0) * 1000)
            counts[i] += 1
            errors[i] += resp.status >= 300
            n += 1

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        list(pool.map(worker, range(connections)))
    elapsed = time.perf_counter() - start
    return {"rps": sum(counts) / elapsed, "requests": sum(counts), "errors": sum(errors),
            "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(q / 100 * (len(values) - 1))))
    return values[k]


def latency_stats(url: str, instance: str, since_id: int) -> dict:
    app = create_app(app_overrides(url, instance, LOG_LEVEL="WARNING"))
    with app.app_context():
        rows = db.session.execute(
            select(OrderLatency.overhead_ms, OrderLatency.total_ms, OrderLatency.broker_ms,
                   OrderLatency.validation_ms, OrderLatency.response_ms)
            .where(OrderLatency.endpoint == "placeorder", OrderLatency.is_success.is_(True),
                   OrderLatency.id > since_id)
        ).all()
    close(app)
    overhead = [r.overhead_ms for r in rows]
    return {
        "rows": len(rows),
        "overhead_p50": percentile(overhead, 50), "overhead_p99": percentile(overhead, 99),
        "total_p50": percentile([r.total_ms for r in rows], 50),
        "broker_p50": percentile([r.broker_ms for r in rows], 50),
        "validation_p50": percentile([r.validation_ms for r in rows], 50),
        "response_p50": percentile([r.response_ms for r in rows], 50),
        "overhead_mean": statistics.fmean(overhead) if overhead else float("nan"),
    }


def max_latency_id(url: str, instance: str) -> int:
    app = create_app(app_overrides(url, instance, LOG_LEVEL="WARNING"))
    with app.app_context():
        value = db.session.scalar(select(OrderLatency.id).order_by(OrderLatency.id.desc()).limit(1)) or 0
    close(app)
    return value


def order_bodies(keys: list[str]) -> list[str]:
    """BUY and SELL alternating per key (funds never run out), keys interleaved."""
    bodies = []
    for action in ("BUY", "SELL"):
        for key in keys:
            bodies.append(json.dumps({"apikey": key, "strategy": "bench", "exchange": "NSE", "symbol": "INFY",
                                      "quantity": "1", "pricetype": "MARKET", "product": "MIS", "action": action}))
    return bodies


def bench_backend(name: str, url: str, instance: str, args) -> dict:
    keys = prepare(url, instance, args.users)
    ping = [json.dumps({"apikey": key}) for key in keys]
    orders = order_bodies(keys)
    load = run_wrk if shutil.which("wrk") and not args.python_client else run_python
    port = free_port()
    proc = start_server(url, instance, port, args.workers, args.threads)
    try:
        load(port, "/api/v1/ping", ping, 2, args.connections)  # warm up
        load(port, "/api/v1/placeorder", orders, 2, args.connections)
        floor = load(port, "/api/v1/ping", ping, args.seconds, args.connections)
        since = max_latency_id(url, instance)
        placed = load(port, "/api/v1/placeorder", orders, args.seconds, args.connections)
    finally:
        stop_server(proc)
    stats = latency_stats(url, instance, since)
    return {"backend": name, "users": args.users, "client": load.__name__.removeprefix("run_"), "floor": floor,
            "placeorder": placed,
            "ratio": placed["rps"] / floor["rps"] if floor["rps"] else float("nan"), **stats}


def report(r: dict) -> None:
    ok = "ok" if r["ratio"] >= 0.5 else "BELOW TARGET"
    print(f"[{r['backend']}] client={r['client']} users={r['users']}")
    print(f"  floor  /api/v1/ping        {r['floor']['rps']:9.1f} req/s  ({r['floor']['requests']} requests, "
          f"{r['floor']['errors']} non-2xx)")
    print(f"  placeorder (analyze mode)  {r['placeorder']['rps']:9.1f} req/s  ({r['placeorder']['requests']} requests, "
          f"{r['placeorder']['errors']} non-2xx)")
    print(f"  ratio placeorder / floor   {r['ratio']:9.3f}   target >= 0.5: {ok}")
    p50, p99 = r["overhead_p50"], r["overhead_p99"]
    p50_ok = "ok" if p50 <= 1.5 else "ABOVE TARGET"
    p99_ok = "ok" if p99 <= 5 else "ABOVE TARGET"
    print(f"  server overhead (order_latency, {r['rows']} rows): p50 {p50:.3f} ms ({p50_ok} <= 1.5), "
          f"p99 {p99:.3f} ms ({p99_ok} <= 5)")
    print(f"  stage p50: validation {r['validation_p50']:.3f} ms, broker {r['broker_p50']:.3f} ms, "
          f"response {r['response_p50']:.3f} ms, total {r['total_p50']:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--users", type=int, default=1, help="traders the orders are spread over (one key each)")
    parser.add_argument("--python-client", action="store_true", help="use the Python client even if wrk exists")
    args = parser.parse_args()
    results = []
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-orders-{name}-") as instance:
            if name == "sqlite":
                results.append(bench_backend(name, sqlite_url(instance), instance, args))
            else:
                url = create_pg_database("algobridge_bench")
                try:
                    results.append(bench_backend(name, url, instance, args))
                finally:
                    drop_pg_database(url)
        report(results[-1])


if __name__ == "__main__":
    main()
