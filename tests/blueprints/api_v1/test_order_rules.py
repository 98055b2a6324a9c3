"""The exchange's order rules at the REST API (services.trading.rules): each refusal is a 400 whose message
names the rule and the allowed value, in analyze mode and in live mode, where the broker never sees the order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from database import db
from database.enums import Mode
from database.portfolio_db import Position
from tests.helpers import live as live_fixtures
from tests.helpers import orders as fx
from tests.helpers.api import orders_count, post, raise_limits, user_with_key
from tests.helpers.live import connect_live
from tests.helpers.orders import set_quote

kite = live_fixtures.kite  # fixture: the app on a fake Kite

contract = fx.contract  # fixture: INFY, SBIN (NSE, tick 0.05), NIFTY30APR26FUT (NFO, lots of 75)

FUT = "NIFTY30APR26FUT"
LOTS = f"quantity 7 is not a whole number of lots: {FUT} trades in lots of 75 (e.g. 75 or 150)"
TICK = "price 1000.03 is not on the tick of 0.05: use 1000.00 or 1000.05"


@pytest.fixture
def alice(app, monkeypatch, contract):
    raise_limits(app, monkeypatch)
    user, _row, key = user_with_key("alice")
    return user.id, key


def order(key: str, **extra) -> dict:
    return {"apikey": key, "strategy": "Rules", "exchange": "NSE", "symbol": "INFY", "action": "BUY",
            "quantity": "1", "pricetype": "MARKET", "product": "MIS", **extra}


def fut(key: str, **extra) -> dict:
    return order(key, exchange="NFO", symbol=FUT, product="NRML", **extra)


def refused(client, endpoint: str, body: dict) -> str:
    resp = post(client, endpoint, body)
    assert resp.status_code == 400, resp.get_json()
    answer = resp.get_json()
    assert answer["status"] == "error"
    return answer["message"]


# One case per rule: (endpoint, body builder, message). The quote of INFY is 1500.
CASES = {
    "lots": ("placeorder", lambda k: fut(k, quantity="7"), LOTS),
    "tick": ("placeorder", lambda k: order(k, pricetype="LIMIT", price="1000.03"), TICK),
    "tiny price": ("placeorder", lambda k: order(k, pricetype="LIMIT", price="1e-30"),
                   f"price 0.{'0' * 29}1 is not on the tick of 0.05: use 0.05"),
    "zero price": ("placeorder", lambda k: order(k, pricetype="LIMIT", price="0"),
                   "price is required for a LIMIT order"),
    "zero trigger": ("placeorder", lambda k: order(k, pricetype="SL-M", trigger_price="0"),
                     "trigger_price is required for a SL-M order"),
    "trigger tick": ("placeorder", lambda k: order(k, pricetype="SL-M", trigger_price="1600.01"),
                     "trigger_price 1600.01 is not on the tick of 0.05: use 1600.00 or 1600.05"),
    "buy sl side": ("placeorder", lambda k: order(k, pricetype="SL", price="1600", trigger_price="1605"),
                    "trigger_price 1605 is above the price 1600 of a BUY SL order: a BUY stop-loss triggers at or "
                    "below its limit price (trigger_price <= 1600)"),
    "sell sl side": ("placeorder", lambda k: order(k, action="SELL", pricetype="SL", price="1400",
                                                   trigger_price="1395"),
                     "trigger_price 1395 is below the price 1400 of a SELL SL order: a SELL stop-loss triggers at or "
                     "above its limit price (trigger_price >= 1400)"),
    "split lots": ("splitorder", lambda k: {**fut(k, quantity="150"), "splitsize": "50"},
                   f"splitsize 50 is not a whole number of lots: {FUT} trades in lots of 75 (e.g. 75 or 150)"),
    "smart lots": ("placesmartorder", lambda k: {**fut(k, quantity="0"), "position_size": "100"},
                   f"position_size 100 is not a whole number of lots: {FUT} trades in lots of 75 (e.g. 75 or 150)"),
    "smart quantity lots": ("placesmartorder", lambda k: {**fut(k, quantity="7"), "position_size": "0"}, LOTS),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_analyze_mode_refuses_each_rule_with_its_message(client, alice, case):
    set_quote("INFY", "1500")
    endpoint, body, message = CASES[case]
    assert refused(client, endpoint, body(alice[1])) == message
    assert orders_count() == 0  # refused before the venue: nothing journaled


def test_analyze_mode_refuses_a_stop_on_the_wrong_side_of_the_market(client, alice):
    _, key = alice
    set_quote("INFY", "1500")
    assert refused(client, "placeorder", order(key, pricetype="SL-M", trigger_price="1500")) == (
        "trigger_price 1500 of a BUY SL-M order must be above the last traded price 1500: a BUY stop triggers "
        "above the market (allowed: trigger_price > 1500)")
    assert refused(client, "placeorder", order(key, pricetype="SL", price="1510", trigger_price="1490")) == (
        "trigger_price 1490 of a BUY SL order must be above the last traded price 1500: a BUY stop triggers above "
        "the market (allowed: 1500 < trigger_price <= 1510)")
    assert refused(client, "placeorder", order(key, action="SELL", pricetype="SL-M", trigger_price="1500.05")) == (
        "trigger_price 1500.05 of a SELL SL-M order must be below the last traded price 1500: a SELL stop triggers "
        "below the market (allowed: trigger_price < 1500)")
    assert orders_count() == 0
    # on the right side: accepted, waiting for the trigger
    for body in (order(key, pricetype="SL-M", trigger_price="1500.05"),
                 order(key, action="SELL", pricetype="SL", price="1480", trigger_price="1499.95")):
        resp = post(client, "placeorder", body)
        assert resp.status_code == 200, resp.get_json()
    assert orders_count() == 2


def test_orders_that_keep_the_rules_pass(client, alice):
    _, key = alice
    set_quote(FUT, "22000", exchange="NFO")
    for body in (fut(key, quantity="150"), order(key, pricetype="LIMIT", price="1000.050"),
                 order(key, pricetype="LIMIT", price="1000")):
        resp = post(client, "placeorder", body)
        assert resp.status_code == 200, resp.get_json()
    split = post(client, "splitorder", {**fut(key, quantity="225"), "splitsize": "150"}).get_json()
    assert [r["quantity"] for r in split["results"]] == [150, 75]
    assert {r["status"] for r in split["results"]} == {"success"}


def test_a_basket_answers_each_refusal_in_its_result(client, alice):
    _, key = alice
    body = {"apikey": key, "strategy": "Rules", "orders": [
        {k: v for k, v in fut(key, quantity="7").items() if k not in ("apikey", "strategy")},
        {k: v for k, v in order(key).items() if k not in ("apikey", "strategy")},
    ]}
    results = post(client, "basketorder", body).get_json()["results"]
    assert results[0] == {"symbol": FUT, "status": "error", "message": LOTS}
    assert results[1]["status"] == "success"


def test_modify_checks_the_rules_on_the_orders_own_instrument(client, alice):
    _, key = alice
    set_quote("INFY", "1500")
    orderid = post(client, "placeorder", order(key, pricetype="LIMIT", price="1400")).get_json()["orderid"]
    base = {"orderid": orderid, "disclosed_quantity": "0", "trigger_price": "0"}
    assert refused(client, "modifyorder", {**order(key, pricetype="LIMIT", price="1000.03"), **base}) == TICK
    # the request names another instrument: the order's own (INFY, BUY) is what the rules see
    stop = {**order(key, symbol="SBIN", action="SELL", pricetype="SL-M", price="0"), **base, "trigger_price": "1499"}
    assert refused(client, "modifyorder", stop).startswith("trigger_price 1499 of a BUY SL-M order must be above "
                                                           "the last traded price 1500")
    ok = post(client, "modifyorder", {**order(key, pricetype="LIMIT", price="1450.05"), **base})
    assert ok.status_code == 200, ok.get_json()


def test_a_smart_order_whose_difference_is_not_whole_lots_is_refused(client, alice):
    user_id, key = alice
    set_quote(FUT, "22000", exchange="NFO")
    db.session.add(Position(user_id=user_id, mode=Mode.ANALYZE, symbol=FUT, exchange="NFO", product="NRML",
                            quantity=Decimal(10)))  # a position from before the rules
    db.session.commit()
    assert refused(client, "placesmartorder", {**fut(key, quantity="0"), "position_size": "75"}) == (
        f"quantity 65 is not a whole number of lots: {FUT} trades in lots of 75 (e.g. 75 or 150)")
    assert orders_count() == 0


# -- live mode: the broker never sees a refused order ----------------------------------------------------------
@pytest.fixture
def live_alice(app, alice, kite):
    user_id, key = alice
    connect_live(user_id, kite)
    return user_id, key


LIVE_CASES = sorted(c for c in CASES if c not in ("smart lots", "smart quantity lots"))


@pytest.mark.parametrize("case", LIVE_CASES)
def test_live_mode_refuses_each_rule_before_the_broker(client, kite, live_alice, case):
    endpoint, body, message = CASES[case]
    assert refused(client, endpoint, body(live_alice[1])) == message
    assert kite.fake.order_history == {}
    assert orders_count() == 0


@pytest.mark.parametrize("case", ["smart lots", "smart quantity lots"])
def test_live_smart_orders_refuse_part_lots_before_the_broker(client, kite, live_alice, case):
    endpoint, body, message = CASES[case]
    assert refused(client, endpoint, body(live_alice[1])) == message
    assert kite.fake.order_history == {}


def test_live_modify_refuses_off_tick_before_the_broker(client, kite, live_alice):
    _, key = live_alice
    orderid = post(client, "placeorder", order(key, symbol="SBIN", pricetype="LIMIT", price="700")).get_json()[
        "orderid"]
    history = {k: list(v) for k, v in kite.fake.order_history.items()}
    body = {**order(key, symbol="SBIN", pricetype="LIMIT", price="700.01"), "orderid": orderid,
            "disclosed_quantity": "0", "trigger_price": "0"}
    assert refused(client, "modifyorder", body) == "price 700.01 is not on the tick of 0.05: use 700.00 or 700.05"
    assert kite.fake.order_history == history  # no modification reached the broker


def test_live_mode_leaves_the_market_side_to_the_broker(client, kite, live_alice):
    _, key = live_alice
    resp = post(client, "placeorder", order(key, pricetype="LIMIT", price="1000.05"))
    assert resp.status_code == 200, resp.get_json()
    assert len(kite.fake.order_history) == 1


# -- the freeze quantity: above it one order is refused, a split of it passes ---------------------------------
FREEZE = 1800  # NSE's limit for NIFTY; 24 lots of 75
ABOVE = f"quantity 1875 is above the freeze quantity of {FUT}: at most 1800 in one order; " \
        "use splitorder with a splitsize of at most 1800"
SPLIT_ABOVE = f"splitsize 1875 is above the freeze quantity of {FUT}: at most 1800 in one order; " \
              "use a splitsize of at most 1800"


@pytest.fixture
def frozen(app, contract):
    """The future's contract with its freeze quantity."""
    from database.symbol import SymToken
    from services.market import symbol_index

    db.session.query(SymToken).filter_by(symbol=FUT).update({"freeze_qty": FREEZE})
    db.session.commit()
    symbol_index.reload()
    set_quote(FUT, "100", exchange="NFO")
    return FREEZE


