"""REST API v1 options endpoints (docs/api.md, Options) on a contract and quotes the tests control: expiries,
contract resolution, option orders through the order path, the chain and its greeks, the greeks endpoints
against Black-76 on the quotes actually served, the synthetic future, and every error answer.

Expiries are days after today and the options' clock is held at 10:00 (IST) today, so that the time to
expiry, and every greek, is the same at any hour of any day.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from database import db
from database.symbol import SymToken
from services.market import black76, symbol_index
from services.market import options as mo
from services.trading import options as trading_options
from tests.helpers.api import api_logs, flush_logs, latency_rows, orders_count, post, raise_limits, user_with_key
from tests.helpers.journal import journal
from tests.helpers.orders import set_quote

D = Decimal
TODAY = dt.datetime.now(black76.IST).date()
NOW = dt.datetime.combine(TODAY, dt.time(10, 0), black76.IST)
WEEK, MONTH, GONE = TODAY + dt.timedelta(days=7), TODAY + dt.timedelta(days=35), TODAY - dt.timedelta(days=1)
W, M = mo.expiry_code(WEEK), mo.expiry_code(MONTH)
SPOT, CARRY, SIGMA = D("22010"), D("50"), 0.15  # the index, the forward's premium over it, the chain's volatility
FORWARD = SPOT + CARRY
WEEK_STRIKES = range(21500, 22501, 50)
FUT = f"NIFTY{M}FUT"
CRUDE_FUT = f"CRUDEOIL{mo.expiry_code(WEEK + dt.timedelta(days=3))}FUT"


def _contract() -> list[tuple]:
    rows = [("NIFTY", "NIFTY 50", "NSE_INDEX", "NSE", "NIFTY 50", "INDEX", None, None, 1, None),
            (FUT, FUT, "NFO", "NFO", "NIFTY", "FUT", MONTH, None, 75, 1800),
            (CRUDE_FUT, CRUDE_FUT, "MCX", "MCX", "CRUDEOIL", "FUT", WEEK + dt.timedelta(days=3), None, 100, None)]
    legs = [("NIFTY", "NFO", WEEK, WEEK_STRIKES, 75, 1800), ("NIFTY", "NFO", MONTH, range(21000, 23001, 100), 75, 1800),
            ("NIFTY", "NFO", GONE, [22000], 75, 1800), ("CRUDEOIL", "MCX", WEEK, range(6700, 6901, 50), 100, None)]
    for name, ex, expiry, strikes, lot, freeze in legs:
        for k in strikes:
            for kind in ("CE", "PE"):
                sym = f"{name}{mo.expiry_code(expiry)}{k}{kind}"
                rows.append((sym, sym, ex, ex, name, kind, expiry, D(k), lot, freeze))
    return rows


def price(kind: str, strike, expiry: dt.date = WEEK, forward: Decimal = FORWARD, exchange: str = "NFO") -> Decimal:
    years = black76.years_to_expiry(NOW, exchange, expiry)
    return D(str(round(black76.price(kind, float(forward), float(strike), years, SIGMA), 4)))


@pytest.fixture
def key(app, monkeypatch):
    raise_limits(app, monkeypatch)
    monkeypatch.setattr(trading_options, "utcnow", lambda: NOW)
    for n, (sym, brs, ex, brex, name, itype, expiry, strike, lot, freeze) in enumerate(_contract()):
        db.session.add(SymToken(symbol=sym, brsymbol=brs, name=name, exchange=ex, brexchange=brex, token=str(5000 + n),
                                expiry=expiry, strike=strike, lotsize=lot, instrumenttype=itype,
                                tick_size=D("0.05"), freeze_qty=freeze))
    db.session.commit()
    symbol_index.reload()
    set_quote("NIFTY", SPOT, exchange="NSE_INDEX")
    set_quote(FUT, FORWARD + 5, exchange="NFO")
    set_quote(CRUDE_FUT, 6810, exchange="MCX")
    for k in WEEK_STRIKES:
        for kind in ("CE", "PE"):
            set_quote(f"NIFTY{W}{k}{kind}", price(kind, k), exchange="NFO")
    for k in (21900, 22000, 22100):
        for kind in ("CE", "PE"):
            set_quote(f"NIFTY{M}{k}{kind}", price(kind, k, MONTH), exchange="NFO")
    _user, _row, plaintext = user_with_key("opt")
    return plaintext


def ok(resp) -> dict:
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "success", body
    return body


def refused(resp, status: int) -> str:
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"status", "message"}, body
    assert body["status"] == "error"
    return body["message"]


def target(key: str, **extra) -> dict:
    return {"apikey": key, "underlying": "NIFTY", "exchange": "NSE_INDEX", "expiry_date": W, **extra}


# -- expiry ---------------------------------------------------------------------------------------------
def test_expiry_lists_from_today_nearest_first(client, key):
    body = ok(post(client, "expiry", {"apikey": key, "symbol": "NIFTY", "exchange": "NFO",
                                      "instrumenttype": "options"}))
    assert body == {"status": "success", "message": "Found 2 expiry dates for NIFTY options in NFO",
                    "data": [mo.expiry_label(WEEK), mo.expiry_label(MONTH)]}  # yesterday's expiry is gone
    futures = ok(post(client, "expiry", {"apikey": key, "symbol": "nifty", "exchange": "nfo",
                                         "instrumenttype": "FUTURES"}))
    assert futures["data"] == [mo.expiry_label(MONTH)]
    none = ok(post(client, "expiry", {"apikey": key, "symbol": "NIFTY", "exchange": "BFO",
                                      "instrumenttype": "options"}))
    assert none == {"status": "success", "message": "No expiry dates found for NIFTY options in BFO", "data": []}


def test_expiry_validation(client, key):
    body = {"apikey": key, "symbol": "NIFTY", "exchange": "NSE", "instrumenttype": "options"}
    assert refused(post(client, "expiry", body), 400) == "exchange must be one of NFO, BFO, CDS, BCD, MCX, NCDEX"
    assert refused(post(client, "expiry", {**body, "exchange": "NFO", "instrumenttype": "calls"}), 400) == \
        "instrumenttype must be futures or options"
    assert refused(post(client, "expiry", {**body, "exchange": "NFO", "apikey": "wrong"}), 403) == \
        "Invalid openalgo apikey"


# -- optionsymbol -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("offset", "kind", "strike"), [
    ("ATM", "CE", 22000), ("ATM", "PE", 22000), ("ITM3", "CE", 21850), ("ITM3", "PE", 22150),
    ("OTM2", "CE", 22100), ("otm2", "pe", 21900), ("OTM10", "CE", 22500), ("ITM10", "PE", 22500)])
def test_optionsymbol_resolves_from_atm(client, key, offset, kind, strike):
    body = ok(post(client, "optionsymbol", target(key, offset=offset, option_type=kind)))
    assert body == {"status": "success", "mode": "analyze", "symbol": f"NIFTY{W}{strike}{kind.upper()}",
                    "exchange": "NFO", "lotsize": 75, "tick_size": 0.05, "freeze_qty": 1800, "underlying_ltp": 22010.0}


def test_optionsymbol_as_the_sdk_sends_it(client, key):
    # The SDK sends strike_int and quantities as strings, and a strategy it no longer uses.
    body = ok(post(client, "optionsymbol", target(key, offset="OTM1", option_type="CE", strike_int="100",
                                                  strategy="Python", expiry_date=M)))
    assert body["symbol"] == f"NIFTY{M}22100CE"
    inside = ok(post(client, "optionsymbol", {"apikey": key, "underlying": FUT, "exchange": "NFO", "offset": "ATM",
                                              "option_type": "PE"}))  # the expiry named inside the underlying
    assert (inside["symbol"], inside["underlying_ltp"]) == (f"NIFTY{M}22000PE", 22010.0)  # ATM from the index


def test_optionsymbol_of_a_commodity_prices_against_the_nearest_future(client, key):
    body = ok(post(client, "optionsymbol", {"apikey": key, "underlying": "CRUDEOIL", "exchange": "MCX",
                                            "expiry_date": W, "offset": "ITM1", "option_type": "CE"}))
    assert (body["symbol"], body["underlying_ltp"], body["freeze_qty"]) == (f"CRUDEOIL{W}6750CE", 6810.0, 1)


@pytest.mark.parametrize(("extra", "status", "message"), [
    ({"offset": "OTM11"}, 400, f"OTM11 CE is beyond the listed strikes of NIFTY {W} on NFO (ATM 22000; listed 21500 "
                               "to 22500)"),
    ({"offset": "OTM51"}, 400, "offset must be ATM, ITM1 to ITM50 or OTM1 to OTM50"),
    ({"offset": "ATM", "option_type": "XE"}, 400, "option_type must be CE or PE"),
    ({"expiry_date": "2026-11-28"}, 400, "expiry_date must be a date written DDMMMYY, e.g. 28NOV24"),
    ({"expiry_date": None}, 400, "expiry_date is required unless the underlying names its expiry (e.g. "
                                 "NIFTY28NOV24FUT)"),
    ({"expiry_date": mo.expiry_code(WEEK + dt.timedelta(days=1))}, 404,
     f"No strikes found for NIFTY expiring {mo.expiry_code(WEEK + dt.timedelta(days=1))} on NFO: check expiry_date "
     "(the expiry endpoint lists them) or update the master contract"),
    ({"underlying": "NOSUCH"}, 404, "Symbol NOSUCH not found in exchange NSE_INDEX"),
    ({"strike_int": "0"}, 400, "strike_int must be greater than 0"),
    ({"strike_int": "30", "offset": "ATM"}, 404, f"Symbol NIFTY{W}22020CE not found in exchange NFO"),
    ({"quantity": "75"}, 400, "unknown field: quantity"),
])
def test_optionsymbol_errors(client, key, extra, status, message):
    body = target(key, offset="OTM1", option_type="CE")
    body.update(extra)
    assert refused(post(client, "optionsymbol", body), status) == message


# -- orders ---------------------------------------------------------------------------------------------
def order(key: str, **extra) -> dict:
    return {**target(key), "strategy": "Opt", "offset": "ATM", "option_type": "CE", "action": "BUY", "quantity": "75",
            **extra}


def test_optionsorder_goes_through_the_order_path(app, client, key):
    body = ok(post(client, "optionsorder", order(key, offset="ITM2", product="NRML")))
    assert set(body) == {"status", "mode", "orderid", "symbol", "exchange", "underlying", "underlying_ltp", "offset",
                         "option_type"}
    assert (body["symbol"], body["exchange"], body["underlying"], body["underlying_ltp"], body["offset"],
            body["option_type"], body["mode"]) == (f"NIFTY{W}21900CE", "NFO", "NIFTY", 22010.0, "ITM2", "CE", "analyze")
    [row] = journal()
    assert (row.orderid, row.symbol, row.exchange.value, row.mode.value, row.strategy, row.quantity,
            row.product.value) == (body["orderid"], f"NIFTY{W}21900CE", "NFO", "analyze", "Opt", 75, "NRML")
    status = ok(post(client, "orderstatus", {"apikey": key, "strategy": "Opt", "orderid": body["orderid"]}))
    assert status["data"]["order_status"] == "complete"
    flush_logs(app)
    [latency] = latency_rows()
    assert (latency.endpoint, latency.orderid, latency.symbol, latency.mode, latency.is_success) == \
        ("optionsorder", body["orderid"], f"NIFTY{W}21900CE", "analyze", True)
    assert [(r.api_type, r.mode) for r in api_logs()] == [("optionsorder", "analyze"), ("orderstatus", "analyze")]


def test_optionsorder_keeps_the_lot_rules(client, key):
    assert refused(post(client, "optionsorder", order(key, quantity="70")), 400) == (
        f"quantity 70 is not a whole number of lots: NIFTY{W}22000CE trades in lots of 75 (e.g. 75 or 150)")
    assert refused(post(client, "optionsorder", order(key, quantity="1875")), 400).startswith(
        f"quantity 1875 is above the freeze quantity of NIFTY{W}22000CE")
    assert refused(post(client, "optionsorder", order(key, product="CNC")), 400) == \
        "product must be MIS or NRML: options are not delivered (CNC)"
    assert refused(post(client, "optionsorder", order(key, pricetype="LIMIT")), 400) == \
        "price is required for a LIMIT order"
    assert orders_count() == 0


def test_optionsorder_split(client, key):
    body = ok(post(client, "optionsorder", order(key, quantity="375", splitsize="150")))
    assert "orderid" not in body
    assert (body["symbol"], body["total_quantity"], body["split_size"]) == (f"NIFTY{W}22000CE", 375, 150)
    assert [(r["order_num"], r["quantity"], r["status"]) for r in body["results"]] == \
        [(1, 150, "success"), (2, 150, "success"), (3, 75, "success")]
    assert [o.quantity for o in journal()] == [150, 150, 75]
    assert refused(post(client, "optionsorder", order(key, quantity="7575", splitsize="75")), 400) == \
        "splitsize 75 would make 101 orders; at most 100 are allowed"


def test_optionsmultiorder_places_buy_legs_first(client, key):
    legs = [{"offset": "OTM2", "option_type": "CE", "action": "SELL", "quantity": 75},
            {"offset": "OTM4", "option_type": "CE", "action": "BUY", "quantity": 75},
            {"offset": "OTM2", "option_type": "PE", "action": "SELL", "quantity": 75},
            {"offset": "OTM4", "option_type": "PE", "action": "BUY", "quantity": "75", "product": "NRML"}]
    body = ok(post(client, "optionsmultiorder", {**target(key), "strategy": "Condor", "legs": legs}))
    assert (body["underlying"], body["underlying_ltp"], body["mode"]) == ("NIFTY", 22010.0, "analyze")
    results = body["results"]
    assert [(r["leg"], r["symbol"], r["action"], r["status"], r["mode"]) for r in results] == [
        (1, f"NIFTY{W}22100CE", "SELL", "success", "analyze"), (2, f"NIFTY{W}22200CE", "BUY", "success", "analyze"),
        (3, f"NIFTY{W}21900PE", "SELL", "success", "analyze"), (4, f"NIFTY{W}21800PE", "BUY", "success", "analyze")]
    assert {frozenset(r) for r in results} == {frozenset({"leg", "symbol", "exchange", "product", "offset",
                                                          "option_type", "action", "status", "orderid", "mode"})}
    placed = journal()  # in the order they were placed
    assert [(o.symbol, o.action.value, o.product.value) for o in placed] == [
        (f"NIFTY{W}22200CE", "BUY", "MIS"), (f"NIFTY{W}21800PE", "BUY", "NRML"),
        (f"NIFTY{W}22100CE", "SELL", "MIS"), (f"NIFTY{W}21900PE", "SELL", "MIS")]
    assert {o.orderid for o in placed} == {r["orderid"] for r in results}


def test_optionsmultiorder_a_failing_leg_does_not_stop_the_others(client, key):
    legs = [{"offset": "ATM", "option_type": "CE", "action": "BUY", "quantity": 75, "expiry_date": M},
            {"offset": "OTM20", "option_type": "CE", "action": "BUY", "quantity": 75},
            {"offset": "ATM", "option_type": "CE", "action": "SELL", "quantity": 10},
            {"offset": "ATM", "option_type": "PE", "action": "BUY", "quantity": 225, "splitsize": 150}]
    body = ok(post(client, "optionsmultiorder", {**target(key), "strategy": "Mixed", "legs": legs}))
    first, beyond, part_lot, split = body["results"]
    assert (first["status"], first["symbol"]) == ("success", f"NIFTY{M}22000CE")  # the leg's own expiry
    assert (beyond["status"], beyond["symbol"]) == ("error", None)
    assert beyond["message"].startswith(f"OTM20 CE is beyond the listed strikes of NIFTY {W}")
    assert (part_lot["status"], part_lot["symbol"]) == ("error", f"NIFTY{W}22000CE")
    assert part_lot["message"].startswith("quantity 10 is not a whole number of lots")
    assert (split["status"], split["total_quantity"], split["split_size"]) == ("success", 225, 150)
    assert [r["quantity"] for r in split["split_results"]] == [150, 75]
    assert "orderid" not in split
    assert orders_count() == 3


def test_optionsmultiorder_validation(client, key):
    body = {**target(key), "strategy": "S", "legs": []}
    assert refused(post(client, "optionsmultiorder", body), 400) == "legs must have at least 1 item(s)"
    body["legs"] = [{"offset": "ATM", "option_type": "CE", "action": "BUY", "quantity": 75}] * 21
    assert refused(post(client, "optionsmultiorder", body), 400) == "legs must have at most 20 items"
    body["legs"] = [{"offset": "ATM", "option_type": "CE", "action": "HOLD", "quantity": 75}]
    assert refused(post(client, "optionsmultiorder", body), 400) == "legs[0].action must be one of BUY, SELL"
    body["legs"][0]["action"] = "BUY"
    assert refused(post(client, "optionsmultiorder", {**body, "apikey": "nope"}), 403) == "Invalid openalgo apikey"


# -- the chain ------------------------------------------------------------------------------------------
def test_optionchain_shape_and_labels(client, key):
    body = ok(post(client, "optionchain", target(key, strike_count=2)))
    assert set(body) == {"status", "mode", "underlying", "underlying_symbol", "underlying_exchange", "underlying_ltp",
                         "underlying_prev_close", "expiry_date", "expiry_ts", "server_ts", "atm_strike",
                         "quotes_included", "greeks_included", "forward_price", "chain"}
    assert (body["underlying"], body["underlying_symbol"], body["underlying_exchange"], body["underlying_ltp"],
            body["expiry_date"], body["atm_strike"]) == ("NIFTY", "NIFTY", "NSE_INDEX", 22010.0, W, 22000.0)
    assert (body["quotes_included"], body["greeks_included"], body["forward_price"]) == (True, False, None)
    assert body["expiry_ts"] == int(dt.datetime.combine(WEEK, dt.time(15, 30), black76.IST).timestamp())
    assert body["server_ts"] == int(NOW.timestamp())
    chain = body["chain"]
    assert [(r["strike"], r["ce"]["label"], r["pe"]["label"]) for r in chain] == [
        (21900.0, "ITM2", "OTM2"), (21950.0, "ITM1", "OTM1"), (22000.0, "ATM", "ATM"), (22050.0, "OTM1", "ITM1"),
        (22100.0, "OTM2", "ITM2")]
    leg = chain[2]["ce"]
    assert set(leg) == {"symbol", "label", "ltp", "bid", "ask", "open", "high", "low", "prev_close", "volume", "oi",
                        "bid_qty", "ask_qty", "lotsize", "tick_size"}
    assert (leg["symbol"], leg["ltp"], leg["lotsize"], leg["tick_size"]) == \
        (f"NIFTY{W}22000CE", float(price("CE", 22000)), 75, 0.05)
    whole = ok(post(client, "optionchain", target(key)))
    assert [r["strike"] for r in whole["chain"]] == [float(k) for k in WEEK_STRIKES]


def test_optionchain_greeks_are_black76_on_the_chain_forward(client, key):
    body = ok(post(client, "optionchain", target(key, strike_count=5, with_greeks=True)))
    assert body["greeks_included"] is True
    c, p = price("CE", 22000), price("PE", 22000)
    assert body["forward_price"] == pytest.approx(float(22000 + c - p), abs=1e-9)  # put-call parity on ATM
    assert body["forward_price"] == pytest.approx(float(FORWARD), abs=1e-3)
    years = black76.years_to_expiry(NOW, "NFO", WEEK)
    for row in body["chain"]:
        for side, kind in (("ce", "CE"), ("pe", "PE")):
            leg = row[side]
            sigma = black76.implied_vol(kind, leg["ltp"], body["forward_price"], row["strike"], years)
            g = black76.greeks(kind, body["forward_price"], row["strike"], years, sigma)
            assert leg["implied_volatility"] == pytest.approx(round(sigma * 100, 2), abs=1e-9)
            assert leg["implied_volatility"] == pytest.approx(SIGMA * 100, abs=0.05)  # the volatility priced in
            assert (leg["delta"], leg["gamma"], leg["theta"], leg["vega"]) == pytest.approx(
                (round(g.delta, 4), round(g.gamma, 6), round(g.theta, 4), round(g.vega, 4)), abs=1e-9)
            assert "rho" not in leg
        assert 0 < row["ce"]["delta"] < 1
        assert -1 < row["pe"]["delta"] < 0
        assert row["ce"]["delta"] - row["pe"]["delta"] == pytest.approx(1, abs=2e-4)


def test_optionchain_validation(client, key):
    assert refused(post(client, "optionchain", target(key, strike_count=0)), 400) == \
        "strike_count must be at least 1"
    assert refused(post(client, "optionchain", target(key, strike_count=101)), 400) == \
        "strike_count is out of range (at most 100)"
    assert refused(post(client, "optionchain", target(key, interest_rate=-1)), 400) == \
        "interest_rate must not be negative"
    assert refused(post(client, "optionchain", target(key, with_greeks="maybe")), 400) == \
        "with_greeks must be true or false"


def test_syntheticfuture(client, key):
    body = ok(post(client, "syntheticfuture", target(key)))
    c, p = price("CE", 22000), price("PE", 22000)
    assert body == {"status": "success", "mode": "analyze", "underlying": "NIFTY", "underlying_ltp": 22010.0,
                    "expiry": W, "atm_strike": 22000.0, "synthetic_future_price": round(float(22000 + c - p), 2)}
    assert body["synthetic_future_price"] == pytest.approx(float(FORWARD), abs=0.01)


# -- greeks ---------------------------------------------------------------------------------------------
def greeks(key: str, symbol: str, **extra) -> dict:
    return {"apikey": key, "symbol": symbol, "exchange": "NFO", **extra}


def expect(kind: str, strike: float, forward: float, option_price: float, rate: float = 0.0,
           expiry: dt.date = WEEK, cutoff: dt.time | None = None) -> dict:
    years = black76.years_to_expiry(NOW, "NFO", expiry, cutoff)
    sigma = black76.implied_vol(kind, option_price, forward, strike, years, rate / 100)
    g = black76.greeks(kind, forward, strike, years, sigma, rate / 100)
    return {"days_to_expiry": round(years * 365, 4), "implied_volatility": round(sigma * 100, 2),
            "greeks": {"delta": round(g.delta, 4), "gamma": round(g.gamma, 6), "theta": round(g.theta, 4),
                       "vega": round(g.vega, 4), "rho": round(g.rho, 6)}}


def test_optiongreeks_on_the_synthetic_future(client, key):
    body = ok(post(client, "optiongreeks", greeks(key, f"NIFTY{W}22100CE")))
    assert set(body) == {"status", "mode", "symbol", "exchange", "underlying", "strike", "option_type", "expiry_date",
                         "days_to_expiry", "spot_price", "option_price", "interest_rate", "implied_volatility",
                         "greeks"}
    forward = float(22000 + price("CE", 22000) - price("PE", 22000))
    served = float(price("CE", 22100))
    assert (body["symbol"], body["underlying"], body["strike"], body["option_type"], body["interest_rate"]) == \
        (f"NIFTY{W}22100CE", "NIFTY", 22100.0, "CE", 0.0)
    assert body["expiry_date"] == f"{WEEK.day:02d}-{WEEK.strftime('%b').title()}-{WEEK.year}"
    assert (body["spot_price"], body["option_price"]) == (round(forward, 2), round(served, 2))
    want = expect("CE", 22100, forward, served)
    assert body["days_to_expiry"] == want["days_to_expiry"]
    assert body["implied_volatility"] == pytest.approx(want["implied_volatility"], abs=1e-9)
    assert body["implied_volatility"] == pytest.approx(SIGMA * 100, abs=0.05)
    assert body["greeks"] == pytest.approx(want["greeks"], abs=1e-9)


def test_optiongreeks_forward_rate_and_cutoff_overrides(client, key):
    served = float(price("PE", 21900))
    given = ok(post(client, "optiongreeks", greeks(key, f"NIFTY{W}21900PE", forward_price="22100",
                                                   interest_rate="6.5", expiry_time="10:00")))
    assert (given["spot_price"], given["interest_rate"]) == (22100.0, 6.5)
    want = expect("PE", 21900, 22100.0, served, rate=6.5, cutoff=dt.time(10, 0))
    assert given["days_to_expiry"] == pytest.approx(7.0, abs=1e-9) == want["days_to_expiry"]
    assert given["greeks"] == pytest.approx(want["greeks"], abs=1e-9)
    assert given["greeks"]["rho"] < 0
    future = ok(post(client, "optiongreeks", greeks(key, f"NIFTY{W}21900PE", underlying_symbol=FUT,
                                                    underlying_exchange="NFO")))
    assert future["spot_price"] == float(FORWARD + 5)  # a non-base underlying: its own last price
    spot = ok(post(client, "optiongreeks", greeks(key, f"NIFTY{W}21900PE", underlying_symbol="NIFTY",
                                                  underlying_exchange="NSE_INDEX")))
    assert spot["spot_price"] == round(float(22000 + price("CE", 22000) - price("PE", 22000)), 2)


def test_optiongreeks_without_time_value(client, key):
    set_quote(f"NIFTY{W}21500CE", "500", exchange="NFO")  # below the forward's intrinsic value of ~560
    body = ok(post(client, "optiongreeks", greeks(key, f"NIFTY{W}21500CE")))
    assert (body["implied_volatility"], body["greeks"]) == (0, {"delta": 1.0, "gamma": 0, "theta": 0, "vega": 0,
                                                                "rho": 0})
    assert body["note"] == trading_options.NO_TIME_VALUE
    assert body["time_value"] == 0
    assert body["intrinsic_value"] == pytest.approx(body["spot_price"] - 21500, abs=0.01)


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"symbol": f"NIFTY{mo.expiry_code(GONE)}22000CE"}, 400, f"Option has expired on {GONE.day:02d}-"
                                                             f"{GONE.strftime('%b').title()}-{GONE.year}"),
    ({"symbol": FUT}, 400, f"{FUT} on NFO is not an option"),
    ({"symbol": "NIFTY01JAN3022000CE"}, 404, "Symbol NIFTY01JAN3022000CE not found in exchange NFO"),
    ({"exchange": "NSE"}, 400, "exchange must be one of NFO, BFO, CDS, BCD, MCX, NCDEX"),
    ({"expiry_time": "25:00"}, 400, "expiry_time must be a time written HH:MM, e.g. 15:30"),
    ({"forward_price": "0"}, 400, "forward_price must be greater than 0"),
    ({"underlying_symbol": "NOSUCHFUT", "underlying_exchange": "NFO"}, 404,
     "Symbol NOSUCHFUT not found in exchange NFO"),
    ({"apikey": "not-a-key"}, 401, "Invalid openalgo apikey"),
])
def test_optiongreeks_errors(client, key, body, status, message):
    assert refused(post(client, "optiongreeks", {**greeks(key, f"NIFTY{W}22000CE"), **body}), status) == message


def test_multioptiongreeks_answers_each_symbol_in_order(client, key):
    gone = f"NIFTY{mo.expiry_code(GONE)}22000CE"
    symbols = [{"symbol": f"NIFTY{W}22000CE", "exchange": "NFO"}, {"symbol": "NOSUCH", "exchange": "NFO"},
               {"symbol": gone, "exchange": "NFO"},
               {"symbol": f"NIFTY{W}22000PE", "exchange": "NFO", "underlying_symbol": FUT,
                "underlying_exchange": "NFO"}]
    body = post(client, "multioptiongreeks", {"apikey": key, "symbols": symbols, "interest_rate": 5}).get_json()
    assert (body["status"], body["summary"], body["mode"]) == ("partial", {"total": 4, "success": 3, "failed": 1},
                                                                "analyze")
    assert body["message"] == "1 of 4 option greeks calculations failed: Symbol NOSUCH not found in exchange NFO"
    first, unknown, expired, on_future = body["data"]
    single = ok(post(client, "optiongreeks", greeks(key, f"NIFTY{W}22000CE", interest_rate=5)))
    assert first == {k: v for k, v in single.items() if k != "mode"}  # the batch answers as the single call does
    assert unknown == {"status": "error", "symbol": "NOSUCH", "exchange": "NFO",
                       "message": "Symbol NOSUCH not found in exchange NFO"}
    assert (expired["status"], expired["days_to_expiry"], expired["implied_volatility"], expired["note"]) == \
        ("success", 0, 0, trading_options.EXPIRED)
    assert set(expired["greeks"].values()) == {0}
    assert on_future["spot_price"] == float(FORWARD + 5)


def test_multioptiongreeks_errors(client, key):
    bad = post(client, "multioptiongreeks", {"apikey": key, "symbols": [{"symbol": "NOSUCH", "exchange": "NFO"}]})
    assert bad.status_code == 200
    assert (bad.get_json()["status"], bad.get_json()["summary"]) == ("error", {"total": 1, "success": 0, "failed": 1})
    many = [{"symbol": f"NIFTY{W}22000CE", "exchange": "NFO"}] * 51
    assert refused(post(client, "multioptiongreeks", {"apikey": key, "symbols": many}), 400) == \
        "symbols must have at most 50 items"
    assert refused(post(client, "multioptiongreeks", {"apikey": "nope", "symbols": many[:1]}), 401) == \
        "Invalid openalgo apikey"


# -- modes ----------------------------------------------------------------------------------------------
def test_live_mode_without_a_broker_session_is_403(client, key):
    ok(post(client, "analyzer/toggle", {"apikey": key, "mode": False}))
    message = "No live broker session: connect your broker or switch to analyze mode"
    for name, body in [("optionchain", target(key)), ("optionsymbol", target(key, offset="ATM", option_type="CE")),
                       ("optionsorder", order(key)), ("optiongreeks", greeks(key, f"NIFTY{W}22000CE"))]:
        assert refused(post(client, name, body), 403) == message
    # The expiries are the master contract's: no broker needed.
    ok(post(client, "expiry", {"apikey": key, "symbol": "NIFTY", "exchange": "NFO", "instrumenttype": "options"}))
    assert orders_count() == 0
