"""Books and account: order book, trade book, position book, holdings, funds, analyzer status, in the
data shapes of API.md.

Analyze mode reads the paper account (after bringing it up to date: MIS square-off and open orders
matched against current quotes, services.trading.paper.account.refresh); live mode asks the connected broker and maps
its symbols back to ours through the master contract, keeping the order journal's statuses current.
Each book is a handful of queries, whatever its length (quotes in bulk, no query per row).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from brokers.base import BrokerError, BrokerOrder
from database import db
from database.apilog_db import ApiLog
from database.enums import Mode, OrderStatus
from database.order_db import Order
from database.portfolio_db import Holding
from database.types import utcnow
from services.market import symbol_index as token_db
from services.trading.paper import account as paper

log = logging.getLogger("algobridge.orders")

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
    return moment.astimezone(paper.exchange_tz()).strftime(TIME_FORMAT)


def day_start(now: dt.datetime | None = None) -> dt.datetime:
    """The start of the current exchange day, in UTC."""
    local = (now or utcnow()).astimezone(paper.exchange_tz())
    return dt.datetime.combine(local.date(), dt.time(0, 0), tzinfo=local.tzinfo).astimezone(dt.UTC)


# -- shapes ------------------------------------------------------------------------------------------
def order_data(row: Order) -> dict:
    return {"action": row.action.value, "symbol": row.symbol, "exchange": row.exchange.value, "orderid": row.orderid,
            "product": row.product.value, "quantity": int(row.quantity), "price": num(row.price),
            "pricetype": row.pricetype.value, "order_status": row.status.value,
            "trigger_price": num(row.trigger_price), "timestamp": fmt_time(row.placed_at)}


def order_status_data(row: Order) -> dict:
    """API.md orderstatus data."""
    return {"action": row.action.value, "average_price": num(row.average_price), "exchange": row.exchange.value,
            "order_status": row.status.value, "orderid": row.orderid, "price": num(row.price),
            "pricetype": row.pricetype.value, "product": row.product.value, "quantity": int(row.quantity),
            "symbol": row.symbol, "timestamp": fmt_time(row.placed_at), "trigger_price": num(row.trigger_price)}


def _oa_symbols(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    found = token_db.get_oa_symbols_bulk(pairs)
    return {k: (v or k[0]) for k, v in found.items()}


def broker_order_data(bo: BrokerOrder, symbol: str | None = None) -> dict:
    symbol = symbol or token_db.get_oa_symbol(bo.symbol, bo.exchange) or bo.symbol
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


def _statistics(orders: list[dict]) -> dict:
    statuses = [o["order_status"] for o in orders]
    return {"total_buy_orders": sum(o["action"] == "BUY" for o in orders),
            "total_sell_orders": sum(o["action"] == "SELL" for o in orders),
            "total_completed_orders": statuses.count("complete"),
            "total_open_orders": statuses.count("open") + statuses.count("trigger pending"),
            "total_rejected_orders": statuses.count("rejected")}


def _live(user_id: int):
    from services.trading import orders

    return orders._live(user_id)


def _fail(live, exc: BrokerError):
    from services.trading import orders

    return orders._broker_failure(live.active, exc)


# -- books -------------------------------------------------------------------------------------------
def orderbook(user_id: int) -> dict:
    live = _live(user_id)
    if live is not None:
        try:
            book = live.client.orderbook()
        except BrokerError as exc:
            raise _fail(live, exc) from None
        names = _oa_symbols({(b.symbol, b.exchange) for b in book})
        orders = [broker_order_data(b, names[(b.symbol, b.exchange)]) for b in book]
        by_id = {b.orderid: b for b in book}
        if by_id:
            for row in db.session.scalars(select(Order).where(Order.user_id == user_id, Order.mode == Mode.LIVE,
                                                              Order.orderid.in_(list(by_id)))):
                sync_journal(row, by_id[row.orderid])
            db.session.commit()
        return {"orders": orders, "statistics": _statistics(orders)}
    paper.refresh(user_id)
    return _paper_orderbook(user_id, paper.account(user_id)["orders"])


# The analyze-mode order book is a pure function of the cached account's order list, which is never
# changed in place (services.trading.paper.account.account: a change of the account, here or in another process, gives
# a new snapshot with a new list). So the book built from one list is kept per user and reused while
# the account hands out that same list: a user with many orders is not re-shaped on every read.
# The entry holds the list itself, so its identity cannot be reused by another object meanwhile.
_paper_books: dict[int, tuple[list, dict]] = {}
_PAPER_BOOKS_MAX = 10_000


def _paper_orderbook(user_id: int, rows: list) -> dict:
    """The order book of the paper account's `rows`. Shared between readers: do not change it."""
    cached = _paper_books.get(user_id)
    if cached is not None and cached[0] is rows:
        return cached[1]
    orders = [dict(o) for o in rows]
    book = {"orders": orders, "statistics": _statistics(orders)}
    if len(_paper_books) >= _PAPER_BOOKS_MAX:
        _paper_books.clear()  # a bound, not an eviction policy: rebuilding a book is cheap
    _paper_books[user_id] = (rows, book)
    return book


