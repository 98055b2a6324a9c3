"""The feed's wire format: OpenAlgo's WebSocket messages (docs: /work/shared/API.md "WebSocket feed"; the
`openalgo` SDK's feed client is what clients really send and expect). Pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

LTP, QUOTE, DEPTH = 1, 2, 3
MODE_NAMES = {LTP: "LTP", QUOTE: "Quote", DEPTH: "Depth"}
_BY_NAME = {"ltp": LTP, "quote": QUOTE, "depth": DEPTH, "full": DEPTH}
FEATURES = ["ltp", "quote", "depth", "order_updates"]

# error codes (OpenAlgo's names)
AUTHENTICATION_ERROR = "AUTHENTICATION_ERROR"
NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
INVALID_MODE = "INVALID_MODE"
INVALID_PARAMETERS = "INVALID_PARAMETERS"
INVALID_JSON = "INVALID_JSON"
INVALID_ACTION = "INVALID_ACTION"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"

Level = tuple[float, int, int]  # price, quantity, orders


class ProtocolError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def dumps(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "code": code, "message": message, **extra}


def parse(raw: str | bytes) -> dict[str, Any]:
    """A client frame as a dict with its `action` (OpenAlgo also accepts `type`), lower-cased."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolError(INVALID_JSON, "Message is not valid JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError(INVALID_JSON, "Message must be a JSON object")
    action = msg.get("action", msg.get("type"))
    if not isinstance(action, str) or not action:
        raise ProtocolError(INVALID_ACTION, "Message needs an action")
    msg["action"] = action.strip().lower()
    return msg


def parse_mode(value: Any, default: int = QUOTE) -> int:
    """1, 2, 3 (or their strings), or the names LTP, Quote, Depth."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise ProtocolError(INVALID_MODE, f"Invalid mode {value!r}: use 1 (LTP), 2 (Quote) or 3 (Depth)")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _BY_NAME:
            return _BY_NAME[text]
        value = int(text) if text.isdigit() else text
    if value in MODE_NAMES:
        return int(value)
    raise ProtocolError(INVALID_MODE, f"Invalid mode {value!r}: use 1 (LTP), 2 (Quote) or 3 (Depth)")


def instruments(msg: dict[str, Any], *, with_mode: bool) -> list[tuple[str, str, int | None]]:
    """(symbol, exchange, mode or None) of a subscribe/unsubscribe: one instrument, or `symbols: [...]`."""
    items = msg.get("symbols")
    if items is None:
        items = [msg]
    if not isinstance(items, list) or not items:
        raise ProtocolError(INVALID_PARAMETERS, "symbols must be a non-empty list of {symbol, exchange}")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise ProtocolError(INVALID_PARAMETERS, "each instrument needs symbol and exchange")
        symbol, exchange = item.get("symbol"), item.get("exchange")
        if not isinstance(symbol, str) or not symbol.strip() or not isinstance(exchange, str) or not exchange.strip():
            raise ProtocolError(INVALID_PARAMETERS, "each instrument needs symbol and exchange")
        mode = item.get("mode", msg.get("mode")) if with_mode else None
        out.append((symbol.strip().upper(), exchange.strip().upper(), mode))
    return out


@dataclass(frozen=True, slots=True)
class Tick:
    """One instrument's market state, whatever the source (simulator or a broker's stream). Times epoch ms."""

    symbol: str
    exchange: str
    ltp: float
    ltt: int
    timestamp: int
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0  # the previous close
    volume: int = 0
    ltq: int = 0
    average_price: float = 0.0
    total_buy_quantity: int = 0
    total_sell_quantity: int = 0
    oi: int = 0
    upper_circuit: float = 0.0
    lower_circuit: float = 0.0
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()

    def data(self, mode: int) -> dict[str, Any]:
        """The `data` of a market_data message in `mode`: each mode adds to the one below it."""
        data: dict[str, Any] = {"ltp": self.ltp, "ltt": self.ltt, "timestamp": self.timestamp}
        if mode >= QUOTE:
            change = self.ltp - self.close if self.close else 0.0
            data.update(open=self.open, high=self.high, low=self.low, close=self.close, volume=self.volume,
                        last_trade_quantity=self.ltq, average_price=self.average_price,
                        avg_trade_price=self.average_price, total_buy_quantity=self.total_buy_quantity,
                        total_sell_quantity=self.total_sell_quantity, oi=self.oi, change=round(change, 4),
                        change_percent=round(change / self.close * 100, 4) if self.close else 0.0)
        if mode >= DEPTH:
            data.update(upper_circuit=self.upper_circuit, lower_circuit=self.lower_circuit, depth={
                "buy": [{"price": p, "quantity": q, "orders": o} for p, q, o in self.bids],
                "sell": [{"price": p, "quantity": q, "orders": o} for p, q, o in self.asks]})
        return data

    def frame(self, mode: int, broker: str) -> bytes:
        return dumps({"type": "market_data", "symbol": self.symbol, "exchange": self.exchange, "mode": mode,
                      "broker": broker, "data": self.data(mode)})

    def to_wire(self) -> bytes:
        """For the Redis bus."""
        return orjson.dumps([getattr(self, f) for f in self.__slots__])

    @classmethod
    def from_wire(cls, raw: bytes) -> Tick:
        values = orjson.loads(raw)
        values[-2:] = [tuple(tuple(level) for level in side) for side in values[-2:]]
        return cls(*values)
