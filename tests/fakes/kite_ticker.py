"""A fake Kite ticker: a WebSocket server (RFC 6455, written on the standard library so that it
shares nothing with the client under test) speaking Kite's documented streaming protocol.

The client connects to `ws://host:port/?api_key=...&access_token=...`; a wrong key or token gets
HTTP 403, as Kite answers. Requests are JSON text messages `{"a": "subscribe" | "unsubscribe" |
"mode", "v": ...}`; a subscribed instrument starts in "quote" mode, as at Kite. Market data goes
out as binary messages: a packet count (int16), then each packet after its length (int16); packets
are 8 bytes (ltp), 44 (quote) or 184 (full, with five levels of depth a side), and 8/28/32 for an
index; prices are integers in paise (CDS: 10^-7, BCD and NCO: 10^-4 rupees). A one-byte message is
the heartbeat. Pings are answered with pongs.

The test drives the market: `set()` changes an instrument, `publish()` sends every connection a
message with each of its subscriptions in its mode, `drop()` cuts every connection without a close
frame, `go_silent()` makes the current connections stop answering (a half-dead link).
Use `running_ticker()` to serve it on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
API_KEY = "kitefakekey"
ACCESS_TOKEN = "kitefaketoken"  # noqa: S105 - the fake's own test credential
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's handshake constant
_SCALE = {3: 10**7, 6: 10**4, 12: 10**4}  # segment code -> price unit per rupee; others 100
INDEX_SEGMENT = 9


@dataclass(frozen=True)
class Instrument:
    """An instrument's market, prices in rupees as strings or ints (encoded to the segment's unit)."""

    token: int
    ltp: str
    ltq: int = 0
    average_price: str = "0"
    volume: int = 0
    total_buy_quantity: int = 0
    total_sell_quantity: int = 0
    open: str = "0"
    high: str = "0"
    low: str = "0"
    close: str = "0"
    ltt: dt.datetime | None = None
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    timestamp: dt.datetime | None = None
    bids: tuple[tuple[int, str, int], ...] = ()  # (quantity, price, orders), best first
    asks: tuple[tuple[int, str, int], ...] = ()


def _units(token: int, rupees: str) -> int:
    from decimal import Decimal

    return int(Decimal(str(rupees)) * _SCALE.get(token & 0xFF, 100))


def _epoch(moment: dt.datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def encode_packet(item: Instrument, mode: str) -> bytes:
    """One packet of Kite's binary format for `item` in `mode` ("ltp", "quote", "full")."""
    p = lambda value: _units(item.token, value)  # noqa: E731
    head = struct.pack(">Ii", item.token, p(item.ltp))
    if mode == "ltp":
        return head
    if item.token & 0xFF == INDEX_SEGMENT:
        change = p(item.ltp) - p(item.close)
        body = head + struct.pack(">iiiii", p(item.high), p(item.low), p(item.open), p(item.close), change)
        return body + struct.pack(">I", _epoch(item.timestamp)) if mode == "full" else body
    body = head + struct.pack(
        ">IiIIIiiii",
        item.ltq,
        p(item.average_price),
        item.volume,
        item.total_buy_quantity,
        item.total_sell_quantity,
        p(item.open),
        p(item.high),
        p(item.low),
        p(item.close),
    )
    if mode == "quote":
        return body
    body += struct.pack(">5I", _epoch(item.ltt), item.oi, item.oi_day_high, item.oi_day_low, _epoch(item.timestamp))
    for side in (item.bids, item.asks):
        levels = list(side[:5]) + [(0, "0", 0)] * (5 - len(side[:5]))
        body += b"".join(struct.pack(">IiH2x", qty, p(price), orders) for qty, price, orders in levels)
    return body


def encode_message(packets: list[bytes]) -> bytes:
    return struct.pack(">H", len(packets)) + b"".join(struct.pack(">H", len(pk)) + pk for pk in packets)


# -- the WebSocket side ----------------------------------------------------------------------------


class _Closed(Exception):
    pass


