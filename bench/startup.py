"""Benchmark: start-up time and memory of `python app.py` (gunicorn gthread: master + worker).

    .venv/bin/python -m bench.startup [--requests 200] [--timeout 60]

Runs, each on a free port:
  1. floor: a bare Flask "hello" app served the same way (gunicorn gthread, 1 worker, app built
     in the master), for the same two figures;
  2. fresh: `python app.py` on a new INSTANCE_PATH (embedded default: SQLite, migrated at start,
     SAMPLE_CONTRACT on);
  3. again: `python app.py` on the same instance (already migrated, contract already loaded).

For each: seconds from spawn to the first 200 page (GET /auth/login, else / following redirects),
and the RSS (VmRSS, /proc/<pid>/status) of the master and of the worker right after that page and
after `--requests` more requests. Budgets: start <= 1 s, RSS of each process <= 100 MB.
"""

from __future__ import annotations

import argparse
import http.client
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

FLOOR_APP = textwrap.dedent(
    """
    import sys
    from flask import Flask
    from gunicorn.app.base import BaseApplication

    app = Flask(__name__)

    @app.get("/auth/login")
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


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


def get(port: int, path: str, follow: int = 5) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status in (301, 302, 303, 307, 308) and follow:
            loc = resp.getheader("Location") or "/"
            if "://" in loc:
                loc = "/" + loc.split("://", 1)[1].split("/", 1)[-1] if "/" in loc.split("://", 1)[1] else "/"
            return get(port, loc, follow - 1)
        return resp.status
    finally:
        conn.close()


def run(label: str, argv: list[str], env: dict[str, str], port: int, requests: int, timeout: float) -> dict:
    t0 = time.perf_counter()
    errlog = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errlog,
                            start_new_session=True)
    elapsed = None
    path = "/auth/login"
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                errlog.seek(0)
                err = errlog.read().decode(errors="replace")
                raise SystemExit(f"{label}: server exited with {proc.returncode}\n{err[-6000:]}")
            try:
                status = get(port, path)
            except OSError:
                time.sleep(0.005)
                continue
            if status == 200:
                elapsed = time.perf_counter() - t0
                break
            if path == "/auth/login":
                path = "/"  # no login page: the root, following redirects
            time.sleep(0.005)
        if elapsed is None:
            raise SystemExit(f"{label}: no 200 page within {timeout} s")
        time.sleep(0.2)  # let start-up threads settle
        workers = children(proc.pid)
        master_start = rss_mb(proc.pid)
        worker_start = max((rss_mb(w) for w in workers), default=float("nan"))
        for _ in range(requests):
            get(port, path)
        master_after = rss_mb(proc.pid)
        worker_after = max((rss_mb(w) for w in children(proc.pid)), default=float("nan"))
        return {"label": label, "start": elapsed, "master": master_start, "worker": worker_start,
                "master_after": master_after, "worker_after": worker_after, "workers": len(workers)}
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    base_env = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "REDIS_URL", "SAMPLE_CONTRACT", "AUTO_MIGRATE", "FLASK_RUN_FROM_CLI")}
    base_env["PYTHONUNBUFFERED"] = "1"
    instance = tempfile.mkdtemp(prefix="algobridge-startup-")
    results = []
    try:
        port = free_port()
        results.append(run("floor (bare Flask hello, gunicorn gthread)", [PY, "-c", FLOOR_APP, str(port)],
                           base_env, port, args.requests, args.timeout))
        for label in ("fresh instance (migrate + sample contract)", "same instance (already migrated)"):
            port = free_port()
            env = dict(base_env, INSTANCE_PATH=instance, PORT=str(port), HOST="127.0.0.1", SAMPLE_CONTRACT="1")
            results.append(run(label, [PY, "app.py"], env, port, args.requests, args.timeout))
    finally:
        shutil.rmtree(instance, ignore_errors=True)

    floor = results[0]
    print(f"budgets: start <= {BUDGET_S:.1f} s, RSS <= {BUDGET_MB:.0f} MB per process; "
          f"{args.requests} requests between the two RSS readings")
    print(f"{'run':46} {'start s':>8} {'master MB':>10} {'worker MB':>10} {'master+N':>9} {'worker+N':>9}")
    for r in results:
        print(f"{r['label']:46} {r['start']:8.3f} {r['master']:10.1f} {r['worker']:10.1f} "
              f"{r['master_after']:9.1f} {r['worker_after']:9.1f}")
    for r in results[1:]:
        worst = max(r["master"], r["worker"], r["master_after"], r["worker_after"])
        ok_t = "OK" if r["start"] <= BUDGET_S else "OVER"
        ok_m = "OK" if worst <= BUDGET_MB else "OVER"
        print(f"  {r['label']}: start {r['start']:.3f} s ({ok_t}; floor {floor['start']:.3f} s, "
              f"+{r['start'] - floor['start']:.3f} s); worst RSS {worst:.1f} MB ({ok_m}; floor "
              f"{max(floor['master'], floor['worker_after']):.1f} MB, "
              f"+{worst - max(floor['master'], floor['worker_after']):.1f} MB)")


if __name__ == "__main__":
    main()
