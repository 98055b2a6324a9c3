"""Zerodha's live market data: Kite's WebSocket ticker, as a `BrokerStream`.

The connection is kiteconnect's `KiteTicker` (autobahn on Twisted), with its reconnect and backoff.
Around it this module keeps what a bridge needs and the client does not: the subscriptions survive
a drop (sent again on every connect), a silent connection is found by WebSocket pings, a refused
session stops the retries, the server's certificate is verified, and ticks are parsed here (Kite's
documented binary packets) into `StreamTick`s with exact `Decimal` prices and aware times.

Every stream of the process shares Twisted's one reactor, run on a daemon thread started with the
first stream; all socket work happens there, and so do the callbacks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import struct
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from kiteconnect import KiteTicker

from brokers.base import BrokerError, BrokerStream, DepthLevel, ErrorKind, StreamMode, StreamTick
from brokers.zerodha.mapping import KITE_TZ

log = logging.getLogger("algobridge.broker")

MAX_INSTRUMENTS = 3000  # Kite's limit per WebSocket connection
# Kite's quote packet has neither open interest nor the last trade's time, which OpenAlgo's quote
# mode carries: both of our higher modes ask for Kite's full packet.
KITE_MODES = {StreamMode.LTP: "ltp", StreamMode.QUOTE: "full", StreamMode.DEPTH: "full"}

# Segment codes (the low byte of an instrument token) whose prices have other than two decimals.
_SEGMENT_DECIMALS = {3: 7, 6: 4, 12: 4}  # CDS; BCD and NCO
_INDICES = 9
_DEPTH_LEVEL = struct.Struct(">IiH2x")  # quantity, price, orders, padding
_MAX_TOKEN = 2**32 - 1
# How autobahn reports a handshake Kite answered with 401/403: the session is dead, retrying cannot help.
_REFUSED = re.compile(r"upgrade failed \((401|403)\b")


# -- the binary format -----------------------------------------------------------------------------


def _time(seconds: int) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(seconds, KITE_TZ) if seconds > 0 else None


def _levels(packet: bytes, start: int, scale: int) -> tuple[DepthLevel, ...]:
    levels = []
    for offset in range(start, start + 5 * _DEPTH_LEVEL.size, _DEPTH_LEVEL.size):
        quantity, price, orders = _DEPTH_LEVEL.unpack_from(packet, offset)
        if quantity or price:
            levels.append(DepthLevel(Decimal(price).scaleb(-scale), quantity, orders))
    return tuple(levels)


def parse_packet(packet: bytes, received: dt.datetime) -> StreamTick | None:
    """One quote packet of Kite's ticker as a tick, or None for a length Kite does not document.

    Prices are integers in the segment's smallest unit. Lengths: 8 LTP; 28/32 an index's quote/full
    (no volume or depth; its OHLC is ordered high, low, open, close); 44/184 quote/full.
    """
    size = len(packet)
    if size < 8:
        return None
    token, ltp = struct.unpack_from(">Ii", packet)
    scale = _SEGMENT_DECIMALS.get(token & 0xFF, 2)

    def price(offset: int) -> Decimal:
        return Decimal(struct.unpack_from(">i", packet, offset)[0]).scaleb(-scale)

    tick: dict[str, Any] = {"token": str(token), "ltp": Decimal(ltp).scaleb(-scale), "timestamp": received}
    if size == 8:
        return StreamTick(**tick)
    if size in (28, 32) and token & 0xFF == _INDICES:
        tick.update(mode=StreamMode.QUOTE, high=price(8), low=price(12), open=price(16), close=price(20))
        if size == 32:
            tick["timestamp"] = _time(struct.unpack_from(">I", packet, 28)[0]) or received
        return StreamTick(**tick)
    if size not in (44, 184):
        return None
    ltq, _, volume, buys, sells = struct.unpack_from(">IiIII", packet, 8)
    tick.update(
        mode=StreamMode.QUOTE,
        ltq=ltq,
        average_price=price(12),
        volume=volume,
        total_buy_quantity=buys,
        total_sell_quantity=sells,
        open=price(28),
        high=price(32),
        low=price(36),
        close=price(40),
    )
    if size == 184:
        ltt, oi, _, _, stamp = struct.unpack_from(">5I", packet, 44)
        tick.update(
            mode=StreamMode.DEPTH,
            ltt=_time(ltt),
            oi=oi,
            timestamp=_time(stamp) or received,
            bids=_levels(packet, 64, scale),
            asks=_levels(packet, 64 + 5 * _DEPTH_LEVEL.size, scale),
        )
    return StreamTick(**tick)


def parse_message(payload: bytes, received: dt.datetime) -> list[StreamTick]:
    """The ticks of one binary message: a packet count, then each packet after its length.

    Kite's one-byte heartbeat has none; a truncated message yields the packets before the cut.
    """
    ticks: list[StreamTick] = []
    if len(payload) < 2:
        return ticks
    (count,) = struct.unpack_from(">H", payload)
    offset = 2
    for _ in range(count):
        if offset + 2 > len(payload):
            break
        (size,) = struct.unpack_from(">H", payload, offset)
        packet = payload[offset + 2 : offset + 2 + size]
        offset += 2 + size
        if len(packet) < size:
            break
        tick = parse_packet(packet, received)
        if tick is not None:
            ticks.append(tick)
    return ticks


# -- the connection --------------------------------------------------------------------------------

_reactor_lock = threading.Lock()
_reactor_thread: threading.Thread | None = None


def in_reactor(function: Callable[..., Any], *args: Any) -> None:
    """Run `function(*args)` on the reactor's thread, starting that thread the first time."""
    global _reactor_thread
    from twisted.internet import reactor

    with _reactor_lock:
        if _reactor_thread is None and not reactor.running:
            # No signal handlers: the process that owns this thread owns its signals.
            _reactor_thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False}, name="kite-ticker", daemon=True
            )
            _reactor_thread.start()
    reactor.callFromThread(function, *args)


