"""Issue #13, one instrument, one name: a symbol and an exchange are normalised at the API (case, surrounding
spaces), and whatever is stored (journal, positions) carries the master contract's own spelling, so every
spelling of an instrument reads and moves one book."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from database import db
from database.order_db import Order
from database.portfolio_db import Position
from services.trading import orders
from tests.helpers import trading
from tests.helpers.api import load_symbols, post, raise_limits, user_with_key

SPELLINGS = ("reliance", "RELIANCE", " reliance ", "Reliance")


@pytest.fixture
def alice(app, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols()
    user, _row, key = user_with_key("alice")
    return user.id, key


def order(key: str, symbol: str, exchange: str = "NSE", **extra) -> dict:
    return {"apikey": key, "strategy": "Test", "exchange": exchange, "symbol": symbol, "action": "BUY",
            "quantity": "1", "pricetype": "MARKET", "product": "MIS", **extra}


def journal() -> list[tuple[str, str]]:
    db.session.rollback()
    return [(o.symbol, o.exchange.value) for o in db.session.scalars(select(Order).order_by(Order.id))]


def position_rows(uid: int) -> list[tuple[str, str, str, int]]:
    db.session.rollback()
    return [(p.symbol, p.exchange.value, p.product.value, int(p.quantity))
            for p in db.session.scalars(select(Position).where(Position.user_id == uid).order_by(Position.id))]


def test_every_spelling_lands_in_one_position_and_one_journal_spelling(client, alice):
    uid, key = alice
    for symbol, exchange in zip(SPELLINGS, ("NSE", "nse", " nse ", "Nse"), strict=True):
        resp = post(client, "placeorder", order(key, symbol, exchange))
        assert resp.status_code == 200, resp.get_json()
    assert journal() == [("RELIANCE", "NSE")] * 4
    assert position_rows(uid) == [("RELIANCE", "NSE", "MIS", 4)]
    for symbol in SPELLINGS:
        resp = post(client, "openposition", {"apikey": key, "strategy": "Test", "symbol": symbol, "exchange": "nse",
                                             "product": "MIS"})
        assert resp.status_code == 200, resp.get_json()
        assert int(resp.get_json()["quantity"]) == 4
    book = post(client, "positionbook", {"apikey": key}).get_json()["data"]
    assert [(p["symbol"], p["exchange"], p["quantity"]) for p in book] == [("RELIANCE", "NSE", 4)]


def test_smart_orders_see_the_whole_book_whatever_the_spelling(client, alice):
    uid, key = alice
    assert post(client, "placeorder", order(key, "reliance", quantity="3")).status_code == 200
    resp = post(client, "placesmartorder", {**order(key, " Reliance ", "nse", quantity="0"), "position_size": "5"})
    assert resp.status_code == 200, resp.get_json()
    assert "orderid" in resp.get_json()
    resp = post(client, "placesmartorder", {**order(key, "RELIANCE", quantity="0"), "position_size": "5"})
    assert resp.get_json()["message"] == "Positions Already Matched. No Action needed."
    db.session.rollback()
    assert [(o.symbol, int(o.quantity)) for o in db.session.scalars(select(Order).order_by(Order.id))] == [
        ("RELIANCE", 3), ("RELIANCE", 2)]
    assert position_rows(uid) == [("RELIANCE", "NSE", "MIS", 5)]


def test_basket_split_and_close_position_work_on_the_one_book(client, alice):
    uid, key = alice
    basket = {"apikey": key, "strategy": "Test", "orders": [
        {k: v for k, v in order(key, s).items() if k not in ("apikey", "strategy")} for s in ("reliance", "RELIANCE")]}
    resp = post(client, "basketorder", basket).get_json()
    assert [(r["symbol"], r["status"]) for r in resp["results"]] == [("RELIANCE", "success")] * 2
    resp = post(client, "splitorder", {**order(key, " reliance ", "nse", quantity="3"), "splitsize": "2"})
    assert resp.status_code == 200, resp.get_json()
    assert position_rows(uid) == [("RELIANCE", "NSE", "MIS", 5)]
    assert post(client, "closeposition", {"apikey": key, "strategy": "Test"}).status_code == 200
    assert position_rows(uid) == [("RELIANCE", "NSE", "MIS", 0)]
    assert set(journal()) == {("RELIANCE", "NSE")}


def test_modify_and_the_data_endpoints_take_any_spelling(client, alice):
    _uid, key = alice
    placed = post(client, "placeorder", order(key, "reliance", pricetype="LIMIT", price="1")).get_json()
    resp = post(client, "modifyorder", {**order(key, " reliance ", "nse", pricetype="LIMIT", price="2",
                                                disclosed_quantity="0", trigger_price="0"),
                                        "orderid": placed["orderid"]})
    assert resp.status_code == 200, resp.get_json()
    for name in ("symbol", "quotes"):
        resp = post(client, name, {"apikey": key, "symbol": " reliance ", "exchange": " nse "})
        assert resp.status_code == 200, (name, resp.get_json())
    assert post(client, "symbol", {"apikey": key, "symbol": "reliance", "exchange": "nse"}).get_json()["data"][
        "symbol"] == "RELIANCE"
    found = post(client, "search", {"apikey": key, "query": "reliance", "exchange": " nse "}).get_json()
    assert found["status"] == "success"
    assert found["data"]
    assert {d["exchange"] for d in found["data"]} == {"NSE"}


def test_a_service_caller_gets_the_contract_spelling_too(alice):
    """Below the API (a webhook, the pages, a script): the use case journals the contract's spelling."""
    uid, _key = alice
    trading.place_order(uid, orders.OrderInput(strategy="s", exchange="nse", symbol="reliance", action="BUY",
                                               quantity=2))
    trading.place_order(uid, orders.OrderInput(strategy="s", exchange="NSE", symbol="RELIANCE", action="BUY",
                                               quantity=1))
    assert journal() == [("RELIANCE", "NSE")] * 2
    assert position_rows(uid) == [("RELIANCE", "NSE", "MIS", 3)]
    assert trading.open_position(uid, "reliance", "nse", "MIS") == 3
