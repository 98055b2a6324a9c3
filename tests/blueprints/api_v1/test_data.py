"""REST API v1 data and status endpoints: quotes, search, symbol, ping (no order services needed)."""

from __future__ import annotations

import pytest

from tests.helpers.api import load_symbols, post, raise_limits, user_with_key

QUOTE_FIELDS = {"open", "high", "low", "ltp", "ask", "bid", "prev_close", "volume", "oi"}
SYMBOL_FIELDS = {"id", "symbol", "brsymbol", "name", "exchange", "brexchange", "token", "expiry", "strike", "lotsize",
                 "instrumenttype", "tick_size", "freeze_qty"}


@pytest.fixture
def key(app, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols()
    _user, _row, plaintext = user_with_key(scopes=("data",))
    return plaintext


def test_quotes_shape(client, key):
    resp = post(client, "quotes", {"apikey": key, "symbol": "INFY", "exchange": "NSE"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "success"
    assert set(body["data"]) == QUOTE_FIELDS
    data = body["data"]
    assert data["ltp"] > 0
    assert data["bid"] <= data["ltp"] <= data["ask"]
    assert isinstance(data["volume"], int)
    assert isinstance(data["oi"], int)


def test_quotes_exchange_in_any_case_and_index(client, key):
    resp = post(client, "quotes", {"apikey": key, "symbol": "NIFTY", "exchange": "nse_index"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["ltp"] > 0


def test_quotes_unknown_symbol_is_404(client, key):
    resp = post(client, "quotes", {"apikey": key, "symbol": "NOSUCHSYM", "exchange": "NSE"})
    assert resp.status_code == 404
    assert resp.get_json() == {"status": "error", "message": "Symbol NOSUCHSYM not found in exchange NSE"}


def test_search_shape_and_count(client, key):
    resp = post(client, "search", {"apikey": key, "query": "INFY", "exchange": "NSE"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "success"
    assert body["message"] == f"Found {len(body['data'])} matching symbols"
    assert body["data"], body
    assert body["data"][0]["symbol"] == "INFY"
    for row in body["data"]:
        assert set(row) == SYMBOL_FIELDS
        assert row["exchange"] == "NSE"


def test_search_across_exchanges_without_an_exchange(client, key):
    body = post(client, "search", {"apikey": key, "query": "INFY"}).get_json()
    assert body["status"] == "success"
    assert {row["exchange"] for row in body["data"]} >= {"NSE"}


def test_search_nothing_found_is_an_empty_200(client, key):
    resp = post(client, "search", {"apikey": key, "query": "ZZQQXX"})
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "success", "message": "Found 0 matching symbols", "data": []}


def test_symbol_shape_and_404(client, key):
    resp = post(client, "symbol", {"apikey": key, "symbol": "INFY", "exchange": "NSE"})
    assert resp.status_code == 200
    data = resp.get_json()["data"]
    assert set(data) == SYMBOL_FIELDS
    assert (data["symbol"], data["exchange"], data["instrumenttype"]) == ("INFY", "NSE", "EQ")
    resp = post(client, "symbol", {"apikey": key, "symbol": "INFY", "exchange": "MCX"})
    assert resp.status_code == 404
    assert resp.get_json() == {"status": "error", "message": "Symbol INFY not found in exchange MCX"}


def test_ping(client, key):
    resp = post(client, "ping", {"apikey": key})
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "success", "data": {"message": "pong", "broker": "paper"}}


def test_data_key_cannot_read_books(client, key):
    resp = post(client, "funds", {"apikey": key})
    assert resp.status_code == 403
    assert "read scope" in resp.get_json()["message"]


def _row_id(symbol: str, exchange: str) -> int:
    from sqlalchemy import select

    from database import db
    from database.symbol import SymToken

    return db.session.execute(select(SymToken.id).where(SymToken.symbol == symbol,
                                                        SymToken.exchange == exchange)).scalar_one()


def _nifty_future(client, key) -> dict:
    found = post(client, "search", {"apikey": key, "query": "NIFTY FUT", "exchange": "NFO"}).get_json()["data"]
    return next(row for row in found if row["name"] == "NIFTY" and row["instrumenttype"] == "FUT")


def test_symbol_and_search_carry_the_row_id_and_the_freeze_quantity(client, key):
    # the sample contract: NSE's limit for the NIFTY derivatives; none for a cash instrument (sent as 1)
    future = _nifty_future(client, key)
    assert future["freeze_qty"] == 1800
    assert future["id"] == _row_id(future["symbol"], "NFO")
    data = post(client, "symbol", {"apikey": key, "symbol": future["symbol"], "exchange": "NFO"}).get_json()["data"]
    assert data == future
    equity = post(client, "symbol", {"apikey": key, "symbol": "INFY", "exchange": "NSE"}).get_json()["data"]
    assert equity["freeze_qty"] == 1
    assert equity["id"] == _row_id("INFY", "NSE")
    assert isinstance(equity["id"], int)
    options = post(client, "search", {"apikey": key, "query": "BANKNIFTY CE", "exchange": "NFO"}).get_json()["data"]
    assert options
    assert {row["freeze_qty"] for row in options} == {900}
    assert all(isinstance(row["id"], int) for row in options)
