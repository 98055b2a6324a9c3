"""The read API (funds, orderbook) over HTTP in analyze mode, against the same server's ping.

For SQLite and a fresh PostgreSQL database: start the app with gunicorn (gthread, 1 worker x 8 threads
unless told otherwise), place some orders so the books are not empty, then load each endpoint with
`wrk -t2 -c10` (the team guide's budget: funds and orderbook >= 700 req/s with p99 <= 30 ms) and print,
in the same run: ping (the floor), funds and orderbook req/s, their ratio to ping, client-side
p50/p99 from wrk, and the worker processes' CPU time per request (from /proc: steadier than req/s on a
busy machine, where other processes take CPU from the server).

--pages also loads pages signed in (the first trader logs in over HTTP; wrk sends its session cookie):
GET /dashboard and /orderbook, against the same budget and the same floor.

    .venv/bin/python -m bench.reads [--seconds 10] [--connections 10] [--orders 50] [--users 1]
                                    [--backends sqlite,postgresql] [--pages]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

from bench.orders import (
    free_port,
    order_bodies,
    prepare,
    run_python,
    run_wrk,
    start_server,
    stop_server,
)
from tests.helpers.accounts import PASSWORD
from tests.helpers.databases import create_pg_database, drop_pg_database, sqlite_url

BUDGET_RPS = 700
BUDGET_P99_MS = 30
ENDPOINTS = ("ping", "funds", "orderbook")
PAGES = ("/dashboard", "/orderbook")


def _post(port: int, path: str, body: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _request(port: int, method: str, path: str, body: str | None = None, cookie: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        if cookie:
            headers["Cookie"] = cookie
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Set-Cookie") or "", resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def sign_in(port: int, username: str = "bench") -> str:
    """Log in through the form, as a browser does; the session cookie ("name=value") that wrk will send."""
    status, set_cookie, page = _request(port, "GET", "/auth/login")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    if status != 200 or token is None:
        raise RuntimeError(f"the login page answered {status} without a CSRF token")
    cookie = set_cookie.split(";", 1)[0]
    form = urllib.parse.urlencode({"username": username, "password": PASSWORD, "csrf_token": token.group(1)})
    status, set_cookie, _page = _request(port, "POST", "/auth/login", form, cookie)
    if status not in (302, 303) or not set_cookie:
        raise RuntimeError(f"signing in answered {status}")
    cookie = set_cookie.split(";", 1)[0]
    status, _c, _p = _request(port, "GET", PAGES[0], cookie=cookie)
    if status != 200:
        raise RuntimeError(f"GET {PAGES[0]} signed in answered {status}")
    return cookie


def wrk_page(port: int, path: str, cookie: str, seconds: float, connections: int, threads: int = 2) -> dict:
    """GET `path` with the session cookie under wrk; the figures run_wrk reports."""
    out = subprocess.run(
        [shutil.which("wrk") or "wrk", "--latency", "-t", str(threads), "-c", str(connections),
         "-d", f"{max(1, round(seconds))}s", "-H", f"Cookie: {cookie}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    found = {}
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            found[f"p{q}_ms"] = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return {"rps": rps, "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "errors": int(bad.group(1)) if bad else 0,
            "p50_ms": found.get("p50_ms", float("nan")), "p99_ms": found.get("p99_ms", float("nan"))}


def workers_cpu(master_pid: int) -> float:
    """CPU seconds (user + system) used so far by the server's worker processes; NaN without /proc."""
    try:
        with open(f"/proc/{master_pid}/task/{master_pid}/children") as fh:
            pids = fh.read().split()
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def measured(proc, run, *args) -> dict:
    """`run(*args)`'s figures, with the workers' CPU milliseconds per request."""
    before = workers_cpu(proc.pid)
    result = run(*args)
    used = workers_cpu(proc.pid) - before
    result["cpu_ms"] = used * 1000 / result["requests"] if result["requests"] else float("nan")
    return result


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
            results[endpoint] = measured(proc, load, port, f"/api/v1/{endpoint}", bodies, args.seconds,
                                         args.connections, 2)
        if args.pages and load is run_wrk:
            cookie = sign_in(port)
            for page in PAGES:
                wrk_page(port, page, cookie, 1, args.connections)  # warm up
                results[page] = measured(proc, wrk_page, port, page, cookie, args.seconds, args.connections)
    finally:
        stop_server(proc)
    return {"backend": name, "users": args.users, "client": load.__name__.removeprefix("run_"), **results}


def report(r: dict) -> None:
    floor = r["ping"]["rps"]
    print(f"[{r['backend']}] client={r['client']} users={r['users']}")
    for endpoint in [e for e in (*ENDPOINTS, *PAGES) if e in r]:
        x = r[endpoint]
        ratio = x["rps"] / floor if floor else float("nan")
        verdict = ""
        if endpoint != "ping":
            ok = x["rps"] >= BUDGET_RPS and x["p99_ms"] <= BUDGET_P99_MS
            verdict = f"  budget >= {BUDGET_RPS} req/s, p99 <= {BUDGET_P99_MS} ms: {'ok' if ok else 'MISSED'}"
        print(f"  {endpoint:<10} {x['rps']:8.1f} req/s  ratio/ping {ratio:5.2f}  p50 {x['p50_ms']:7.2f} ms  "
              f"p99 {x['p99_ms']:7.2f} ms  cpu/req {x['cpu_ms']:6.3f} ms  ({x['requests']} requests, "
              f"{x['errors']} non-2xx){verdict}")


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
    parser.add_argument("--pages", action="store_true", help="also GET /dashboard and /orderbook signed in (wrk)")
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
