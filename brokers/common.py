"""Plumbing the HTTP broker adapters share: request pacing, the pooled HTTP session, the reading of
numbers and market-depth levels, and the HTTP library's exceptions.

A plain module, not a package: the registry discovers brokers as the packages of `brokers`, so this
is never taken for one. Nothing here imports `requests` at module level: it loads when an adapter
first builds its session, not when the registry discovers the adapters.
"""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from brokers.base import BrokerError, BrokerQuote, DepthLevel, ErrorKind, to_decimal

if TYPE_CHECKING:
    import requests

log = logging.getLogger("algobridge.broker")


class Pacer:
    """Spaces calls at least `1 / per_second` seconds apart across every thread (0: unpaced), so a
    long history asked in pieces stays under a broker's rate limit instead of meeting its 429 (or
    403) half-way. `clock` and `sleep` are time.monotonic and time.sleep but for tests."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            self._sleep(delay)

    def idle(self) -> bool:
        """Whether a call now would not wait (so the pacer holds no state worth keeping)."""
        with self._lock:
            return self._next <= self._clock()


class KeyedPacer:
    """One Pacer per key (an account: a broker's limits are per client, not per app), so one user's
    long history does not hold up another's. Pacers that have nothing to wait for are dropped once
    there are many, so keys that change daily (access tokens) do not pile up."""

    _PRUNE_AT = 256

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pacers: dict[str, Pacer] = {}

    def pacer(self, key: str) -> Pacer:
        """The key's Pacer (the same one for every call with the key)."""
        with self._lock:
            pacer = self._pacers.get(key)
            if pacer is None:
                if len(self._pacers) >= self._PRUNE_AT:
                    self._pacers = {k: p for k, p in self._pacers.items() if not p.idle()}
                pacer = self._pacers[key] = Pacer(0, clock=self._clock, sleep=self._sleep)
            pacer.interval = self.interval  # follows a change of the interval (tests unpace)
            return pacer

    def wait(self, key: str) -> None:
        if not self.interval:
            return
        self.pacer(key).wait()


def http_session(pool_size: int) -> requests.Session:
    """One pooled session for every user of an adapter, so an order does not pay for a new TLS
    handshake."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # One session serves every user of this adapter: never carry a cookie from one to another.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def requests_exceptions() -> tuple[type[BaseException] | tuple[()], type[BaseException] | tuple[()]]:
    """requests' (Timeout, RequestException) if requests is loaded; if it is not, nothing in the
    block can have raised one (and `except ()` matches nothing)."""
    module = sys.modules.get("requests.exceptions")
    if module is None:
        return (), ()
    return module.Timeout, module.RequestException


MAX_MESSAGE = 300  # characters of a broker's error message passed on


def short_message(message: Any) -> str:
    """A broker's error message on one line, cut to MAX_MESSAGE characters."""
    message = " ".join(str(message).split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


@contextmanager
def network_errors(label: str, operation: str) -> Iterator[None]:
    """The HTTP library's failures inside the block as BrokerErrors: a timeout is 504, anything else
    that kept the request from the broker `label` (e.g. "Dhan") is 503; both of kind NETWORK."""
    try:
        yield
    except requests_exceptions()[0] as exc:
        log.warning("%s %s timed out (%s)", label, operation, type(exc).__name__)
        raise BrokerError(f"{label} did not answer in time", status=504, kind=ErrorKind.NETWORK) from exc
    except requests_exceptions()[1] as exc:
        log.warning("%s %s could not reach the broker (%s)", label, operation, type(exc).__name__)
        raise BrokerError(f"Could not reach {label}", status=503, kind=ErrorKind.NETWORK) from exc


def to_int(value: Any) -> int:
    """A count from a broker's JSON: None or "" is 0, "12" and "12.0" are 12."""
    if value is None or value == "":
        return 0
    return int(Decimal(str(value)))


def depth_levels(levels: Any) -> tuple[DepthLevel, ...]:
    """Market-depth levels (dicts with price, quantity, orders), best first; the empty ones, which
    brokers pad with zeros, left out."""
    result = []
    for level in levels or ():
        price = to_decimal(level.get("price"))
        if price > 0:
            result.append(DepthLevel(price, to_int(level.get("quantity")), to_int(level.get("orders"))))
    return tuple(result)


def circuit_limit(value: Any) -> Decimal | None:
    """A circuit limit, None where there is none (indices and some contracts: the broker sends 0)."""
    price = to_decimal(value)
    return price if price > 0 else None


def kite_shaped_quote(data: Mapping[str, Any], timestamp: dt.datetime | None) -> BrokerQuote:
    """A full market quote in the shape Kite's /quote answers and Dhan's market quote copies (ohlc,
    depth buy/sell, last_price, volume, oi, last_quantity, buy/sell_quantity, circuit limits); the
    time, whose format differs, read by the caller."""
    ohlc = data.get("ohlc") or {}
    depth = data.get("depth") or {}
    bids, asks = depth_levels(depth.get("buy")), depth_levels(depth.get("sell"))
    return BrokerQuote(
        open=to_decimal(ohlc.get("open")),
        high=to_decimal(ohlc.get("high")),
        low=to_decimal(ohlc.get("low")),
        ltp=to_decimal(data.get("last_price")),
        ask=asks[0].price if asks else Decimal(0),
        bid=bids[0].price if bids else Decimal(0),
        prev_close=to_decimal(ohlc.get("close")),
        volume=to_int(data.get("volume")),
        oi=to_int(data.get("oi")),
        timestamp=timestamp,
        ltq=to_int(data.get("last_quantity")),
        total_buy_quantity=to_int(data.get("buy_quantity")),
        total_sell_quantity=to_int(data.get("sell_quantity")),
        bids=bids,
        asks=asks,
        upper_circuit=circuit_limit(data.get("upper_circuit_limit")),
        lower_circuit=circuit_limit(data.get("lower_circuit_limit")),
    )