def tradebook(user_id: int) -> list:
    live = _live(user_id)
    if live is not None:
        try:
            trades = live.client.tradebook()
        except BrokerError as exc:
            raise _fail(live, exc) from None
        names = _oa_symbols({(t.symbol, t.exchange) for t in trades})
        return [{"action": t.action, "symbol": names[(t.symbol, t.exchange)], "exchange": t.exchange,
                 "orderid": t.orderid, "product": t.product, "quantity": int(t.quantity),
                 "average_price": num(t.average_price), "timestamp": fmt_time(t.timestamp),
                 "trade_value": num(t.trade_value)} for t in trades]
    paper.refresh(user_id)
    return [dict(t) for t in paper.account(user_id)["trades"]]


def positionbook(user_id: int) -> list:
    live = _live(user_id)
    if live is not None:
        try:
            positions = live.client.positions()
        except BrokerError as exc:
            raise _fail(live, exc) from None
        names = _oa_symbols({(p.symbol, p.exchange) for p in positions})
        return [{"symbol": names[(p.symbol, p.exchange)], "exchange": p.exchange, "product": p.product,
                 "quantity": int(p.quantity), "average_price": num(p.average_price), "ltp": num(p.ltp),
                 "pnl": num(p.pnl)} for p in positions]
    paper.refresh(user_id)
    rows = paper.account(user_id)["positions"]
    book = paper.quotes_for({(r["symbol"], r["exchange"]) for r in rows})
    out = []
    for r in rows:
        state = paper.account_position_state(r)
        quote = book.get((r["symbol"], r["exchange"]))
        ltp = quote.ltp if quote else state.average_price
        out.append({"symbol": r["symbol"], "exchange": r["exchange"], "product": r["product"],
                    "quantity": int(state.quantity), "average_price": num(state.average_price), "ltp": num(ltp),
                    "pnl": num(state.realized_pnl + state.unrealized(ltp))})
    return out


def holdings(user_id: int) -> dict:
    live = _live(user_id)
    if live is not None:
        try:
            items = live.client.holdings()
        except BrokerError as exc:
            raise _fail(live, exc) from None
        names = _oa_symbols({(h.symbol, h.exchange) for h in items})
        rows = [(names[(h.symbol, h.exchange)], h.exchange, h.product, Decimal(h.quantity), h.average_price, h.ltp)
                for h in items]
    else:
        found = list(db.session.scalars(select(Holding).where(Holding.user_id == user_id,
                                                              Holding.mode == Mode.ANALYZE, Holding.quantity != 0)))
        book = paper.quotes_for({(h.symbol, h.exchange.value) for h in found})
        rows = []
        for h in found:
            quote = book.get((h.symbol, h.exchange.value))
            rows.append((h.symbol, h.exchange.value, "CNC", h.quantity, h.average_price,
                         quote.ltp if quote else h.average_price))
    out, total_value, total_inv = [], Decimal(0), Decimal(0)
    for symbol, exchange, product, qty, avg, ltp in rows:
        inv, value = qty * avg, qty * ltp
        pnl = value - inv
        total_value += value
        total_inv += inv
        out.append({"symbol": symbol, "exchange": exchange, "product": product, "quantity": int(qty),
                    "pnl": num(pnl), "pnlpercent": num(pnl / inv * 100 if inv else Decimal(0))})
    total_pnl = total_value - total_inv
    return {"holdings": out, "statistics": {
        "totalholdingvalue": num(total_value), "totalinvvalue": num(total_inv), "totalprofitandloss": num(total_pnl),
        "totalpnlpercentage": num(total_pnl / total_inv * 100 if total_inv else Decimal(0))}}


def funds(user_id: int) -> dict:
    """availablecash = opening balance + realized P&L - margin in use; m2munrealized from current quotes."""
    live = _live(user_id)
    if live is not None:
        try:
            f = live.client.funds()
        except BrokerError as exc:
            raise _fail(live, exc) from None
        return {"availablecash": money(f.availablecash), "collateral": money(f.collateral),
                "m2mrealized": money(f.m2mrealized), "m2munrealized": money(f.m2munrealized),
                "utiliseddebits": money(f.utiliseddebits)}
    paper.refresh(user_id)
    snap = paper.account(user_id)
    state = paper.account_funds_state(snap)
    open_rows = [(r["symbol"], r["exchange"], paper.account_position_state(r)) for r in snap["positions"]]
    open_rows = [row for row in open_rows if row[2].quantity != 0]
    book = paper.quotes_for({(s, e) for s, e, _ in open_rows})
    unrealized = sum((pos.unrealized(book[(s, e)].ltp) for s, e, pos in open_rows if (s, e) in book), Decimal(0))
    collateral = snap["funds"]["collateral"] if snap["funds"] is not None else 0
    return {"availablecash": money(state.available), "collateral": money(collateral),
            "m2mrealized": money(state.realized_pnl), "m2munrealized": money(unrealized),
            "utiliseddebits": money(state.used_margin)}


def analyzer_status(user_id: int) -> dict:
    """{mode, analyze_mode, total_logs}: total_logs counts the user's API calls made in analyze mode."""
    from services.trading import orders

    analyze = orders.is_analyze(user_id)
    total = db.session.scalar(select(func.count()).select_from(ApiLog).where(
        ApiLog.user_id == user_id, ApiLog.mode == Mode.ANALYZE)) or 0
    return {"mode": "analyze" if analyze else "live", "analyze_mode": analyze, "total_logs": int(total)}
