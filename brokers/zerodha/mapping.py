"""Kite Connect codes and records, mapped to ours.

Kite's field names and values are those of the Kite Connect v3 documentation (orders, portfolio,
user margins, market quotes, historical candles, margin calculation). Times without a zone are
Kite's: IST (`KITE_TZ`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from brokers.base import (
    BrokerCandle,
    BrokerFunds,
    BrokerHolding,
    BrokerMargin,
    BrokerOrder,
    BrokerPosition,
    BrokerProfile,
    BrokerQuote,
    BrokerTrade,
    MarginOrder,
    exchange_time,
    to_decimal,
)
from brokers.common import kite_shaped_quote, to_int
from vocabulary import OrderStatus, PriceType, Product

log = logging.getLogger("algobridge.broker")

VARIETY = "regular"
VALIDITY = "DAY"

# Kite documents its timestamps (order, fill, quote, login times) and its daily 06:00 session flush in
# Indian Standard Time: a fact of the broker, whatever our EXCHANGE_TIMEZONE setting says.
KITE_TZ = ZoneInfo("Asia/Kolkata")

# Kite's status -> ours. An order passes through several interim states on its way to the exchange or
# while it is modified or cancelled; all of them are still live orders, i.e. "open".
_FINAL_STATUSES: dict[str, OrderStatus] = {
    "OPEN": OrderStatus.OPEN,
    "COMPLETE": OrderStatus.COMPLETE,
    "CANCELLED": OrderStatus.CANCELLED,
    "CANCELLED AMO": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "TRIGGER PENDING": OrderStatus.TRIGGER_PENDING,
}
INTERIM_STATUSES = frozenset(
    {
        "PUT ORDER REQ RECEIVED",
        "PUT ORDER REQUEST RECEIVED",
        "AMO REQ RECEIVED",
        "VALIDATION PENDING",
        "OPEN PENDING",
        "MODIFY VALIDATION PENDING",
        "MODIFY PENDING",
        "MODIFIED",
        "CANCEL PENDING",
        "TRIGGER PENDING MODIFY",
        "UPDATE",
    }
)

# Our order codes are Kite's own for these (Kite's order_type and product values are spelled as our
# price types and products); anything else Kite reports is folded into the nearest.
PRICE_TYPES = frozenset(PriceType)
_PRODUCTS: dict[str, str] = {
    **{p.value: p.value for p in Product},
    "MTF": Product.CNC.value,  # margin trading: a delivery position
    "CO": Product.MIS.value,  # cover and bracket orders are intraday
    "BO": Product.MIS.value,
}


def order_status(kite_status: str | None) -> OrderStatus:
    status = (kite_status or "").strip().upper()
    if status in _FINAL_STATUSES:
        return _FINAL_STATUSES[status]
    if status not in INTERIM_STATUSES:
        # Treated as live: the safe side (it can still be cancelled), and visible in the log.
        log.warning("Unknown Zerodha order status %r, treated as open", kite_status)
    return OrderStatus.OPEN


def product(kite_product: str | None) -> str:
    value = (kite_product or "").upper()
    return _PRODUCTS.get(value, value)


def _time(value: Any) -> dt.datetime | None:
    # One odd timestamp must not sink a whole order book; the time is informative only.
    try:
        return exchange_time(value, KITE_TZ)
    except ValueError:
        log.debug("Unreadable Zerodha timestamp %r ignored", value)
        return None


def to_order(row: Mapping[str, Any]) -> BrokerOrder:
    return BrokerOrder(
        orderid=str(row["order_id"]),
        symbol=row["tradingsymbol"],
        exchange=row["exchange"],
        action=str(row["transaction_type"]).upper(),
        quantity=to_int(row.get("quantity")),
        filled_quantity=to_int(row.get("filled_quantity")),
        price=to_decimal(row.get("price")),
        average_price=to_decimal(row.get("average_price")),
        trigger_price=to_decimal(row.get("trigger_price")),
        pricetype=str(row.get("order_type") or "").upper(),
        product=product(row.get("product")),
        status=order_status(row.get("status")),
        status_message=row.get("status_message") or None,
        timestamp=_time(row.get("order_timestamp") or row.get("exchange_timestamp")),
        broker_status=str(row.get("status") or ""),
        tag=row.get("tag") or None,
    )


def to_trade(row: Mapping[str, Any]) -> BrokerTrade:
    return BrokerTrade(
        tradeid=str(row["trade_id"]),
        orderid=str(row["order_id"]),
        symbol=row["tradingsymbol"],
        exchange=row["exchange"],
        action=str(row["transaction_type"]).upper(),
        quantity=to_int(row.get("quantity")),
        average_price=to_decimal(row.get("average_price")),
        product=product(row.get("product")),
        # A trade's order_timestamp is a bare time of day; the fill time is the one that matters.
        timestamp=_time(row.get("fill_timestamp") or row.get("exchange_timestamp")),
    )


def to_position(row: Mapping[str, Any]) -> BrokerPosition:
    return BrokerPosition(
        symbol=row["tradingsymbol"],
        exchange=row["exchange"],
        product=product(row.get("product")),
        quantity=to_int(row.get("quantity")),
        average_price=to_decimal(row.get("average_price")),
        ltp=to_decimal(row.get("last_price")),
        pnl=to_decimal(row.get("pnl")),
        realised_pnl=to_decimal(row.get("realised")),
        unrealised_pnl=to_decimal(row.get("unrealised")),
    )


def to_holding(row: Mapping[str, Any]) -> BrokerHolding:
    return BrokerHolding(
        symbol=row["tradingsymbol"],
        exchange=row["exchange"],
        product=product(row.get("product") or "CNC"),
        quantity=to_int(row.get("quantity")),  # Kite's net quantity: settled plus T1
        average_price=to_decimal(row.get("average_price")),
        ltp=to_decimal(row.get("last_price")),
        pnl=to_decimal(row.get("pnl")),
    )


def to_funds(margins: Mapping[str, Any]) -> BrokerFunds:
    """Equity and commodity segments added up (Kite keeps one balance per segment)."""
    total = dict.fromkeys(("availablecash", "collateral", "m2mrealized", "m2munrealized", "utiliseddebits"), Decimal(0))
    for segment in ("equity", "commodity"):
        data = margins.get(segment) or {}
        if not data or data.get("enabled") is False:
            continue
        available = data.get("available") or {}
        utilised = data.get("utilised") or {}
        total["availablecash"] += to_decimal(data.get("net"))
        total["collateral"] += to_decimal(available.get("collateral"))
        total["m2mrealized"] += to_decimal(utilised.get("m2m_realised"))
        total["m2munrealized"] += to_decimal(utilised.get("m2m_unrealised"))
        total["utiliseddebits"] += to_decimal(utilised.get("debits"))
    return BrokerFunds(**total)


def to_quote(data: Mapping[str, Any]) -> BrokerQuote:
    return kite_shaped_quote(data, _time(data.get("timestamp")))


# -- history ---------------------------------------------------------------------------------------

# Our interval code -> Kite's, and the longest range (days) Kite serves in one request for it
# (Kite Connect's historical API limits: minute 60 days; 3, 5, 10 minutes 100; 15, 30 minutes 200;
# 60 minutes 400; day 2000). Longer ranges are asked for in pieces.
INTERVALS: dict[str, tuple[str, int]] = {
    "1m": ("minute", 60),
    "3m": ("3minute", 100),
    "5m": ("5minute", 100),
    "10m": ("10minute", 100),
    "15m": ("15minute", 200),
    "30m": ("30minute", 200),
    "1h": ("60minute", 400),
    "D": ("day", 2000),
}
KITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def kite_time(moment: dt.datetime) -> str:
    """An aware moment as Kite's `from`/`to` parameter: a wall time in IST, whole seconds."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(KITE_TZ).strftime(KITE_TIME_FORMAT)


