"""Market data over HTTP in analyze mode: `optionchain` (21 strikes) and `history` (1-minute candles over five
sessions, served from the store) against the same app's `quotes`, in the same run.

For SQLite and a fresh PostgreSQL database: start the app with gunicorn (gthread, 1 worker x 8 threads), fill
the history store with one request (the first `history` call fetches the simulator's candles and keeps them),
then load each endpoint with `wrk -t2 -c10` and print req/s, client-side p50/p99, the workers' CPU time per
request, and each endpoint's p99 as a multiple of `quotes`' (the issue's target: within 3x).

    .venv/bin/python -m bench.market [--seconds 10] [--connections 10] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import shutil
import tempfile

from bench.orders import free_port, prepare, run_python, run_wrk, start_server, stop_server
from bench.reads import measured
from tests.helpers.databases import create_pg_database, drop_pg_database, sqlite_url

TARGET_P99_RATIO = 3.0
SESSIONS = 5  # trading days of 1-minute candles asked for


def _call(port: int, name: str, body: dict) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", f"/api/v1/{name}", body=json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = json.loads(resp.read())
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{name} answered {resp.status}: {answer}")
    return answer


def _sessions_back(n: int, today: dt.date) -> dt.date:
    """The weekday `n` weekdays before `today` (holidays aside: a range with one fewer session is still a range)."""
    day = today
    while n:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def bodies_for(port: int, key: str) -> dict[str, str]:
    expiry = _call(port, "expiry", {"apikey": key, "symbol": "NIFTY", "exchange": "NFO",
                                    "instrumenttype": "options"})["data"][0]
    end = _sessions_back(1, dt.date.today())  # the last weekday before today: a finished session
    start = _sessions_back(SESSIONS - 1, end)
    history = {"apikey": key, "symbol": "INFY", "exchange": "NSE", "interval": "1m",
               "start_date": start.isoformat(), "end_date": end.isoformat()}
    candles = _call(port, "history", history)["data"]  # fills the store: what follows is served from it
    print(f"  history: {len(candles)} one-minute candles from {start} to {end}")
    return {
        "quotes": json.dumps({"apikey": key, "symbol": "INFY", "exchange": "NSE"}),
        "optionchain": json.dumps({"apikey": key, "underlying": "NIFTY", "exchange": "NSE_INDEX",
                                   "expiry_date": expiry.replace("-", ""), "strike_count": 10}),
        "history": json.dumps(history),
    }


def bench_backend(name: str, url: str, instance: str, args) -> dict:
    key = prepare(url, instance, 1)[0]
    load = run_wrk if shutil.which("wrk") and not args.python_client else run_python
    port = free_port()
    proc = start_server(url, instance, port, 1, 8)
    results = {}
    try:
        bodies = bodies_for(port, key)
        for endpoint, body in bodies.items():  # warm up every path first
            load(port, f"/api/v1/{endpoint}", [body], 1, args.connections, 2)
        for endpoint, body in bodies.items():
            results[endpoint] = measured(proc, load, port, f"/api/v1/{endpoint}", [body], args.seconds,
                                         args.connections, 2)
    finally:
        stop_server(proc)
    return {"backend": name, "client": load.__name__.removeprefix("run_"), **results}


def report(r: dict) -> None:
    floor = r["quotes"]
    print(f"[{r['backend']}] client={r['client']}")
    for endpoint in ("quotes", "optionchain", "history"):
        x = r[endpoint]
        ratio = x["p99_ms"] / floor["p99_ms"] if floor["p99_ms"] else float("nan")
        met = "ok" if ratio <= TARGET_P99_RATIO else "MISSED"
        verdict = "" if endpoint == "quotes" else f"  p99/quotes {ratio:5.2f} (target <= {TARGET_P99_RATIO}: {met})"
        print(f"  {endpoint:<12} {x['rps']:8.1f} req/s  p50 {x['p50_ms']:7.2f} ms  p99 {x['p99_ms']:7.2f} ms  "
              f"cpu/req {x['cpu_ms']:6.3f} ms  ({x['requests']} requests, {x['errors']} non-2xx){verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--python-client", action="store_true", help="use the Python client even if wrk exists")
    args = parser.parse_args()
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-market-{name}-") as instance:
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
