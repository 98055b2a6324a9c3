"""Kite Connect codes and records, mapped to ours.

Kite's field names and values are those of the Kite Connect v3 documentation (orders, portfolio,
user margins, market quotes). Times without a zone are Kite's: IST (`KITE_TZ`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from brokers.base import (
    BrokerFunds,
    BrokerHolding,
    BrokerOrder,
    BrokerPosition,
    BrokerProfile,
    BrokerQuote,
    BrokerTrade,
    exchange_time,
    to_decimal,
)
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


def _int(value: Any) -> int:
    if value is None or value == "":
        return 0
    return int(value)


def to_order(row: Mapping[str, Any]) -> BrokerOrder:
    return BrokerOrder(
        orderid=str(row["order_id"]),
        symbol=row["tradingsymbol"],
        exchange=row["exchange"],
        action=str(row["transaction_type"]).upper(),
        quantity=_int(row.get("quantity")),
        filled_quantity=_int(row.get("filled_quantity")),
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
        quantity=_int(row.get("quantity")),
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
        quantity=_int(row.get("quantity")),
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
        quantity=_int(row.get("quantity")),  # Kite's net quantity: settled plus T1
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


def _best_price(levels: Any) -> Decimal:
    # Kite pads empty depth levels with zeros; the best level is the first with a price.
    for level in levels or ():
        price = to_decimal(level.get("price"))
        if price:
            return price
    return Decimal(0)


def to_quote(data: Mapping[str, Any]) -> BrokerQuote:
    ohlc = data.get("ohlc") or {}
    depth = data.get("depth") or {}
    return BrokerQuote(
        open=to_decimal(ohlc.get("open")),
        high=to_decimal(ohlc.get("high")),
        low=to_decimal(ohlc.get("low")),
        ltp=to_decimal(data.get("last_price")),
        ask=_best_price(depth.get("sell")),
        bid=_best_price(depth.get("buy")),
        prev_close=to_decimal(ohlc.get("close")),
        volume=_int(data.get("volume")),
        oi=_int(data.get("oi")),
        timestamp=_time(data.get("timestamp")),
    )


def to_profile(data: Mapping[str, Any]) -> BrokerProfile:
    extra_keys = ("user_shortname", "user_type", "broker", "exchanges", "products", "order_types")
    return BrokerProfile(
        broker_user_id=data["user_id"],
        user_name=data.get("user_name") or data.get("user_shortname") or data["user_id"],
        email=data.get("email") or None,
        extra={key: data[key] for key in extra_keys if key in data},
    )
