"""Quotes: the deterministic simulator, the store, and get_quote's sources."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from database import db
from services.market import master_contract as mc
from services.market import quotes, sample_contract, symbol_index

# 11:00 IST on a Wednesday, inside the session.
IST = ZoneInfo("Asia/Kolkata")
T = dt.datetime(2024, 3, 20, 11, 0, tzinfo=IST).timestamp()


def info(symbol, exchange="NSE", itype="EQ", name=None, expiry=None, strike=None, tick="0.05"):
    return symbol_index.SymbolInfo(symbol, symbol, name, exchange, exchange, "1", expiry, strike, 1, itype,
                                   Decimal(tick))


def test_simulator_is_deterministic_and_moves_with_time():
    a, b = quotes.PriceSimulator(seed=1), quotes.PriceSimulator(seed=1)
    q1, q2 = a.quote(info("RELIANCE"), at=T), b.quote(info("RELIANCE"), at=T)
    assert q1 == q2
    later = a.quote(info("RELIANCE"), at=T + 3600)
    assert later.ltp != q1.ltp
    assert later.open == q1.open
    assert later.prev_close == q1.prev_close
    assert quotes.PriceSimulator(seed=2).quote(info("RELIANCE"), at=T).ltp != q1.ltp


def test_simulated_quote_is_consistent_and_near_base():
    q = quotes.PriceSimulator().quote(info("RELIANCE"), at=T)
    assert q.low <= q.ltp <= q.high
    assert q.low <= q.open <= q.high
    assert q.bid < q.ltp < q.ask
    assert Decimal(2000) < q.ltp < Decimal(4000)  # around the sample's 2900
    assert q.ltp % Decimal("0.05") == 0
    assert q.source == "simulator"
    assert q.updated_at.tzinfo is not None
    assert q.volume > 0
    assert q.oi == 0


def test_simulator_sessions_are_in_the_exchange_zone(app, monkeypatch):
    # 11:00 IST is 05:30 UTC: inside the session in Asia/Kolkata, before the 09:15 open in UTC.
    assert quotes.PriceSimulator().spot("RELIANCE", Decimal(2900), at=T)[-1] == 105
    assert quotes.PriceSimulator(tz=dt.UTC).spot("RELIANCE", Decimal(2900), at=T)[-1] == 0
    with app.app_context():
        assert quotes.simulator().tz == IST  # EXCHANGE_TIMEZONE's default
        monkeypatch.setitem(app.config, "EXCHANGE_TIMEZONE", "UTC")
        assert quotes.simulator().tz == ZoneInfo("UTC")


def test_futures_and_options_follow_the_underlying():
    sim = quotes.PriceSimulator()
    expiry = dt.date(2024, 3, 28)
    spot = sim.quote(info("NIFTY", "NSE_INDEX", "INDEX"), at=T).ltp
    fut = sim.quote(info("NIFTY28MAR24FUT", "NFO", "FUT", "NIFTY", expiry), at=T).ltp
    assert spot < fut < spot * Decimal("1.01")
    calls = [sim.quote(info(f"NIFTY28MAR24{k}CE", "NFO", "CE", "NIFTY", expiry, Decimal(k)), at=T).ltp
             for k in (20000, 21000, 22000, 23000, 24000)]
    assert calls == sorted(calls, reverse=True)
    assert calls[-1] > 0
    deep = sim.quote(info("NIFTY28MAR2420000CE", "NFO", "CE", "NIFTY", expiry, Decimal(20000)), at=T).ltp
    assert deep >= spot - 20000  # never below intrinsic value


def test_get_quote_uses_simulator_then_broker_and_store(app):
    mc.import_rows(sample_contract.generate(600, today=dt.date(2024, 3, 20)))
    with pytest.raises(quotes.UnknownSymbolError, match="Symbol NOPE not found in exchange NSE"):
        quotes.get_quote("NOPE", "NSE")
    sim = quotes.get_quote("INFY", "nse")
    assert sim.source == "simulator"
    assert sim.ltp > 0
    assert set(sim.to_dict()) == {"open", "high", "low", "ltp", "ask", "bid", "prev_close", "volume", "oi"}

    seen = []

    def fetch(i):
        seen.append((i.brsymbol, i.brexchange, i.token))
        return {"ltp": "1501.5", "bid": 1501.45, "ask": 1501.55, "open": 1490, "high": 1510, "low": 1480,
                "prev_close": 1495, "volume": 12345, "oi": 0}

    live = quotes.get_quote("INFY", "NSE", fetch=fetch, broker="zerodha")
    db.session.commit()
    assert seen
    assert seen[0][:2] == ("INFY", "NSE")
    assert live.ltp == Decimal("1501.5")
    assert live.source == "zerodha"
    # without a broker now, the fresh stored broker quote is served, not the simulator
    again = quotes.get_quote("INFY", "NSE")
    assert again.ltp == Decimal("1501.5")
    assert again.source == "zerodha"
    assert again.volume == 12345
    assert quotes.ltp("INFY", "NSE") == Decimal("1501.5")
    # a second store updates the same row
    quotes.store_quote("INFY", "NSE", {"ltp": 1502}, "zerodha")
    db.session.commit()
    assert quotes.stored_quote("INFY", "NSE").ltp == Decimal("1502")


def test_feed_simulated_writes_the_store(app):
    mc.import_rows(sample_contract.generate(600, today=dt.date(2024, 3, 20)))
    assert quotes.feed_simulated([("INFY", "NSE"), ("NIFTY", "NSE_INDEX"), ("NOPE", "NSE")]) == 2
    db.session.commit()
    stored = quotes.stored_quote("NIFTY", "NSE_INDEX")
    assert stored is not None
    assert stored.source == "simulator"
    assert stored.ltp > 0