def to_candle(record: Mapping[str, Any]) -> BrokerCandle:
    """A candle as the kiteconnect client hands it over: {date, open, high, low, close, volume, oi?},
    `date` parsed from Kite's "2024-01-01T09:15:00+0530"."""
    moment = exchange_time(record["date"], KITE_TZ)
    if moment is None:
        raise ValueError("a candle without a time")
    return BrokerCandle(
        timestamp=moment.astimezone(KITE_TZ),
        open=to_decimal(record["open"]),
        high=to_decimal(record["high"]),
        low=to_decimal(record["low"]),
        close=to_decimal(record["close"]),
        volume=to_int(record.get("volume")),
        oi=to_int(record.get("oi")),
    )


# -- margins ---------------------------------------------------------------------------------------


def margin_params(order: MarginOrder) -> dict[str, Any]:
    """One order of a /margins/basket request. Our products and price types are Kite's own codes."""
    return {
        "exchange": order.exchange,
        "tradingsymbol": order.symbol,
        "transaction_type": order.action,
        "variety": VARIETY,
        "product": order.product,
        "order_type": order.pricetype,
        "quantity": order.quantity,
        # A JSON number: Kite reads the body as JSON, and Decimal is not a JSON type.
        "price": float(order.price),
        "trigger_price": float(order.trigger_price),
    }


def to_margin(data: Mapping[str, Any]) -> BrokerMargin:
    """A /margins/basket answer: `initial` is the legs' margins added up, `final` the basket's after
    the spread benefit; the final one is what the account is asked for."""
    initial, final = data.get("initial") or {}, data["final"]
    total = to_decimal(final.get("total"))
    return BrokerMargin(
        total=total,
        span=to_decimal(final.get("span")),
        exposure=to_decimal(final.get("exposure")),
        option_premium=to_decimal(final.get("option_premium")),
        benefit=max(to_decimal(initial.get("total"), total) - total, Decimal(0)),
    )


def to_profile(data: Mapping[str, Any]) -> BrokerProfile:
    extra_keys = ("user_shortname", "user_type", "broker", "exchanges", "products", "order_types")
    return BrokerProfile(
        broker_user_id=data["user_id"],
        user_name=data.get("user_name") or data.get("user_shortname") or data["user_id"],
        email=data.get("email") or None,
        extra={key: data[key] for key in extra_keys if key in data},
    )
