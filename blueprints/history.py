"""`/history`: what the candle store holds (per source, instrument and interval: the first and last candle and
the count), and `/history/chart.json`, a symbol's stored candles for the chart on the symbols page
(static/js/candles.js). Nothing here fetches: the store fills through the `history` API and `flask history
download`. Every signed-in role may look, as on the other market pages.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, render_template, request
from flask_login import current_user

from blueprints.access import check_role
from database.enums import Exchange, Role
from services.market import calendar
from services.market import history as store
from services.trading import history

history_bp = Blueprint("history", __name__, url_prefix="/history")

PAGE_ROWS = 100
CHART_DAYS = {"intraday": 5, "daily": 365}  # the chart's default span, back from the last stored candle
CHART_MAX_DAYS = 3660


@history_bp.before_request
def _signed_in():
    return check_role({Role.ADMIN, Role.TRADER, Role.VIEWER})


def _symbol_arg(name: str) -> str:
    return (request.args.get(name) or "").strip().upper()[:64]


def _exchange_arg(name: str) -> str:
    value = _symbol_arg(name)
    return value if value in Exchange.values() else ""


def _shown(row: dict) -> dict:
    return {**row, "first_text": store.moment_text(row["first"], row["intraday"]),
            "last_text": store.moment_text(row["last"], row["intraday"]),
            "updated_text": store.moment_text(row["updated_at"], True)}


@history_bp.get("/", strict_slashes=False)
def index():
    q, exchange = _symbol_arg("q"), _exchange_arg("exchange")
    after_symbol, after_id = request.args.get("after_symbol"), request.args.get("after_id", "")
    after = (after_symbol[:64], int(after_id)) if after_symbol is not None and after_id.isdigit() else None
    rows = store.series(exchange=exchange or None, prefix=q or None, after=after, limit=PAGE_ROWS + 1)
    more = len(rows) > PAGE_ROWS
    rows = [_shown(r) for r in rows[:PAGE_ROWS]]
    nxt = ({"q": q, "exchange": exchange, "after_symbol": rows[-1]["symbol"], "after_id": rows[-1]["id"]}
           if more else None)
    return render_template("history/index.html", rows=rows, q=q, exchange=exchange, exchanges=Exchange.values(),
                           next_args=nxt, paged=after is not None, zone=calendar.timezone_name(),
                           mine=history.source_name(current_user.id))


@history_bp.get("/chart.json")
def chart():
    """{symbol, exchange, source, interval, intervals (those the stored series can give), timezone, candles:
    [[timestamp, open, high, low, close, volume], ...]}, or `message` saying why there are none."""
    symbol, exchange = _symbol_arg("symbol"), _exchange_arg("exchange")
    if not symbol or not exchange:
        return jsonify({"message": "Give a symbol and its exchange.", "candles": []}), 400
    found = store.series(exchange=exchange, symbol=symbol)
    stored = [s for s in found if s["candles"]]
    if not stored:
        return jsonify({"symbol": symbol, "exchange": exchange, "candles": [],
                        "message": f"No stored history for {symbol} on {exchange}: fetch it with the history API "
                                   f"or `flask history download {symbol} --exchange {exchange}`."})
    sources = list(dict.fromkeys(s["source"] for s in stored))
    wanted = (request.args.get("source") or "").strip()
    source = wanted if wanted in sources else (history.source_name(current_user.id) or "")
    source = source if source in sources else sources[0]
    mine = [s for s in stored if s["source"] == source]
    choices = store.available(s["interval"] for s in mine)
    interval = (request.args.get("interval") or "").strip()
    if interval not in choices:
        interval = "D" if "D" in choices else choices[0]
    intraday = interval in store.INTRADAY
    last = max(s["last"].date() if not s["intraday"] else calendar.local_date(s["last"]) for s in mine)
    days = request.args.get("days", "")
    span = min(int(days), CHART_MAX_DAYS) if days.isdigit() and int(days) > 0 else \
        CHART_DAYS["intraday" if intraday else "daily"]
    try:
        candles = store.stored_history(exchange, symbol, interval, last - dt.timedelta(days=span - 1), last,
                                       source).rows()
    except store.HistoryError as exc:
        return jsonify({"message": exc.message, "candles": []}), 400
    return jsonify({"symbol": symbol, "exchange": exchange, "source": source, "sources": sources,
                    "interval": interval, "intervals": choices, "intraday": intraday,
                    "timezone": calendar.timezone_name(),
                    "candles": [[c["timestamp"], c["open"], c["high"], c["low"], c["close"], c["volume"]]
                                for c in candles]})
