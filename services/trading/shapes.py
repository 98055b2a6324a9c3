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


def day_start(now: dt.datetime | None = None) -> dt.datetime:
    """The start of the current exchange day, in UTC."""
    local = (now or utcnow()).astimezone(config_module.exchange_tz(current_app.config))
    return dt.datetime.combine(local.date(), dt.time(0, 0), tzinfo=local.tzinfo).astimezone(dt.UTC)


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
