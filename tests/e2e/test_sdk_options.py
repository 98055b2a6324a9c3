"""The `openalgo` SDK's options calls, unchanged, against Algobridge on a real port (SQLite and PostgreSQL):
`expiry`, `optionsymbol`, `optionsorder`, `optionsmultiorder`, `optionchain`, `optiongreeks`,
`syntheticfuture`, and `multioptiongreeks` (no SDK helper: its raw request). Analyze mode on the sample
contract and the simulator; live mode on a contract of our own against the fake Kite, whose quotes the
greeks must read back as the Black-76 volatility they were priced at."""

from __future__ import annotations

import datetime as dt
import warnings
from decimal import Decimal

import openalgo
import pytest

from database import db
from database.symbol import SymToken
from services.market import black76, symbol_index
from services.market import options as mo
from services.trading import options as trading_options
from tests.helpers import live as live_fixtures
from tests.helpers.api import load_symbols, raise_limits, user_with_key
from tests.helpers.journal import journal
from tests.helpers.live import connect_live
from tests.helpers.sdk import ok, serving

kite = live_fixtures.kite  # fixture: the app on a fake Kite

TODAY = dt.datetime.now(black76.IST).date()
NOW = dt.datetime.combine(TODAY, dt.time(10, 0), black76.IST)


@pytest.fixture
def server(app, monkeypatch):
    raise_limits(app, monkeypatch)
    with serving(app) as url:
        yield url


def sdk(server: str, username: str) -> tuple[int, openalgo.api]:
    user, _row, key = user_with_key(username)
    warnings.simplefilter("ignore", DeprecationWarning)  # the SDK warns about strike_int and strategy
    return user.id, openalgo.api(api_key=key, host=server, timeout=30)


# -- analyze mode: the sample contract and the simulator ----------------------------------------------------
def _later_expiry(client: openalgo.api) -> str:
    """A NIFTY expiry two days away or more: greeks at any hour, even on an expiry day after its cut-off."""
    listed = ok(client.expiry(symbol="NIFTY", exchange="NFO", instrumenttype="options"))["data"]
    dates = [mo.parse_expiry(d) for d in listed]
    assert dates == sorted(dates)
    assert dates[0] >= TODAY
    return mo.expiry_code(next(d for d in dates if d >= TODAY + dt.timedelta(days=2)))