class _Ticker(KiteTicker):
    """KiteTicker connecting with a verified certificate (its own `connect` checks none, and the
    access token travels in the URL), pinging the server, and leaving the reactor to us."""

    def open(self, first_retry_delay: float, ping_interval: float, ping_timeout: float) -> None:
        from autobahn.twisted.websocket import connectWS
        from twisted.internet.ssl import optionsForClientTLS

        self._create_connection(self.socket_url, useragent=self._user_agent(), headers={"X-Kite-Version": "3"})
        factory = self.factory
        factory.setProtocolOptions(autoPingInterval=ping_interval, autoPingTimeout=ping_timeout)
        # Twisted multiplies the delay before each retry: start so that the first wait is the one asked.
        factory.initialDelay = factory.delay = first_retry_delay / factory.factor
        tls = optionsForClientTLS(urlsplit(self.root).hostname or "") if factory.isSecure else None
        connectWS(factory, contextFactory=tls, timeout=self.connect_timeout)


def _token(value: str) -> int:
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= _MAX_TOKEN:
        raise BrokerError(f"Not a Kite instrument token: {text[:40]!r}", status=400, kind=ErrorKind.INPUT)
    return int(text)


class KiteStream(BrokerStream):
    """One Kite ticker connection for one session (Kite allows three per API key)."""

    def __init__(
        self,
        api_key: str,
        access_token: str,
        on_tick: Callable[[StreamTick], None],
        on_status: Callable[[str, str], None],
        *,
        root: str,
        first_retry_delay: float = 1.0,
        max_retry_delay: float = 30.0,
        max_retries: int = 300,
        connect_timeout: float = 15.0,
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ):
        """`root` is the ticker's URL (Kite's: wss://ws.kite.trade). `clock` stamps ticks that carry no
        exchange time. Retries wait `first_retry_delay` seconds, growing to `max_retry_delay`."""
        if urlsplit(root).scheme not in ("ws", "wss"):
            raise BrokerError(f"Not a WebSocket URL: {root!r}", kind=ErrorKind.CONFIG)
        self._on_tick = on_tick
        self._on_status = on_status
        self._clock = clock
        self._ticker = _Ticker(
            api_key,
            access_token,
            root=root,
            reconnect_max_tries=max_retries,
            reconnect_max_delay=max_retry_delay,
            connect_timeout=connect_timeout,
        )
        self._ticker.on_open = self._opened
        self._ticker.on_close = self._lost
        self._ticker.on_message = self._message
        self._ticker.on_reconnect = self._retrying
        self._ticker.on_noreconnect = self._gave_up
        self._lock = threading.Lock()
        self._modes: dict[int, str] = {}  # token -> Kite mode: what to stream, connected or not
        self._closed = False  # asked to close (any thread)
        self._reported_closed = False  # reactor thread only
        in_reactor(self._start, first_retry_delay, ping_interval, ping_timeout)

    def __repr__(self) -> str:
        return f"<KiteStream {len(self._modes)} instruments>"

    # -- the interface (any thread) ----------------------------------------------------------------

    def subscribe(self, tokens: list[str], mode: int) -> None:
        try:
            kite_mode = KITE_MODES[StreamMode(mode)]
        except ValueError as exc:
            raise BrokerError(f"Unknown stream mode {mode!r}", status=400, kind=ErrorKind.INPUT) from exc
        wanted = list(dict.fromkeys(_token(token) for token in tokens))
        if not wanted:
            return
        with self._lock:
            if self._closed:
                raise BrokerError("The Zerodha stream is closed", kind=ErrorKind.NETWORK)
            if len(self._modes.keys() | wanted) > MAX_INSTRUMENTS:
                raise BrokerError(
                    f"Kite streams at most {MAX_INSTRUMENTS} instruments per connection",
                    status=400,
                    kind=ErrorKind.INPUT,
                )
            self._modes.update(dict.fromkeys(wanted, kite_mode))
        in_reactor(self._send_subscription, wanted, kite_mode)

    def unsubscribe(self, tokens: list[str]) -> None:
        with self._lock:
            gone = [token for token in dict.fromkeys(map(_token, tokens)) if self._modes.pop(token, None)]
        if gone:
            in_reactor(self._send, {"a": "unsubscribe", "v": gone})

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._modes.clear()
        in_reactor(self._shut)

    # -- on the reactor's thread -------------------------------------------------------------------

    def _start(self, *options: float) -> None:
        try:
            self._ticker.open(*options)
        except Exception as exc:  # raised here it would only reach Twisted's log, which nobody reads
            log.exception("Zerodha ticker: could not start")
            self._closed = True
            self._status("closed", f"Could not open the Zerodha stream ({type(exc).__name__})")

    def _send(self, message: dict[str, Any]) -> None:
        if not self._ticker.is_connected():
            return  # sent with everything else when the connection opens
        try:
            self._ticker.ws.sendMessage(json.dumps(message).encode())
        except Exception:  # the connection broke under us: the reconnect sends it again
            log.warning("Zerodha ticker: could not send %s", message.get("a"), exc_info=True)

    def _send_subscription(self, tokens: list[int], kite_mode: str) -> None:
        self._send({"a": "subscribe", "v": tokens})
        self._send({"a": "mode", "v": [kite_mode, tokens]})

    def _status(self, status: str, text: str) -> None:
        if self._reported_closed:
            return
        self._reported_closed = status == "closed"
        log.info("Zerodha ticker %s: %s", status, text)
        try:
            self._on_status(status, text)
        except Exception:
            log.exception("Zerodha ticker: the status callback failed")

    def _opened(self, _ticker: KiteTicker) -> None:
        with self._lock:
            if self._closed:
                return
            by_mode: dict[str, list[int]] = {}
            for token, kite_mode in self._modes.items():
                by_mode.setdefault(kite_mode, []).append(token)
        for kite_mode, tokens in by_mode.items():
            self._send_subscription(tokens, kite_mode)
        self._status("connected", f"Connected to Zerodha, streaming {sum(map(len, by_mode.values()))} instruments")

    def _message(self, _ticker: KiteTicker, payload: bytes, is_binary: bool) -> None:
        if not is_binary:
            return  # order postbacks and notices: orders are followed through the journal
        try:
            ticks = parse_message(payload, self._clock())
        except (struct.error, ValueError):
            log.warning("Zerodha ticker: unreadable message of %d bytes", len(payload))
            return
        for tick in ticks:
            try:
                self._on_tick(tick)
            except Exception:
                log.exception("Zerodha ticker: the tick callback failed")

    def _lost(self, _ticker: KiteTicker, code: int | None, reason: str | None) -> None:
        if self._closed:
            return
        reason = str(reason or "no reason given")
        if _REFUSED.search(reason):
            self._ticker.stop_retry()
            self._status("closed", f"Zerodha refused the stream ({reason}): log in to Zerodha again")
        else:
            self._status("reconnecting", f"Zerodha stream lost ({reason}), reconnecting")

    def _retrying(self, _ticker: KiteTicker, attempt: int) -> None:
        if not self._closed:
            self._status("reconnecting", f"Reconnecting to Zerodha (attempt {attempt})")

    def _gave_up(self, _ticker: KiteTicker) -> None:
        self._status("closed", "Gave up reconnecting to Zerodha")

    def _shut(self) -> None:
        if getattr(self._ticker, "factory", None) is None:  # it never started
            self._status("closed", "Zerodha stream closed")
            return
        self._ticker.stop_retry()
        if self._ticker.is_connected():
            self._ticker.ws.sendClose(1000, "closed by the bridge")
        elif self._ticker.ws is not None:
            self._ticker.ws.dropConnection(abort=True)
        self._status("closed", "Zerodha stream closed")
