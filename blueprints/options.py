"""`/options/chain`: the option chain page of an underlying and expiry, for any signed-in user.

The picker (exchange, underlying, expiry, strikes either side of ATM) is a GET form; the table shows each
strike's call and put (last price, open interest, implied volatility, delta) with ATM highlighted, read through
the signed-in user's venue like the books (services.trading.options, with greeks). `/options/chain/live`
answers the table as JSON, for the page's live refresh. A venue that cannot answer
(live mode without a broker session, a broker error) does not fail the page: its message is shown instead.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, render_template, request
from flask_login import current_user

from blueprints.access import check_role
from database.enums import Role
from database.types import utcnow
from services.market import black76
from services.market import options as market
from services.trading import options, venues
from services.trading.errors import OrderError
from vocabulary import Mode

options_bp = Blueprint("options", __name__, url_prefix="/options")

DEFAULT_EXCHANGE, DEFAULT_UNDERLYING = "NFO", "NIFTY"
STRIKE_CHOICES = (5, 10, 15, 20, 30)
DEFAULT_STRIKES = 10


@options_bp.before_request
def _signed_in():
    return check_role({Role.ADMIN, Role.TRADER, Role.VIEWER})


def _choice(value: str | None, allowed: list[str], default: str) -> str:
    value = (value or "").strip().upper()
    return value if value in allowed else (default if default in allowed else (allowed[0] if allowed else ""))


def _expiry(value: str | None, listed: list[dt.date]) -> dt.date | None:
    try:
        wanted = market.parse_expiry(value or "")
    except ValueError:
        wanted = None
    return wanted if wanted in listed else (listed[0] if listed else None)


@options_bp.get("/chain")
def chain():
    return render_template("options/chain.html", **_chain_page())


@options_bp.get("/chain/live")
def chain_live():
    """The chain (with its greeks) as JSON for static/js/live.js, which re-reads it every few seconds:
    ticks move only the last prices and open interest."""
    resp = jsonify(status="success", regions={"chain-region": render_template("options/_chain.html", **_chain_page())})
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _chain_page() -> dict:
    now = utcnow()
    exchange = _choice(request.args.get("exchange"), list(market.FNO_EXCHANGES), DEFAULT_EXCHANGE)
    names = market.underlyings(exchange)
    underlying = _choice(request.args.get("underlying"), names, DEFAULT_UNDERLYING)
    listed = market.expiries(underlying, exchange, "options", now.astimezone(black76.IST).date()) if underlying else []
    expiry = _expiry(request.args.get("expiry"), listed)
    try:
        strikes = int(request.args.get("strikes", DEFAULT_STRIKES))
    except ValueError:
        strikes = DEFAULT_STRIKES
    strikes = strikes if strikes in STRIKE_CHOICES else DEFAULT_STRIKES
    data, problem, mode = None, None, Mode.LIVE.value
    try:
        venue = venues.venue_for(current_user.id)
        mode = venue.label
        if expiry is not None:
            data = options.option_chain(venue, underlying, exchange, expiry, strikes, with_greeks=True, now=now)
        elif underlying:
            problem = f"No options of {underlying} are listed on {exchange} from today on."
        else:
            problem = f"No options are listed on {exchange}: load the master contract on the Symbols page."
    except OrderError as exc:
        problem = exc.message
    days = (black76.years_to_expiry(now, exchange, expiry) * 365) if expiry else None
    return dict(
        exchanges=market.FNO_EXCHANGES, exchange=exchange, names=names,
        underlying=underlying, expiries=[(market.expiry_code(d), market.expiry_label(d)) for d in listed],
        expiry=market.expiry_code(expiry) if expiry else "", strike_choices=STRIKE_CHOICES, strikes=strikes,
        data=data, problem=problem, days=days, mode=mode)
