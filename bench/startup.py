"""Benchmark: start-up time and memory of `python app.py` (gunicorn gthread: a master and its worker).

    .venv/bin/python -m bench.startup [--repeat 3] [--requests 50] [--timeout 60]

Runs, each on a free port, `--repeat` times (the best time and the largest RSS of the repeats
are reported):
  1. floor: a bare Flask "hello" app served the same way (gunicorn gthread, 1 worker, the app built
     in the master);
  2. fresh: `python app.py` on a new INSTANCE_PATH (embedded default: SQLite, migrated at start,
     SAMPLE_CONTRACT on: the generated master contract, SAMPLE_CONTRACT_ROWS, is loaded after the first page);
  3. restart: `python app.py` again on the instance of the last fresh run (already migrated,
     contract loaded).

For each run:
  - first page: seconds from spawn to the first 200 of GET /auth/login (else / following redirects);
  - RSS (VmRSS, /proc/<pid>/status) of the master and of the worker at that moment ("page"), once
    the server is idle again ("settled": no CPU used by either for 0.5 s, i.e. the deferred
    start-up work, the sample contract and the symbol index, is done), after a symbol search
    (POST /api/v1/search with an API key made for the benchmark; the floor app answers a plain
    page instead) and after `--requests` more searches and pages ("+N").
Budgets: first page <= 1 s; RSS <= 100 MB per process. Ratios are against the floor of the same
run of this script; say whether the machine was busy (the load average is printed).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
BUDGET_S = 1.0
BUDGET_MB = 100.0
SEARCHES = ("NIFTY 22000 CE", "INFY", "RELI", "BANKNIFTY FUT", "TATA MOTORS")

FLOOR_APP = textwrap.dedent(
    """
    import sys
    from flask import Flask
    from gunicorn.app.base import BaseApplication

    app = Flask(__name__)

    @app.route("/auth/login", methods=["GET", "POST"])
    @app.post("/api/v1/search")
    def hello():
        return "hello"

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", "127.0.0.1:" + sys.argv[1])
            self.cfg.set("workers", 1)
            self.cfg.set("threads", 8)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", None)

        def load(self):
            return app

    Server().run()
    """
)

# Run in the instance (same environment as the server): a user and an API key for the searches.
MAKE_KEY = textwrap.dedent(
    """
    import secrets
    from app import create_app
    from database import db
    from services.accounts import users as accounts
    from services.accounts import api_keys

    app = create_app({"SETUP_ENVIRONMENT": False})
    with app.app_context():
        user = accounts.find_user("bench")
        if user is None:
            if accounts.any_user_exists():
                raise SystemExit("the benchmark instance has users but no 'bench' user")
            user = accounts.create_first_admin("bench", secrets.token_urlsafe(16))
        _row, key = api_keys.create_key(user, "bench-" + secrets.token_hex(4), ["data", "read"])
        db.session.commit()
        print(key)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_field(pid: int, name: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def rss_mb(pid: int) -> float:
    return _proc_field(pid, "VmRSS")


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def request(port: int, method: str, path: str, body: dict | None = None, follow: int = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status in (301, 302, 303, 307, 308) and follow and method == "GET":
            loc = resp.getheader("Location") or "/"
            if "://" in loc:
                rest = loc.split("://", 1)[1]
                loc = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
            return request(port, "GET", loc, None, follow - 1)
        return resp.status, data
    finally:
        conn.close()


def wait_idle(pids: list[int], quiet: float = 0.5, limit: float = 30.0) -> float:
    """Wait until none of `pids` used CPU for `quiet` seconds; returns the seconds waited."""
    t0 = time.perf_counter()
    last = sum(cpu_ticks(p) for p in pids)
    still_since = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        time.sleep(0.1)
        now = sum(cpu_ticks(p) for p in pids)
        if now != last:
            last, still_since = now, time.perf_counter()
        elif time.perf_counter() - still_since >= quiet:
            break
    return time.perf_counter() - t0


def make_key(env: dict[str, str]) -> str:
    out = subprocess.run([PY, "-c", MAKE_KEY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"could not make the benchmark API key:\n{out.stderr[-4000:]}")
    return out.stdout.strip().splitlines()[-1]


def snapshot(master: int) -> tuple[float, float]:
    workers = children(master)
    return rss_mb(master), max((rss_mb(w) for w in workers), default=float("nan"))


def run(label: str, argv: list[str], env: dict[str, str], port: int, requests: int, timeout: float,
        key_env: dict[str, str] | None) -> dict:
    t0 = time.perf_counter()
    errlog = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errlog,
                            start_new_session=True)
    first_page = None
    path = "/auth/login"
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                errlog.seek(0)
                err = errlog.read().decode(errors="replace")
                raise SystemExit(f"{label}: server exited with {proc.returncode}\n{err[-6000:]}")
            try:
                status, _ = request(port, "GET", path)
            except OSError:
                time.sleep(0.005)
                continue
            if status == 200:
                first_page = time.perf_counter() - t0
                break
            if path == "/auth/login":
                path = "/"  # no login page: the root, following redirects
            time.sleep(0.005)
        if first_page is None:
            raise SystemExit(f"{label}: no 200 page within {timeout} s")
        r: dict = {"label": label, "first_page": first_page, "page": snapshot(proc.pid)}
        r["settle_s"] = wait_idle([proc.pid, *children(proc.pid)])
        r["settled"] = snapshot(proc.pid)
        key = make_key(key_env) if key_env is not None else "floor"
        status, data = request(port, "POST", "/api/v1/search", {"apikey": key, "query": SEARCHES[0]})
        if status != 200:
            raise SystemExit(f"{label}: search answered {status}: {data[:300]!r}")
        r["found"] = len(json.loads(data).get("data", [])) if key_env is not None else None
        r["search"] = snapshot(proc.pid)
        for i in range(requests):
            if i % 2:
                request(port, "GET", path)
            else:
                request(port, "POST", "/api/v1/search", {"apikey": key, "query": SEARCHES[i // 2 % len(SEARCHES)]})
        r["after_n"] = snapshot(proc.pid)
        return r
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=35)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        errlog.close()


def best(results: list[dict]) -> dict:
    """The best first page of the repeats and, per reading, the largest RSS (the worst case)."""
    out = dict(results[0])
    out["first_page"] = min(r["first_page"] for r in results)
    for k in ("page", "settled", "search", "after_n"):
        out[k] = (max(r[k][0] for r in results), max(r[k][1] for r in results))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each kind (best time, largest RSS)")
    ap.add_argument("--requests", type=int, default=50, help="searches and pages after the first search")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    base_env = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "REDIS_URL", "SAMPLE_CONTRACT", "AUTO_MIGRATE", "FLASK_RUN_FROM_CLI",
                             "INSTANCE_PATH", "WARM_SYMBOL_INDEX", "SAMPLE_CONTRACT_ROWS")}
    base_env["PYTHONUNBUFFERED"] = "1"
    load_before = os.getloadavg()
    floors, fresh, again = [], [], []
    instances = []
    try:
        for _ in range(args.repeat):
            port = free_port()
            floors.append(run("floor: bare Flask hello", [PY, "-c", FLOOR_APP, str(port)], base_env, port,
                              args.requests, args.timeout, None))
            instance = tempfile.mkdtemp(prefix="algobridge-startup-")
            instances.append(instance)
            for label, into in (("fresh instance", fresh), ("restart", again)):
                port = free_port()
                env = dict(base_env, INSTANCE_PATH=instance, PORT=str(port), HOST="127.0.0.1", SAMPLE_CONTRACT="1")
                key_env = dict(base_env, INSTANCE_PATH=instance, SAMPLE_CONTRACT="1")
                into.append(run(label, [PY, "app.py"], env, port, args.requests, args.timeout, key_env))
    finally:
        for instance in instances:
            shutil.rmtree(instance, ignore_errors=True)
    load_after = os.getloadavg()

    floor, rows = best(floors), [best(floors), best(fresh), best(again)]
    print(f"budgets: first page <= {BUDGET_S:.1f} s; RSS <= {BUDGET_MB:.0f} MB per process (master, worker). "
          f"{args.repeat} runs each: best time, largest RSS. load average {load_before[0]:.1f} -> {load_after[0]:.1f} "
          f"({os.cpu_count()} CPUs)")
    print(f"{'run':24} {'1st page s':>10}   RSS MB master/worker: {'at page':>13} {'settled':>13} "
          f"{'after search':>13} {'+' + str(args.requests) + ' req':>13}")
    for r in rows:
        cols = " ".join(f"{r[k][0]:6.1f}/{r[k][1]:<6.1f}" for k in ("page", "settled", "search", "after_n"))
        print(f"{r['label']:24} {r['first_page']:10.3f}   {'':22}{cols}")
    print()
    fmin = max(floor["after_n"])
    for r in rows[1:]:
        worst = max(max(r[k]) for k in ("page", "settled", "search", "after_n"))
        ok_t = "OK" if r["first_page"] <= BUDGET_S else "OVER"
        ok_m = "OK" if worst <= BUDGET_MB else "OVER"
        print(f"{r['label']:16} first page {r['first_page']:.3f} s: {ok_t} (budget {BUDGET_S:.1f} s; "
              f"{r['first_page'] / floor['first_page']:.1f}x the floor's {floor['first_page']:.3f} s)")
        readings = ("page", "settled", "search", "after_n")
        master, worker = max(r[k][0] for k in readings), max(r[k][1] for k in readings)
        print(f"{'':16} largest RSS {worst:.1f} MB: {ok_m} (budget {BUDGET_MB:.0f} MB; "
              f"{worst / fmin:.1f}x the floor's {fmin:.1f} MB); master {master:.1f}, worker {worker:.1f}; "
              f"settled {r['settle_s']:.1f} s after the first page; search found {r['found']} symbols")


if __name__ == "__main__":
    main()
