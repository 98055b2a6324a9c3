"""Shared fixtures of the order service tests: a small master contract and quotes the test controls."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from database import db
from database.symbol import SymToken
from services.market import quotes, symbol_index
from services.trading.orders import OrderInput
from tests.helpers.accounts import make_user

ROWS = [
    ("INFY", "INFY", "INFOSYS", "NSE", "NSE", "408065", None, None, 1, "EQ"),
    ("SBIN", "SBIN", "STATE BANK OF INDIA", "NSE", "NSE", "779521", None, None, 1, "EQ"),
    ("RELIANCE", "RELIANCE", "RELIANCE INDUSTRIES", "NSE", "NSE", "738561", None, None, 1, "EQ"),
    ("NIFTY", "NIFTY 50", "NIFTY 50", "NSE_INDEX", "NSE", "256265", None, None, 1, "INDEX"),
    ("NIFTY30APR26FUT", "NIFTY26APRFUT", "NIFTY", "NFO", "NFO", "13238786", dt.date(2026, 4, 30), None, 75, "FUT"),
]


@pytest.fixture
def contract(app):
    for sym, brs, name, ex, brex, tok, exp, strike, lot, itype in ROWS:
        db.session.add(SymToken(symbol=sym, brsymbol=brs, name=name, exchange=ex, brexchange=brex, token=tok,
                                expiry=exp, strike=strike, lotsize=lot, instrumenttype=itype,
                                tick_size=Decimal("0.05")))
    db.session.commit()
    symbol_index.reload()
    yield
    db.session.rollback()


@pytest.fixture
def users(app, contract):
    alice, bob = make_user("alice"), make_user("bob")
    db.session.commit()
    return alice.id, bob.id


def set_quote(symbol: str, ltp, bid=0, ask=0, exchange: str = "NSE") -> None:
    """A fresh broker quote: it wins over the simulator for STORED_FRESH_SECONDS."""
    quotes.store_quote(symbol, exchange, {"ltp": Decimal(str(ltp)), "bid": Decimal(str(bid)),
                                          "ask": Decimal(str(ask))}, source="broker")
    db.session.commit()


def order(symbol="INFY", action="BUY", quantity=10, pricetype="MARKET", product="MIS", price=0, trigger_price=0,
          exchange="NSE", strategy="test") -> OrderInput:
    return OrderInput(strategy=strategy, exchange=exchange, symbol=symbol, action=action, quantity=quantity,
                      pricetype=pricetype, product=product, price=Decimal(str(price)),
                      trigger_price=Decimal(str(trigger_price)))