def test_analyze_mode_refuses_an_order_above_the_freeze_quantity(client, alice, frozen):
    _, key = alice
    assert refused(client, "placeorder", fut(key, quantity="1875")) == ABOVE
    assert refused(client, "placesmartorder", {**fut(key, quantity="0"), "position_size": "1875"}) == ABOVE
    assert refused(client, "splitorder", {**fut(key, quantity="1875"), "splitsize": "1875"}) == SPLIT_ABOVE
    assert orders_count() == 0  # refused before the venue: nothing journaled
    resp = post(client, "placeorder", fut(key, quantity=str(FREEZE)))  # at the freeze quantity: accepted
    assert resp.status_code == 200, resp.get_json()
    assert orders_count() == 1


def test_analyze_mode_splits_above_the_freeze_quantity(client, alice, frozen):
    _, key = alice
    resp = post(client, "splitorder", {**fut(key, quantity="1875"), "splitsize": str(FREEZE)})
    assert resp.status_code == 200, resp.get_json()
    split = resp.get_json()
    assert [(r["quantity"], r["status"]) for r in split["results"]] == [(1800, "success"), (75, "success")]
    assert orders_count() == 2


def test_a_modify_above_the_freeze_quantity_is_refused(client, alice, frozen):
    _, key = alice
    orderid = post(client, "placeorder", fut(key, quantity="75", pricetype="LIMIT", price="50")).get_json()["orderid"]
    body = {**fut(key, quantity="1875", pricetype="LIMIT", price="50"), "orderid": orderid,
            "disclosed_quantity": "0", "trigger_price": "0"}
    assert refused(client, "modifyorder", body) == ABOVE


def test_live_mode_refuses_above_the_freeze_quantity_before_the_broker(client, kite, live_alice, frozen):
    _, key = live_alice
    assert refused(client, "placeorder", fut(key, quantity="1875")) == ABOVE
    assert refused(client, "splitorder", {**fut(key, quantity="1875"), "splitsize": "1875"}) == SPLIT_ABOVE
    assert kite.fake.order_history == {}
    assert orders_count() == 0
    # the broker lists the future (under its own symbol): the split's children reach it
    kite.fake.instruments.append(("13238786", "51714", "NIFTY26APRFUT", "NIFTY", "22100", "2026-04-30", "0", "0.05",
                                  "75", "FUT", "NFO-FUT", "NFO"))
    resp = post(client, "splitorder", {**fut(key, quantity="1875"), "splitsize": str(FREEZE)})
    assert resp.status_code == 200, resp.get_json()
    results = resp.get_json()["results"]
    assert [(r["quantity"], r["status"]) for r in results] == [(1800, "success"), (75, "success")], results
    assert sorted(int(h[0]["quantity"]) for h in kite.fake.order_history.values()) == [75, 1800]
