"""REST API v1 market data and margins: multiquotes, depth, instruments (GET), margin — analyze mode on both
databases, live mode against the fake Kite server."""

from __future__ import annotations

import csv
import io

import pytest

from database import db
from services.market import symbol_index
from services.trading import venues
from tests.helpers import live as live_fixtures
from tests.helpers.api import api_logs, flush_logs, load_symbols, post, raise_limits, user_with_key
from tests.helpers.live import connect_live

kite = live_fixtures.kite
QUOTE_FIELDS = {"open", "high", "low", "ltp", "ask", "bid", "prev_close", "volume", "oi"}
DEPTH_FIELDS = {"open", "high", "low", "ltp", "ltq", "prev_close", "volume", "oi", "totalbuyqty", "totalsellqty",
                "bids", "asks"}


@pytest.fixture
def user_key(app, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols(6000)
    user, _row, plaintext = user_with_key()
    return user, plaintext


@pytest.fixture
def key(user_key):
    return user_key[1]


def _first(itype: str, exchange: str = "NFO", name: str = "NIFTY"):
    found = [r for r in symbol_index.index().records
             if r.exchange == exchange and r.instrumenttype == itype and r.name == name]
    assert found, (itype, exchange, name)
    return min(found, key=lambda r: (r.expiry, abs(float(r.strike or 0) - 22000)))


# -- multiquotes ------------------------------------------------------------------------------------------
def test_multiquotes_in_request_order_with_errors_in_place(client, key):
    fut = _first("FUT")
    resp = post(client, "multiquotes", {"apikey": key, "symbols": [
        {"symbol": "INFY", "exchange": "NSE"}, {"symbol": "NOPE", "exchange": "NSE"},
        {"symbol": "nifty", "exchange": "nse_index"}, {"symbol": fut.symbol, "exchange": "NFO"},
        {"symbol": "TCS", "exchange": "MOON"}]})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "success"
    assert body["mode"] == "analyze"
    results = body["results"]
    assert [(r["symbol"], r["exchange"]) for r in results] == [
        ("INFY", "NSE"), ("NOPE", "NSE"), ("NIFTY", "NSE_INDEX"), (fut.symbol, "NFO"), ("TCS", "MOON")]
    for r in (results[0], results[2], results[3]):
        assert set(r["data"]) == QUOTE_FIELDS
        assert r["data"]["ltp"] > 0
    assert results[1]["error"] == "Symbol NOPE not found in exchange NSE"
    assert "exchange must be one of" in results[4]["error"]
    # The same prices as the single-quote endpoint answers.
    single = post(client, "quotes", {"apikey": key, "symbol": "INFY", "exchange": "NSE"}).get_json()["data"]
    assert single["ltp"] == results[0]["data"]["ltp"]


def test_multiquotes_none_valid_is_400_listing_them(client, key):
    resp = post(client, "multiquotes", {"apikey": key, "symbols": [{"symbol": "NOPE", "exchange": "NSE"},
                                                                  {"symbol": "X", "exchange": "Y"}]})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["status"] == "error"
    assert body["invalid_symbols"] == [{"symbol": "NOPE", "exchange": "NSE"}, {"symbol": "X", "exchange": "Y"}]


@pytest.mark.parametrize("symbols", [[], "INFY", [{"symbol": "INFY"}], [{"symbol": "", "exchange": "NSE"}],
                                     [{"symbol": "A", "exchange": "NSE"}] * 501, None, [7]])
def test_multiquotes_bad_bodies_are_400(client, key, symbols):
    resp = post(client, "multiquotes", {"apikey": key, "symbols": symbols})
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["status"] == "error"


# -- depth ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("symbol", "exchange"), [("INFY", "NSE"), ("NIFTY", "NSE_INDEX"), (None, "NFO")])
def test_depth_five_levels_around_the_last_price(client, key, symbol, exchange):
    symbol = symbol or _first("CE").symbol
    resp = post(client, "depth", {"apikey": key, "symbol": symbol, "exchange": exchange})
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()["data"]
    assert set(data) == DEPTH_FIELDS
    bids, asks = data["bids"], data["asks"]
    assert len(bids) == len(asks) == 5
    assert all(set(level) == {"price", "quantity"} for level in bids + asks)
    assert bids[0]["price"] < data["ltp"] < asks[0]["price"]
    assert [b["price"] for b in bids] == sorted((b["price"] for b in bids), reverse=True)
    assert [a["price"] for a in asks] == sorted(a["price"] for a in asks)
    assert len({b["price"] for b in bids}) == 5
    assert len({a["price"] for a in asks}) == 5
    assert data["totalbuyqty"] >= sum(b["quantity"] for b in bids) > 0
    assert data["totalsellqty"] >= sum(a["quantity"] for a in asks) > 0
    quote = post(client, "quotes", {"apikey": key, "symbol": symbol, "exchange": exchange}).get_json()["data"]
    assert (quote["bid"], quote["ltp"], quote["ask"]) == (bids[0]["price"], data["ltp"], asks[0]["price"])


def test_depth_of_an_unknown_symbol_is_404(client, key):
    resp = post(client, "depth", {"apikey": key, "symbol": "NOPE", "exchange": "NSE"})
    assert resp.status_code == 404
    assert resp.get_json() == {"status": "error", "message": "Symbol NOPE not found in exchange NSE"}


# -- instruments ------------------------------------------------------------------------------------------
def test_instruments_json_and_csv(app, client, key):
    resp = client.get("/api/v1/instruments", query_string={"apikey": key, "exchange": "nse"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    rows = body["data"]
    expected = [r for r in symbol_index.index().records if r.exchange == "NSE"]
    assert len(rows) == len(expected) > 50
    assert body["message"] == f"Found {len(rows)} instruments for NSE"
    assert set(rows[0]) == {"symbol", "brsymbol", "name", "exchange", "brexchange", "token", "expiry", "strike",
                            "lotsize", "instrumenttype", "tick_size"}
    assert {r["symbol"] for r in rows} == {r.symbol for r in expected}

    resp = client.get("/api/v1/instruments", query_string={"apikey": key, "exchange": "NFO", "format": "CSV"})
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert len(table) == sum(1 for r in symbol_index.index().records if r.exchange == "NFO")
    assert {"symbol", "expiry", "strike", "lotsize"} <= set(table[0])

    flush_logs(app)
    logged = [row for row in api_logs() if row.api_type == "instruments"]
    assert len(logged) == 2
    assert "apikey" not in str(logged[0].request)  # the key never reaches the log
    assert logged[0].response == {"status": "success", "exchange": "NSE", "format": "json", "rows": len(rows)}


@pytest.mark.parametrize("query", [{"exchange": "NSE"}, {"exchange": "MOON", "apikey": "k"},
                                   {"apikey": "k"}, {"apikey": "k", "exchange": "NSE", "format": "xml"}])
def test_instruments_refusals(client, key, query):
    query = {k: (key if v == "k" else v) for k, v in query.items()}
    resp = client.get("/api/v1/instruments", query_string=query)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["status"] == "error"


def test_instruments_with_a_wrong_key_is_403(client, key):
    resp = client.get("/api/v1/instruments", query_string={"apikey": "nope", "exchange": "NSE"})
    assert resp.status_code == 403


# -- margin -----------------------------------------------------------------------------------------------
def _margin(client, key, positions):
    return post(client, "margin", {"apikey": key, "positions": positions})


def _leg(symbol, action, qty, exchange="NFO", product="NRML", price="0"):
    return {"symbol": symbol, "exchange": exchange, "action": action, "quantity": str(qty), "product": product,
            "pricetype": "MARKET" if price == "0" else "LIMIT", "price": price}


def test_margin_of_futures_options_and_equity(client, key):
    fut, ce = _first("FUT"), _first("CE")
    quote = post(client, "quotes", {"apikey": key, "symbol": fut.symbol, "exchange": "NFO"}).get_json()["data"]
    short_fut = _margin(client, key, [_leg(fut.symbol, "SELL", fut.lotsize)]).get_json()
    assert short_fut["status"] == "success", short_fut
    data = short_fut["data"]
    notional = quote["ltp"] * fut.lotsize
    assert 0.05 * notional < data["span_margin"] < 0.2 * notional
    assert data["total_margin_required"] == pytest.approx(data["span_margin"] + data["exposure_margin"], abs=0.02)

    long_call = _margin(client, key, [_leg(ce.symbol, "BUY", ce.lotsize)]).get_json()["data"]
    premium = post(client, "quotes", {"apikey": key, "symbol": ce.symbol, "exchange": "NFO"}).get_json()["data"]["ltp"]
    assert long_call["total_margin_required"] == pytest.approx(premium * ce.lotsize, abs=0.02)
    assert long_call["span_margin"] == 0

    hedged = _margin(client, key, [_leg(fut.symbol, "SELL", fut.lotsize), _leg(ce.symbol, "BUY", ce.lotsize)])
    hedged = hedged.get_json()["data"]
    assert hedged["total_margin_required"] < data["total_margin_required"] + long_call["total_margin_required"]
    assert hedged["margin_benefit"] > 0

    cash = _margin(client, key, [_leg("INFY", "BUY", 10, "NSE", "CNC", "1500")]).get_json()["data"]
    assert cash["total_margin_required"] == pytest.approx(15000.0)
    intraday = _margin(client, key, [_leg("INFY", "BUY", 10, "NSE", "MIS", "1500")]).get_json()["data"]
    assert intraday["total_margin_required"] == pytest.approx(3000.0)  # MIS_LEVERAGE 5


@pytest.mark.parametrize(("positions", "status"), [
    ([], 400), ([_leg("INFY", "BUY", 1, "NSE")] * 51, 400), ([_leg("INFY", "HOLD", 1, "NSE")], 400),
    ([_leg("INFY", "BUY", 0, "NSE")], 400), ([_leg("INFY", "BUY", "ten", "NSE")], 400),
    ([{"symbol": "INFY", "exchange": "NSE"}], 400), ([_leg("NOPE", "BUY", 1, "NSE")], 404)])
def test_margin_refusals(client, key, positions, status):
    resp = _margin(client, key, positions)
    assert resp.status_code == status, resp.get_json()
    assert resp.get_json()["status"] == "error"


# -- live mode --------------------------------------------------------------------------------------------
def test_live_mode_asks_the_broker(client, user_key, kite):
    user, key = user_key
    connect_live(user.id, kite)
    body = post(client, "multiquotes", {"apikey": key, "symbols": [{"symbol": "INFY", "exchange": "NSE"},
                                                                  {"symbol": "NOPE", "exchange": "NSE"}]}).get_json()
    assert body["status"] == "success", body
    assert "mode" not in body
    assert body["results"][0]["data"]["ltp"] > 0
    assert "error" in body["results"][1]

    depth = post(client, "depth", {"apikey": key, "symbol": "INFY", "exchange": "NSE"}).get_json()
    assert depth["status"] == "success", depth
    assert len(depth["data"]["bids"]) == 5

    margin = _margin(client, key, [_leg("INFY", "BUY", 10, "NSE", "CNC", "1500")]).get_json()
    assert margin["status"] == "success", margin
    assert margin["data"]["total_margin_required"] > 0


def test_live_mode_without_a_session_is_403(client, user_key):
    user, key = user_key
    venues.set_analyze(user.id, False)
    db.session.commit()
    for name, body in (("multiquotes", {"symbols": [{"symbol": "INFY", "exchange": "NSE"}]}),
                       ("depth", {"symbol": "INFY", "exchange": "NSE"}),
                       ("margin", {"positions": [_leg("INFY", "BUY", 1, "NSE")]})):
        resp = post(client, name, {"apikey": key, **body})
        assert resp.status_code == 403, (name, resp.get_json())