class Connection:
    """One client connection: its socket, subscriptions (token -> mode) and the requests it sent."""

    def __init__(self, sock: socket.socket, number: int):
        self.sock = sock
        self.number = number
        self.modes: dict[int, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.silent = False
        self.open = True
        self._send_lock = threading.Lock()

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise _Closed
            data += chunk
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next whole message; client frames are always masked."""
        opcode, payload = 0, b""
        while True:
            first, second = self._read(2)
            opcode = opcode or first & 0x0F
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack(">H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack(">Q", self._read(8))
            mask = self._read(4) if second & 0x80 else b"\0\0\0\0"
            data = self._read(length)
            payload += bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))
            if first & 0x80:
                return opcode, payload

    def send_frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = struct.pack(">BB", 0x80 | opcode, size)
        elif size < 2**16:
            header = struct.pack(">BBH", 0x80 | opcode, 126, size)
        else:
            header = struct.pack(">BBQ", 0x80 | opcode, 127, size)
        with self._send_lock:
            if self.open:
                try:
                    self.sock.sendall(header + payload)
                except OSError:
                    self.open = False

    def cut(self) -> None:
        """Close the TCP connection with no close frame, as a network failure would."""
        self.open = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@dataclass
class FakeTicker:
    api_key: str = API_KEY
    access_tokens: set[str] = field(default_factory=lambda: {ACCESS_TOKEN})
    instruments: dict[int, Instrument] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    handshakes: list[dict[str, str]] = field(default_factory=list)  # query and X-Kite-Version of each
    # Reentrant: a `wait` predicate may call the methods that take it.
    lock: threading.RLock = field(default_factory=threading.RLock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    # -- driving the market ------------------------------------------------------------------------

    def add(self, *items: Instrument) -> None:
        with self.lock:
            self.instruments.update((item.token, item) for item in items)

    def set(self, token: int, **fields: Any) -> Instrument:
        with self.lock:
            self.instruments[token] = replace(self.instruments[token], **fields)
            return self.instruments[token]

    def live(self) -> list[Connection]:
        with self.lock:
            return [c for c in self.connections if c.open]

    def publish(self) -> int:
        """Send every live connection its subscriptions' current ticks; the packets sent."""
        sent = 0
        for conn in self.live():
            if conn.silent:
                continue
            with self.lock:
                packets = [
                    encode_packet(self.instruments[t], m) for t, m in conn.modes.items() if t in self.instruments
                ]
            if packets:
                conn.send_frame(0x2, encode_message(packets))
                sent += len(packets)
        return sent

    def heartbeat(self) -> None:
        for conn in self.live():
            conn.send_frame(0x2, b"\x00")

    def send_text(self, message: dict[str, Any]) -> None:
        for conn in self.live():
            conn.send_frame(0x1, json.dumps(message).encode())

    def drop(self) -> None:
        for conn in self.live():
            conn.cut()

    def go_silent(self) -> None:
        for conn in self.live():
            conn.silent = True

    def wait(self, predicate: Callable[[FakeTicker], bool], timeout: float = 20.0) -> None:
        """Block until `predicate(self)` holds (checked at each change of a connection)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("the fake ticker did not reach the expected state")
                self.changed.wait(remaining)

    def subscriptions(self) -> dict[int, str]:
        """The subscriptions of the newest live connection."""
        with self.lock:
            live = [c for c in self.connections if c.open]
            return dict(live[-1].modes) if live else {}

    # -- serving -----------------------------------------------------------------------------------

    def serve(self, sock: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk or len(request) > 16384:
                return
            request += chunk
        head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        target = head[0].split(" ")[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
        with self.lock:
            self.handshakes.append({**query, "x-kite-version": headers.get("x-kite-version", "")})
        if query.get("api_key") != self.api_key or query.get("access_token") not in self.access_tokens:
            body = json.dumps(
                {
                    "status": "error",
                    "message": "Invalid access token or API key",
                    "data": None,
                    "error_type": "TokenException",
                }
            ).encode()
            sock.sendall(
                b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            return
        # RFC 6455 fixes SHA-1 for the handshake; it protects nothing.
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + _GUID).encode()).digest())  # noqa: S324
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        with self.changed:
            conn = Connection(sock, len(self.connections) + 1)
            self.connections.append(conn)
            self.changed.notify_all()
        try:
            self._talk(conn)
        except (_Closed, OSError):
            pass
        finally:
            with self.changed:
                conn.open = False
                self.changed.notify_all()

    def _talk(self, conn: Connection) -> None:
        while True:
            opcode, payload = conn.read_frame()
            if conn.silent:
                continue
            if opcode == 0x8:
                conn.send_frame(0x8, payload[:2])
                return
            if opcode == 0x9:
                conn.send_frame(0xA, payload)
            elif opcode == 0x1:
                self._request(conn, json.loads(payload))

    def _request(self, conn: Connection, message: dict[str, Any]) -> None:
        with self.changed:
            conn.requests.append(message)
            action, value = message.get("a"), message.get("v")
            if action == "subscribe":
                for token in value:
                    conn.modes.setdefault(int(token), "quote")
            elif action == "unsubscribe":
                for token in value:
                    conn.modes.pop(int(token), None)
            elif action == "mode":
                mode, tokens = value
                for token in tokens:
                    if int(token) in conn.modes:
                        conn.modes[int(token)] = mode
            self.changed.notify_all()


@dataclass
class RunningTicker:
    fake: FakeTicker
    url: str


@contextmanager
def running_ticker(fake: FakeTicker | None = None, port: int = 0) -> Iterator[RunningTicker]:
    fake = fake or FakeTicker()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            fake.serve(self.request)

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True  # a test may bring the ticker up on a port it used before
        daemon_threads = True

    server = Server(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-kite-ticker", daemon=True)
    thread.start()
    try:
        yield RunningTicker(fake, f"ws://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        for conn in fake.connections:
            conn.cut()
        thread.join(timeout=5)
