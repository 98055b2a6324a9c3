"""Slow clients against the server as the README runs it: are other clients still served?

For each server variant, on a fresh SQLite instance (the embedded default; a trader and an API key
seeded first, the sample contract loaded): start the server, then
  1. before: `--clients` normal clients (a new connection per request, as a new visitor makes)
     call POST /api/v1/ping for `--seconds`: answered, p50 / p99 / max latency;
  2. open `--slow` slow connections that trickle their request one byte every `--interval`
     seconds (half send the headers that way, half send the headers at once and trickle a JSON
     body); one the server closes is opened again, as an attacker would. `--mode linger` instead:
     `--slow` clients each send a whole request every `--interval` s asking the server to close the
     connection after its answer, and leave the connection open (neither read nor closed) for 5 s;
  3. during: the same normal clients again (a request not answered in `--timeout` s counts as a
     timeout), and how many slow connections the server dropped;
  4. the resident memory (PSS) of the master and the workers, and the threads of the workers.

Variants (`--variants`, comma-separated):
  readme          `python app.py`: the README's run command (scripts/run.sh) without its install step,
                  gunicorn.conf.py as it is
  gthread         gunicorn -c gunicorn.conf.py -k gthread: gunicorn's own threaded worker
  gthread:N       the same with N threads per worker
  sync            gunicorn -c gunicorn.conf.py -k sync
  asgi            gunicorn -c gunicorn.conf.py -k asgi (gunicorn's asyncio worker; it needs an ASGI app)
  NAME+ENV=VALUE  any of the above with an environment variable, e.g. readme+WEB_WORKERS=4

    .venv/bin/python -m bench.slowclients [--variants gthread,readme] [--slow 64] [--seconds 10]
                                          [--clients 4] [--interval 1] [--timeout 5] [--mode linger]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.orders import UNLIMITED, free_port, percentile, prepare  # noqa: E402
from tests.helpers.databases import TEST_SECRETS, sqlite_url  # noqa: E402

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", os.path.join(ROOT, "gunicorn.conf.py")]


def server_command(variant: str, port: int) -> tuple[list[str], dict[str, str]]:
    name, *assignments = variant.split("+")
    env = {"WEB_BIND": f"127.0.0.1:{port}"}
    for a in assignments:
        key, _, value = a.partition("=")
        env[key] = value
    kind, _, threads = name.partition(":")
    if kind == "readme":
        return [sys.executable, "app.py"], env
    if kind not in ("gthread", "sync", "asgi"):
        raise SystemExit(f"unknown variant {variant!r}")
    extra = ["--threads", threads] if threads else []
    return [*GUNICORN, "-k", kind, *extra, "app:create_app()"], env


def start(variant: str, url: str, instance: str, log_path: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd, extra = server_command(variant, port)
    env = {**os.environ, **TEST_SECRETS, **UNLIMITED, "DATABASE_URL": url, "INSTANCE_PATH": instance,
           "LOG_LEVEL": "WARNING", **extra}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    stop(proc)
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        lines = [line.strip() for line in fh if line.strip()]
    errors = [line for line in lines if "Error" in line] or lines[-1:] or ["(no output)"]
    raise RuntimeError(f"the server did not answer /health: {errors[-1][:200]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- the normal clients -----------------------------------------------------------------------------
def normal_load(port: int, body: str, seconds: float, clients: int, timeout: float) -> dict:
    """`clients` threads calling ping on fresh connections for `seconds`."""
    times: list[float] = []
    outcome = {"answered": 0, "timeouts": 0, "errors": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                conn.request("POST", "/api/v1/ping", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                kind = "answered" if resp.status == 200 else "errors"
            except TimeoutError:
                kind = "timeouts"
            except OSError:
                kind = "errors"
                time.sleep(0.05)
            finally:
                conn.close()
            with lock:
                outcome[kind] += 1
                if kind == "answered":
                    times.append((time.monotonic() - t0) * 1000)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**outcome, "rps": outcome["answered"] / seconds, "p50_ms": percentile(times, 50),
            "p99_ms": percentile(times, 99), "max_ms": max(times, default=float("nan"))}


# -- the slow clients -------------------------------------------------------------------------------
def slow_request(n: int, key: str) -> tuple[bytes, int]:
    """The request of slow connection `n` and how much of it goes at once: even ones trickle their
    headers from the first byte, odd ones send the headers and trickle a body."""
    body = json.dumps({"apikey": key, "padding": "x" * 4000}).encode()
    head = (f"POST /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body, (0 if n % 2 == 0 else len(head))


class SlowClients:
    """`count` connections, each sending one more byte every `interval` seconds, on one thread (mode
    "trickle"), or `count` clients that do not close their connections (mode "linger", below)."""

    def __init__(self, port: int, key: str, count: int, interval: float, mode: str = "trickle") -> None:
        self.port, self.key, self.count, self.interval, self.mode = port, key, count, interval, mode
        self.dropped = 0  # connections the server closed (each opened again)
        self.refused = 0
        self.open = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        deadline = time.monotonic() + 30
        while self.open < self.count and self.mode == "trickle" and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _connect(self, sel: selectors.BaseSelector, n: int) -> None:
        data, sent = slow_request(n, self.key)
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if sent:
                s.sendall(data[:sent])
        except OSError:
            self.refused += 1
            return
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, {"n": n, "data": data, "sent": sent})
        self.open += 1

    def _close(self, sel: selectors.BaseSelector, s: socket.socket) -> None:
        sel.unregister(s)
        s.close()
        self.open -= 1

    def _run(self) -> None:
        if self.mode == "linger":
            self._linger()
            return
        sel = selectors.DefaultSelector()
        for n in range(self.count):
            self._connect(sel, n)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=max(0.0, next_tick - time.monotonic())):
                # The server answered (a 408, a 400) or closed the connection: open another.
                try:
                    key.fileobj.recv(65536)
                except OSError:
                    pass
                n = key.data["n"]
                self._close(sel, key.fileobj)
                self.dropped += 1
                self._connect(sel, n)
            if time.monotonic() < next_tick:
                continue
            next_tick += self.interval
            for key in list(sel.get_map().values()):
                state = key.data
                try:
                    key.fileobj.send(state["data"][state["sent"]:state["sent"] + 1])
                    state["sent"] += 1
                except OSError:
                    self._close(sel, key.fileobj)
                    self.dropped += 1
                    self._connect(sel, state["n"])
                    continue
                if state["sent"] >= len(state["data"]):  # it got through whole: start over
                    self._close(sel, key.fileobj)
                    self._connect(sel, state["n"])
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()

    def _linger(self) -> None:
        """Each of `count` clients sends a whole request asking the server to close the connection
        once answered, every `interval` seconds, and keeps each connection open for 5 s without
        reading from it or closing it."""
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        kept: list[tuple[float, socket.socket]] = []
        while not self._stop.is_set():
            tick = time.monotonic()
            for _ in range(self.count):
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                    s.sendall(request)
                    kept.append((tick, s))
                except OSError:
                    self.refused += 1
            while kept and kept[0][0] < tick - 5:
                kept.pop(0)[1].close()
            self.open = len(kept)
            self._stop.wait(max(0.0, tick + self.interval - time.monotonic()))
        for _t, s in kept:
            s.close()


# -- memory -----------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _proc_field(path: str, field: str) -> float:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def memory(master: int) -> dict:
    """PSS (MiB) of the master and of each worker, and each worker's threads."""
    workers = _children(master)
    return {"master_pss": _proc_field(f"/proc/{master}/smaps_rollup", "Pss") / 1024,
            "worker_pss": [_proc_field(f"/proc/{w}/smaps_rollup", "Pss") / 1024 for w in workers],
            "worker_threads": [int(_proc_field(f"/proc/{w}/status", "Threads")) for w in workers]}


