"""The API's data shapes of orders, trades and money (OpenAlgo's formats), for both venues.

Money in the books is a float rounded to paise; funds figures are strings with two decimals; times
are exchange time in OpenAlgo's "%d-%b-%Y %H:%M:%S".
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app

import config as config_module
from brokers.base import BrokerOrder
from database.enums import Action, OrderStatus
from database.order_db import Order
from database.types import utcnow
from services.accounts import users as accounts
from services.market import symbol_index
from vocabulary import OPEN_STATUSES

TIME_FORMAT = "%d-%b-%Y %H:%M:%S"
CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    """Funds figures: strings with two decimals."""
    return str(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))


def num(value: Decimal | None) -> float:
    return float(Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP))


def fmt_time(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(config_module.exchange_tz(current_app.config)).strftime(TIME_FORMAT)


# -- the trading day --------------------------------------------------------------------------------
# One boundary for everything that says "today" about trading: the day's orders, trades and positions
# (the analyze-mode books: the paper account's cached snapshot), the dashboard's Day P&L (live mode's
# books are the broker's, over the broker's day), the dashboard's trading-day label. It is the daily
# session expiry, SESSION_EXPIRY_TIME in exchange time (services.accounts.users.last_expiry_boundary,
# the same arithmetic that ends web and broker sessions), not midnight: a session that runs past
# midnight keeps its orders, trades and P&L together until it ends.
# (lo, hi, settings): the last day computed, reused while `now` stays in [lo, hi) under the same settings.
_last_day: tuple[dt.datetime, dt.datetime, tuple] | None = None


def day_start(now: dt.datetime | None = None) -> dt.datetime:
    """The start of the trading day holding `now` (default: the current time), in UTC: the latest
    SESSION_EXPIRY_TIME moment (exchange time, EXCHANGE_TIMEZONE) at or before `now`. With the default
    03:00, 02:30 on 7 December is still in the day that began at 03:00 on 6 December; 03:00:00 on
    7 December begins the next one. The one function that owns the trading day."""
    global _last_day
    now = now or utcnow()
    cfg = current_app.config
    settings = (cfg["SESSION_EXPIRY_TIME"], cfg.get("EXCHANGE_TIMEZONE"))
    last = _last_day
    if last is not None and last[2] == settings and last[0] <= now < last[1]:
        return last[0]  # the common read: two comparisons, no time zone arithmetic
    at = config_module.parse_hhmm("SESSION_EXPIRY_TIME", settings[0])
    zone = config_module.exchange_tz(cfg)
    lo = accounts.last_expiry_boundary(now, at, zone)
    _last_day = (lo, accounts.next_expiry(now, at, zone), settings)
    return lo


def trading_day(now: dt.datetime | None = None) -> dt.date:
    """The date the trading day holding `now` is labelled with: the exchange-calendar date on which it
    began (at SESSION_EXPIRY_TIME). At 02:30 on 7 December (boundary 03:00) that is 6 December."""
    return day_start(now).astimezone(config_module.exchange_tz(current_app.config)).date()


# -- shapes ------------------------------------------------------------------------------------------
def order_data(row: Order) -> dict:
    return {"action": row.action.value, "symbol": row.symbol, "exchange": row.exchange.value, "orderid": row.orderid,
            "product": row.product.value, "quantity": int(row.quantity), "price": num(row.price),
            "pricetype": row.pricetype.value, "order_status": row.status.value,
            "trigger_price": num(row.trigger_price), "timestamp": fmt_time(row.placed_at)}


def order_status_data(row: Order) -> dict:
    """The orderstatus data (docs/api.md)."""
    return {"action": row.action.value, "average_price": num(row.average_price), "exchange": row.exchange.value,
            "order_status": row.status.value, "orderid": row.orderid, "price": num(row.price),
            "pricetype": row.pricetype.value, "product": row.product.value, "quantity": int(row.quantity),
            "symbol": row.symbol, "timestamp": fmt_time(row.placed_at), "trigger_price": num(row.trigger_price)}


def oa_symbols(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    found = symbol_index.get_oa_symbols_bulk(pairs)
    return {k: (v or k[0]) for k, v in found.items()}


def broker_order_data(bo: BrokerOrder, symbol: str | None = None) -> dict:
    symbol = symbol or symbol_index.get_oa_symbol(bo.symbol, bo.exchange) or bo.symbol
    return {"action": bo.action, "symbol": symbol, "exchange": bo.exchange, "orderid": bo.orderid,
            "product": bo.product, "quantity": int(bo.quantity), "price": num(bo.price), "pricetype": bo.pricetype,
            "order_status": bo.status, "trigger_price": num(bo.trigger_price), "timestamp": fmt_time(bo.timestamp)}


def sync_journal(row: Order, bo: BrokerOrder) -> None:
    """Bring a live journal row up to the broker's state."""
    status = OrderStatus(bo.status)
    if row.status != status or row.filled_quantity != bo.filled_quantity:
        row.status = status
        row.filled_quantity = Decimal(bo.filled_quantity)
        row.average_price = bo.average_price
        row.status_message = bo.status_message


def statistics(orders: list[dict]) -> dict:
    statuses = [o["order_status"] for o in orders]
    return {"total_buy_orders": sum(o["action"] == Action.BUY for o in orders),
            "total_sell_orders": sum(o["action"] == Action.SELL for o in orders),
            "total_completed_orders": statuses.count(OrderStatus.COMPLETE),
            "total_open_orders": sum(statuses.count(s) for s in OPEN_STATUSES),
            "total_rejected_orders": statuses.count(OrderStatus.REJECTED)}
