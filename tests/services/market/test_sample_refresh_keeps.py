"""The daily sample contract never delists a contract before its expiry: a paper position on a far strike keeps
its instrument (symbol, token) through a refresh centred far away, and can be closed; what has expired goes, and
positions or orders left on it are named in the refresh's warning."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import select

from database import db
from database.order_db import Order
from database.portfolio_db import Position
from database.symbol import MasterContractStatus, SymToken
from services.market import master_contract as mc
from services.market import quotes, sample_contract, symbol_index
from tests.helpers.api import post, raise_limits, user_with_key
from tests.helpers.clock import clock, local  # noqa: F401 - fixtures

ROWS = 3000  # the NIFTY chains come first and are whole at this size
LISTED = (SymToken.symbol, SymToken.brsymbol, SymToken.exchange, SymToken.brexchange, SymToken.token,
          SymToken.expiry, SymToken.strike, SymToken.lotsize, SymToken.instrumenttype, SymToken.tick_size,
          SymToken.freeze_qty)


@pytest.fixture
def trader(app, client, clock, monkeypatch):  # noqa: F811
    raise_limits(app, monkeypatch)
    # the simulator prices at the controlled time too (its own clock is the wall clock)
    monkeypatch.setattr(quotes.simulator(), "clock", lambda: clock.now.timestamp())
    _user, _row, key = user_with_key("keeper")
    return key


def contract() -> dict[tuple[str, str], tuple]:
    db.session.rollback()
    return {(r.exchange.value, r.symbol): tuple(r) for r in db.session.execute(select(*LISTED))}


def nifty_strikes(rows, expiry: str) -> list[float]:
    return sorted({float(r["strike"]) for r in rows
                   if r["name"] == "NIFTY" and r["expiry"] == expiry and r["instrument_type"] == "CE"})


def order(key: str, symbol: str, **fields) -> dict:
    return {"apikey": key, "strategy": "Keep", "exchange": "NFO", "symbol": symbol, "action": "BUY",
            "quantity": "25", "pricetype": "MARKET", "product": "NRML", **fields}


def open_positions() -> dict[str, Decimal]:
    db.session.rollback()
    return {p.symbol: p.quantity for p in db.session.scalars(select(Position))}


def test_a_far_strike_stays_listed_with_its_token_and_its_position_can_be_closed(app, client, clock, trader,  # noqa: F811
                                                                                 caplog):
    day, later = dt.date(2024, 3, 20), dt.date(2024, 4, 9)
    clock.now = local(app, 2024, 3, 20, 10, 0)
    assert mc.ensure_sample_contract(rows=ROWS, now=clock.now) is not None
    before = contract()
    # the top strike of the April monthly, centred on the 20 March open...
    sim = quotes.simulator()
    top = nifty_strikes(sample_contract.generate(ROWS, day, lambda n: sim.session_open(n, day)), "2024-04-25")[-1]
    symbol = f"NIFTY25APR24{int(top)}CE"
    assert ("NFO", symbol) in before
    # ...is far outside the chain centred on 9 April's open, NIFTY having fallen ~1,900 points
    assert sim.session_open("NIFTY", day) - sim.session_open("NIFTY", later) > 1500
    fresh = nifty_strikes(sample_contract.generate(ROWS, later, lambda n: sim.session_open(n, later)), "2024-04-25")
    assert top - fresh[-1] >= 1000

    resp = post(client, "placeorder", order(trader, symbol))
    assert resp.status_code == 200, resp.get_json()
    assert open_positions() == {symbol: 25}

    clock.now = local(app, 2024, 4, 9, 10, 0)
    with caplog.at_level(logging.WARNING, logger="algobridge.symbols"):
        result = mc.refresh_sample_contract(now=clock.now)
    assert result is not None
    after = contract()
    assert after[("NFO", symbol)] == before[("NFO", symbol)]  # same symbol, broker symbol, token, lot, tick...
    info = symbol_index.get_symbol_info(symbol, "NFO")
    assert info is not None
    assert info.token == before[("NFO", symbol)][4]
    assert mc.unlisted_in_use() == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    resp = post(client, "closeposition", {"apikey": trader, "strategy": "Keep"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["status"] == "success"
    assert open_positions() == {symbol: 0}


def test_every_unexpired_contract_is_kept_unchanged_and_tokens_stay_unique(app):
    thursday, friday = dt.date(2024, 3, 21), dt.date(2024, 3, 22)
    mc.ensure_sample_contract(rows=ROWS, now=local(app, 2024, 3, 21, 10, 0))
    before = contract()
    result = mc.refresh_sample_contract(now=local(app, 2024, 3, 22, 10, 0))
    assert result is not None
    after = contract()
    expired = {k for k, r in before.items() if r[5] is not None and r[5] < friday}
    unexpired = {k for k, r in before.items() if r[5] is not None and r[5] >= friday}
    assert expired
    assert all(r[5] == thursday for k, r in before.items() if k in expired)
    assert not expired & after.keys()  # expired ones go
    assert {k: before[k] for k in unexpired} == {k: after[k] for k in unexpired}  # kept as they were
    assert len(after) >= ROWS
    source = db.session.scalars(select(MasterContractStatus.source)).one()
    assert source == f"embedded sample contract (size {ROWS}) of 2024-03-22"  # the size it keeps, not its row count
    tokens = Counter((r[3], r[4]) for r in after.values())
    assert max(tokens.values()) == 1  # one instrument per token and exchange
    # the new weekly got tokens of its own, none of a kept row's
    new = [r for k, r in after.items() if k not in before]
    assert any(r[5] == dt.date(2024, 5, 2) for r in new)
    assert not {r[4] for r in new} & {r[4] for k, r in before.items() if k in unexpired}


def test_positions_and_orders_left_on_an_expired_contract_are_named(app, client, clock, trader, caplog):  # noqa: F811
    clock.now = local(app, 2024, 3, 21, 10, 0)
    mc.ensure_sample_contract(rows=ROWS, now=clock.now)
    weekly = sorted(k[1] for k, r in contract().items() if r[5] == dt.date(2024, 3, 21) and k[1].endswith("CE"))
    held, resting = weekly[len(weekly) // 2], weekly[len(weekly) // 2 + 1]
    assert post(client, "placeorder", order(trader, held)).status_code == 200
    resp = post(client, "placeorder", order(trader, resting, pricetype="LIMIT", price="0.05"))
    assert resp.status_code == 200, resp.get_json()
    orderid = resp.get_json()["orderid"]
    db.session.rollback()
    assert db.session.scalars(select(Order.status).where(Order.orderid == orderid)).one() == "open"

    clock.now = local(app, 2024, 3, 22, 10, 0)
    with caplog.at_level(logging.WARNING, logger="algobridge.symbols"):
        assert mc.refresh_sample_contract(now=clock.now) is not None
    named = mc.unlisted_in_use()
    assert len(named) == 2
    assert named[0].startswith(f"NFO:{held} position NRML of user ")
    assert named[1].startswith(f"NFO:{resting} order {orderid} of user ")
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert held in warning.getMessage()
    assert orderid in warning.getMessage()


def test_the_listed_contracts_read_back_as_the_rows_that_were_generated(app):
    day = dt.date(2024, 3, 20)
    mc.ensure_sample_contract(rows=15_000, now=local(app, 2024, 3, 20, 10, 0))  # with the stocks' chains
    generated = [r for r in mc.sample_rows(15_000, day) if r["instrument_type"] in ("FUT", "CE", "PE")]
    assert any(r["freeze_qty"] for r in generated)
    assert any(r["strike"].endswith(".25") for r in generated)  # IDEA's
    assert any("." in r["tick_size"] and r["tick_size"] != "0.05" for r in generated)  # MCX's 0.1, CDS's 0.0025
    assert mc.listed_derivatives(day) == generated
    assert mc.listed_derivatives(dt.date(2024, 3, 22)) == [r for r in generated if r["expiry"] >= "2024-03-22"]