def bench_variant(variant: str, args, key: str, url: str, instance: str) -> dict:
    log_path = os.path.join(instance, f"server-{variant.replace(':', '-').replace('+', '_')}.log")
    proc, port = start(variant, url, instance, log_path)
    body = json.dumps({"apikey": key})
    try:
        normal_load(port, body, 1, args.clients, args.timeout)  # warm up
        before = normal_load(port, body, args.seconds, args.clients, args.timeout)
        with SlowClients(port, key, args.slow, args.interval, args.mode) as slow:
            time.sleep(args.interval * 2)  # every slow connection has its request under way
            during = normal_load(port, body, args.seconds, args.clients, args.timeout)
            mem = memory(proc.pid)
            slow_figures = {"open": slow.open, "dropped": slow.dropped, "refused": slow.refused}
    finally:
        stop(proc)
    return {"variant": variant, "before": before, "during": during, "slow": slow_figures, **mem}


def report(r: dict, slow: int, mode: str) -> None:
    print(f"[{r['variant']}]")
    for phase in ("before", "during"):
        x = r[phase]
        label = "no slow clients" if phase == "before" else f"{slow} slow clients ({mode})"
        print(f"  {label:<24} {x['answered']:6d} answered ({x['rps']:7.1f} req/s), {x['timeouts']:4d} timeouts, "
              f"{x['errors']:4d} errors;  p50 {x['p50_ms']:8.1f} ms  p99 {x['p99_ms']:8.1f} ms  "
              f"max {x['max_ms']:8.1f} ms")
    s = r["slow"]
    print(f"  slow connections: {s['open']} open at the end, {s['dropped']} dropped by the server, "
          f"{s['refused']} refused")
    workers = ", ".join(f"{p:.1f}" for p in r["worker_pss"])
    print(f"  PSS master {r['master_pss']:.1f} MiB, worker(s) {workers} MiB; worker threads {r['worker_threads']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="gthread,readme")
    parser.add_argument("--slow", type=int, default=64, help="slow connections")
    parser.add_argument("--seconds", type=float, default=10, help="length of each normal load")
    parser.add_argument("--clients", type=int, default=4, help="normal clients (threads)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between a slow client's bytes")
    parser.add_argument("--mode", choices=("trickle", "linger"), default="trickle",
                        help="trickle: requests sent a byte at a time; linger: connections left open after a "
                             "request that asked to close them")
    parser.add_argument("--timeout", type=float, default=5.0, help="a normal request's timeout, seconds")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-slowclients-") as instance:
        url = sqlite_url(instance)
        key = prepare(url, instance)[0]
        for variant in args.variants.split(","):
            try:
                report(bench_variant(variant, args, key, url, instance), args.slow, args.mode)
            except RuntimeError as exc:
                print(f"[{variant}]\n  {exc}")


if __name__ == "__main__":
    main()
