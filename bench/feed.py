"""Benchmark: the feed's fan-out against a bare broadcast with the same library, in the same run.

    .venv/bin/python -m bench.feed [--clients 200] [--symbols 50] [--rate 10] [--seconds 10]

Two servers, each in a process of its own on a free port, one after the other:
  1. floor ("bare"): a websockets server that, `--rate` times a second, serialises one market_data frame
     per symbol and hands it to websockets' broadcast() for every connection: no protocol, no hub;
  2. feed: feed.server.FeedServer (embedded SQLite in a temporary instance): the clients authenticate with
     an API key and subscribe to every symbol in LTP mode through the protocol; ticks come from a synthetic
     source at `--rate` per symbol (the simulator ticks once a second; the hub, the per-mode frames, the slow
     client checks and the sends are what is measured).
`--clients` connections (every one subscribed to every symbol) run in this process. Each message carries
its server time (`timestamp`, epoch ms, taken when the tick is made); delivery latency is receive time
minus it. Reported per server: messages delivered per second, expected per second, latency p50/p99 (ms),
the server's CPU (% of one core) and RSS (MB). Targets: p99 <= 50 ms; feed throughput >= 0.5 of the bare
broadcast's. Clients and servers share the machine (say how many cores and how busy: the load average is
printed); a client process that cannot keep up raises both servers' latency alike.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def _symbols(n: int) -> list[str]:
    return [f"SYM{i:03d}" for i in range(n)]


# -- the servers (run in a child process: `python -m bench.feed --serve bare|feed`) ------------------------
async def _bare(port: int, symbols: list[str], rate: float) -> None:
    from websockets.asyncio.server import broadcast, serve

    clients = set()

    async def handler(ws):
        clients.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, max_queue=64):
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        n = 0
        start = loop.time()
        while True:
            now = int(time.time() * 1000)
            for s in symbols:
                frame = orjson.dumps({"type": "market_data", "symbol": s, "exchange": "NSE", "mode": 1,
                                      "broker": "paper", "data": {"ltp": 100.0 + n % 7, "ltt": now, "timestamp": now}})
                broadcast(clients, frame.decode())
            n += 1
            await asyncio.sleep(max(0.0, start + n / rate - loop.time()))


class _SyntheticSource:
    """Stands in for the simulator: every subscribed symbol ticks `rate` times a second."""

    key, broker = "analyze", "paper"

    def __init__(self, emit, rate: float) -> None:
        self.emit, self.rate, self.items, self.task = emit, rate, set(), None

    def lookup(self, symbol: str, exchange: str) -> None:
        return None

    async def subscribe(self, items, mode) -> None:
        self.items.update(items)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop())

    async def unsubscribe(self, items) -> None:
        self.items.difference_update(items)

    async def close(self) -> None:
        if self.task:
            self.task.cancel()

    async def _loop(self) -> None:
        from feed.protocol import Tick

        loop = asyncio.get_running_loop()
        n, start = 0, loop.time()
        while True:
            now = int(time.time() * 1000)
            for symbol, exchange in list(self.items):
                self.emit(self.key, Tick(symbol=symbol, exchange=exchange, ltp=100.0 + n % 7, ltt=now, timestamp=now))
            n += 1
            await asyncio.sleep(max(0.0, start + n / self.rate - loop.time()))


def _feed(port: int, rate: float, instance: str, clients: int, symbols: int) -> None:
    from app import create_app
    from database.unit import unit_of_work
    from feed.server import FeedServer
    from services.accounts import api_keys
    from services.accounts import users as accounts

    app = create_app({"INSTANCE_PATH": instance, "SCHEDULER_ENABLED": False, "SAMPLE_CONTRACT": False,
                      # One key for every bench client: its limits sized to the load, not the defaults per trader.
                      "WEBSOCKET_MAX_CONNECTIONS_PER_KEY": clients + 10,
                      "WEBSOCKET_MAX_SUBSCRIPTIONS_PER_KEY": clients * symbols + 10})
    with app.app_context():
        with unit_of_work():
            user = accounts.create_first_admin("bench", "bench-password-123456")
        _row, key = api_keys.create_key(user, "bench", ["data"])
    server = FeedServer(app, host="127.0.0.1", port=port)
    server.simulator = _SyntheticSource(server.publish, rate)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(server.serve())
        while server.port_bound is None:
            await asyncio.sleep(0.05)
        print("READY", key, flush=True)
        await task

    asyncio.run(main())


# -- the clients ---------------------------------------------------------------------------------------
# A Python client decoding every frame would be the bottleneck (100,000 frames/s on the same cores as the
# servers), so the clients read the socket raw: after the handshake, each read counts the market_data
# frames in the bytes (server frames are unmasked, JSON verbatim) and takes the latency of the last
# timestamp in them. Both servers are read the same way.
_TS = re.compile(rb'"timestamp":(\d+)')
_MARK = b'"type":"market_data"'


def _frame(text: str) -> bytes:
    """A masked client text frame (mask key zero: the payload goes as is)."""
    data = text.encode()
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + b"\0\0\0\0" + data


async def _client(port: int, key: str | None, symbols: list[str], stop: asyncio.Event, out: list[float],
                  counts: list[int], ready: asyncio.Event, n_ready: list[int], total: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    nonce = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    if key is not None:
        writer.write(_frame(json.dumps({"action": "authenticate", "api_key": key})))
        writer.write(_frame(json.dumps({"action": "subscribe", "mode": 1,
                                        "symbols": [{"symbol": s, "exchange": "NSE"} for s in symbols]})))
    n_ready[0] += 1
    if n_ready[0] == total:
        ready.set()
    while not stop.is_set():
        chunk = await reader.read(1 << 16)
        if not chunk:
            break
        if not ready.is_set():
            continue
        counts[0] += chunk.count(_MARK)
        stamps = _TS.findall(chunk[-400:])
        if stamps:
            out.append(time.time() * 1000 - int(stamps[-1]))
    writer.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _measure(port: int, key: str | None, pid: int, args) -> dict:
    symbols = _symbols(args.symbols)
    stop, ready = asyncio.Event(), asyncio.Event()
    lat: list[float] = []
    counts, n_ready = [0], [0]
    tasks = [asyncio.create_task(_client(port, key, symbols, stop, lat, counts, ready, n_ready, args.clients))
             for _ in range(args.clients)]
    await asyncio.wait_for(ready.wait(), 120)
    await asyncio.sleep(2.0)  # warm-up: subscriptions answered, first ticks
    counts[0], lat[:] = 0, []
    cpu0, t0 = _cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(args.seconds)
    cpu1, t1 = _cpu_seconds(pid), time.monotonic()
    delivered = counts[0]
    rss = _rss_mb(pid)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) > 100 else [float("nan")] * 99
    return {"msgs_per_s": delivered / (t1 - t0), "expected_per_s": args.clients * args.symbols * args.rate,
            "p50_ms": q[49], "p99_ms": q[98], "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "rss_mb": rss}


def _run(kind: str, args) -> dict:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as instance:
        cmd = [PY, "-m", "bench.feed", "--serve", kind, "--port", str(port), "--instance", instance,
               "--symbols", str(args.symbols), "--rate", str(args.rate), "--clients", str(args.clients)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline().split()
            if not line or line[0] != "READY":
                raise SystemExit(f"the {kind} server did not start")
            key = line[1] if len(line) > 1 else None
            return asyncio.run(_measure(port, key, proc.pid, args))
        finally:
            proc.terminate()
            proc.wait(15)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--serve", choices=("bare", "feed"))
    ap.add_argument("--port", type=int)
    ap.add_argument("--instance")
    args = ap.parse_args()
    if args.serve == "bare":
        asyncio.run(_bare(args.port, _symbols(args.symbols), args.rate))
        return
    if args.serve == "feed":
        _feed(args.port, args.rate, args.instance, args.clients, args.symbols)
        return
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()}")
    print(f"{args.clients} clients x {args.symbols} symbols x {args.rate:g} ticks/s, {args.seconds:g} s measured")
    results = {kind: _run(kind, args) for kind in ("bare", "feed")}
    for kind, r in results.items():
        print(f"{kind:5s} delivered {r['msgs_per_s']:9.0f}/s of {r['expected_per_s']:.0f}/s  p50 {r['p50_ms']:7.1f} ms"
              f"  p99 {r['p99_ms']:7.1f} ms  server CPU {r['cpu_pct']:5.1f}%  RSS {r['rss_mb']:6.1f} MB")
    ratio = results["feed"]["msgs_per_s"] / results["bare"]["msgs_per_s"]
    print(f"throughput ratio feed/bare {ratio:.2f} (target >= 0.5); feed p99 {results['feed']['p99_ms']:.1f} ms "
          f"(target <= 50)")


if __name__ == "__main__":
    main()