def test_sdk_options_in_analyze_mode(app, server):
    load_symbols(20_000)
    _uid, client = sdk(server, "optsdk")
    expiry = _later_expiry(client)
    futures = ok(client.expiry(symbol="NIFTY", exchange="NFO", instrumenttype="futures"))
    assert futures["message"] == f"Found {len(futures['data'])} expiry dates for NIFTY futures in NFO"

    atm = ok(client.optionsymbol(underlying="NIFTY", exchange="NSE_INDEX", expiry_date=expiry, offset="ATM",
                                 option_type="CE"))
    assert set(atm) == {"status", "mode", "symbol", "exchange", "lotsize", "tick_size", "freeze_qty", "underlying_ltp"}
    chain = mo.chain("NIFTY", "NFO", mo.parse_expiry(expiry))
    assert atm["symbol"] == chain.leg(chain.strikes[chain.atm_index(Decimal(str(atm["underlying_ltp"])))], "CE").symbol
    itm = ok(client.optionsymbol(underlying="NIFTY", exchange="NSE_INDEX", expiry_date=expiry, offset="ITM2",
                                 option_type="PE", strike_int=50, strategy="Python"))
    assert itm["exchange"] == "NFO"
    assert itm["symbol"].endswith("PE")

    lot = atm["lotsize"]
    placed = ok(client.optionsorder(strategy="SDKopt", underlying="NIFTY", exchange="NSE_INDEX", expiry_date=expiry,
                                    offset="ATM", option_type="CE", action="BUY", quantity=lot, product="NRML"))
    assert (placed["mode"], placed["offset"], placed["option_type"], placed["exchange"]) == \
        ("analyze", "ATM", "CE", "NFO")
    assert ok(client.orderstatus(order_id=placed["orderid"], strategy="SDKopt"))["data"]["order_status"] == "complete"
    split = ok(client.optionsorder(strategy="SDKopt", underlying="NIFTY", exchange="NSE_INDEX", expiry_date=expiry,
                                   offset="OTM1", option_type="CE", action="BUY", quantity=2 * lot, splitsize=lot))
    assert [r["status"] for r in split["results"]] == ["success", "success"]

    multi = ok(client.optionsmultiorder(strategy="SDKstraddle", underlying="NIFTY", exchange="NSE_INDEX",
                                        expiry_date=expiry, legs=[
                                            {"offset": "ATM", "option_type": "CE", "action": "SELL", "quantity": lot},
                                            {"offset": "ATM", "option_type": "PE", "action": "SELL", "quantity": lot},
                                            {"offset": "OTM3", "option_type": "CE", "action": "BUY", "quantity": lot},
                                            {"offset": "OTM3", "option_type": "PE", "action": "BUY", "quantity": lot}]))
    assert [(r["leg"], r["status"]) for r in multi["results"]] == [(1, "success"), (2, "success"), (3, "success"),
                                                                   (4, "success")]
    assert [o.action.value for o in journal()[-4:]] == ["BUY", "BUY", "SELL", "SELL"]

    body = ok(client.optionchain(underlying="NIFTY", exchange="NSE_INDEX", expiry_date=expiry, strike_count=3,
                                 with_greeks=True))
    rows = body["chain"]
    assert [(r["ce"]["label"], r["pe"]["label"]) for r in rows] == [
        ("ITM3", "OTM3"), ("ITM2", "OTM2"), ("ITM1", "OTM1"), ("ATM", "ATM"), ("OTM1", "ITM1"), ("OTM2", "ITM2"),
        ("OTM3", "ITM3")]
    middle = rows[3]
    assert middle["strike"] == body["atm_strike"]
    assert body["forward_price"] == pytest.approx(middle["strike"] + middle["ce"]["ltp"] - middle["pe"]["ltp"],
                                                  abs=1e-6)
    assert all(0 < r["ce"]["implied_volatility"] < 200 and -1 < r["pe"]["delta"] < 0 for r in rows)

    greeks = ok(client.optiongreeks(symbol=middle["ce"]["symbol"], exchange="NFO", interest_rate=0))
    years = greeks["days_to_expiry"] / 365
    sigma = black76.implied_vol("CE", greeks["option_price"], greeks["spot_price"], greeks["strike"], years)
    assert greeks["implied_volatility"] == pytest.approx(sigma * 100, abs=0.1)  # from the quotes it answers with
    assert greeks["greeks"]["delta"] == pytest.approx(
        black76.greeks("CE", greeks["spot_price"], greeks["strike"], years, sigma).delta, abs=2e-3)

    synthetic = ok(client.syntheticfuture(underlying="NIFTY", exchange="NSE_INDEX", expiry_date=expiry))
    assert set(synthetic) == {"status", "mode", "underlying", "underlying_ltp", "expiry", "atm_strike",
                              "synthetic_future_price"}
    assert abs(synthetic["synthetic_future_price"] / synthetic["underlying_ltp"] - 1) < 0.05

    batch = ok(client._make_request("multioptiongreeks", {"apikey": client.api_key, "symbols": [
        {"symbol": middle["ce"]["symbol"], "exchange": "NFO"}, {"symbol": middle["pe"]["symbol"], "exchange": "NFO"}]}))
    assert batch["summary"] == {"total": 2, "success": 2, "failed": 0}
    assert [d["option_type"] for d in batch["data"]] == ["CE", "PE"]


def test_sdk_options_errors(app, server):
    load_symbols(20_000)
    _uid, client = sdk(server, "opterr")
    expiry = _later_expiry(client)
    bad = client.optionsymbol(underlying="NIFTY", exchange="NSE_INDEX", expiry_date=expiry, offset="ATM9X",
                              option_type="CE")
    assert (bad["status"], bad["code"]) == ("error", 400)
    assert "offset must be ATM, ITM1 to ITM50 or OTM1 to OTM50" in bad["message"]
    missing = client.optionsorder(strategy="S", underlying="NOSUCH", exchange="NSE_INDEX", expiry_date=expiry,
                                  offset="ATM", option_type="CE", action="BUY", quantity=75)
    assert (missing["status"], missing["code"]) == ("error", 404)
    wrong_key = openalgo.api(api_key="not-a-key", host=server, timeout=30).optiongreeks(symbol="X", exchange="NFO")
    assert (wrong_key["status"], wrong_key["code"]) == ("error", 401)


# -- live mode: the fake Kite ---------------------------------------------------------------------------
WEEK = TODAY + dt.timedelta(days=7)
W = mo.expiry_code(WEEK)
SPOT, FORWARD, SIGMA = 22010.0, 22060.0, 0.15
STRIKES = range(21800, 22201, 50)


def _live_price(kind: str, strike: int) -> float:
    return round(black76.price(kind, FORWARD, strike, black76.years_to_expiry(NOW, "NFO", WEEK), SIGMA), 2)


