"""Books and account: order book, trade book, position book, holdings, funds, analyzer status, in the
data shapes of docs/api.md, each read through the call's venue (services.trading.venues).

Analyze mode reads the paper account after bringing it up to date (MIS square-off and open orders matched
against current quotes); live mode asks the broker and maps its symbols back to ours through the master
contract, keeping the order journal's statuses current. Each book is a handful of queries, whatever its
length (quotes in bulk, no query per row).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from database import db
from database.apilog_db import ApiLog
from database.enums import Mode
from services.market.quotes import QuoteData
from services.trading import shapes, venues
from services.trading.orders import through
from services.trading.venues import Venue


def orderbook(venue: Venue) -> dict:
    return through(venue).orderbook(venue)


def tradebook(venue: Venue) -> list:
    return through(venue).tradebook(venue)


def positionbook(venue: Venue) -> list:
    return through(venue).positionbook(venue)


def funds(venue: Venue) -> dict:
    return through(venue).funds(venue)


def quote(venue: Venue, symbol: str, exchange: str) -> QuoteData:
    """The quote the `quotes` endpoint answers. Raises UnknownSymbolError (404) or OrderError."""
    return through(venue).quote(venue, symbol, exchange)


def holdings(venue: Venue) -> dict:
    out, total_value, total_inv = [], Decimal(0), Decimal(0)
    for symbol, exchange, product, qty, avg, ltp in through(venue).holding_rows(venue):
        inv, value = qty * avg, qty * ltp
        pnl = value - inv
        total_value += value
        total_inv += inv
        out.append({"symbol": symbol, "exchange": exchange, "product": product, "quantity": int(qty),
                    "pnl": shapes.num(pnl), "pnlpercent": shapes.num(pnl / inv * 100 if inv else Decimal(0))})
    total_pnl = total_value - total_inv
    return {"holdings": out, "statistics": {
        "totalholdingvalue": shapes.num(total_value), "totalinvvalue": shapes.num(total_inv),
        "totalprofitandloss": shapes.num(total_pnl),
        "totalpnlpercentage": shapes.num(total_pnl / total_inv * 100 if total_inv else Decimal(0))}}


def analyzer_status(user_id: int) -> dict:
    """{mode, analyze_mode, total_logs}: total_logs counts the user's API calls made in analyze mode."""
    analyze = venues.is_analyze(user_id)
    total = db.session.scalar(select(func.count()).select_from(ApiLog).where(
        ApiLog.user_id == user_id, ApiLog.mode == Mode.ANALYZE)) or 0
    mode = Mode.ANALYZE if analyze else Mode.LIVE
    return {"mode": mode.value, "analyze_mode": analyze, "total_logs": int(total)}