@pytest.fixture
def live_contract(app, kite, monkeypatch):
    """Our contract and Kite's instruments dump agree on every row; Kite's last prices are Black-76 at SIGMA."""
    monkeypatch.setattr(trading_options, "utcnow", lambda: NOW)
    ours = [("NIFTY", "NIFTY 50", "NSE_INDEX", "NSE", "INDEX", None, None, 1, SPOT)]
    for k in STRIKES:
        for kind in ("CE", "PE"):
            ours.append((f"NIFTY{W}{k}{kind}", f"NIFTY{WEEK:%y}{WEEK.month}{WEEK:%d}{k}{kind}", "NFO", "NFO", kind,
                         WEEK, Decimal(k), 75, _live_price(kind, k)))
    dump = []
    for n, (sym, brs, ex, brex, itype, expiry, strike, lot, last) in enumerate(ours):
        token = 900_000 + n
        db.session.add(SymToken(symbol=sym, brsymbol=brs, name="NIFTY 50" if itype == "INDEX" else "NIFTY",
                                exchange=ex, brexchange=brex, token=str(token), expiry=expiry, strike=strike,
                                lotsize=lot, instrumenttype=itype, tick_size=Decimal("0.05")))
        dump.append((str(token), str(n), brs, "NIFTY", str(last), expiry.isoformat() if expiry else "",
                     str(strike or 0), "0.05", str(lot), "EQ" if itype == "INDEX" else itype,
                     "INDICES" if itype == "INDEX" else "NFO-OPT", brex))
    db.session.commit()
    symbol_index.reload()
    kite.fake.instruments = dump
    return kite


def test_sdk_options_in_live_mode(app, server, live_contract):
    uid, client = sdk(server, "optlive")
    connect_live(uid, live_contract)
    body = ok(client.optionchain(underlying="NIFTY", exchange="NSE_INDEX", expiry_date=W, strike_count=2,
                                 with_greeks=True))
    assert "mode" not in body  # live mode
    assert (body["underlying_ltp"], body["atm_strike"]) == (SPOT, 22000.0)
    assert body["forward_price"] == pytest.approx(22000 + _live_price("CE", 22000) - _live_price("PE", 22000), abs=1e-6)
    for row in body["chain"]:
        assert row["ce"]["ltp"] == _live_price("CE", int(row["strike"]))  # Kite's quote, as served
        assert row["ce"]["implied_volatility"] == pytest.approx(SIGMA * 100, abs=0.1)
        assert row["pe"]["implied_volatility"] == pytest.approx(SIGMA * 100, abs=0.1)
        assert row["ce"]["oi"] == 4500

    greeks = ok(client.optiongreeks(symbol=f"NIFTY{W}22100CE", exchange="NFO"))
    assert (greeks["option_price"], greeks["spot_price"]) == (_live_price("CE", 22100), round(body["forward_price"], 2))
    assert greeks["implied_volatility"] == pytest.approx(SIGMA * 100, abs=0.1)
    synthetic = ok(client.syntheticfuture(underlying="NIFTY", exchange="NSE_INDEX", expiry_date=W))
    assert synthetic["synthetic_future_price"] == pytest.approx(FORWARD, abs=0.5)
    assert ok(client.optionsymbol(underlying="NIFTY", exchange="NSE_INDEX", expiry_date=W, offset="OTM2",
                                  option_type="PE"))["symbol"] == f"NIFTY{W}21900PE"

    placed = ok(client.optionsorder(strategy="Live", underlying="NIFTY", exchange="NSE_INDEX", expiry_date=W,
                                    offset="ITM1", option_type="CE", action="BUY", quantity=75))
    assert placed["symbol"] == f"NIFTY{W}21950CE"
    assert placed["orderid"] in live_contract.fake.order_history  # the broker's order id
    multi = ok(client.optionsmultiorder(strategy="Live", underlying="NIFTY", exchange="NSE_INDEX", expiry_date=W,
                                        legs=[{"offset": "ATM", "option_type": "PE", "action": "SELL", "quantity": 75},
                                              {"offset": "OTM2", "option_type": "PE", "action": "BUY",
                                               "quantity": 75}]))
    assert [(r["leg"], r["status"], r["mode"]) for r in multi["results"]] == [(1, "success", "live"),
                                                                              (2, "success", "live")]
    assert [(o.symbol, o.mode.value) for o in journal()] == [(f"NIFTY{W}21950CE", "live"), (f"NIFTY{W}21900PE", "live"),
                                                             (f"NIFTY{W}22000PE", "live")]
    refused = client.optionsorder(strategy="Live", underlying="NIFTY", exchange="NSE_INDEX", expiry_date=W,
                                  offset="ATM", option_type="CE", action="BUY", quantity=10)
    assert (refused["status"], refused["code"]) == ("error", 400)  # part of a lot: refused before the broker
    assert len(live_contract.fake.order_history) == 3
