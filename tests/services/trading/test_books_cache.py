"""Analyze-mode books come from the cached paper account: no query when nothing changed, fresh after
any write, and prices still move with quotes."""

from decimal import Decimal as D

from sqlalchemy import event

from database import db
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.orders import order, set_quote

contract = fx.contract  # fixture
users = fx.users  # fixture


def _count_sql(fn):
    seen = []
    engine = db.engine

    def hook(*_a):
        seen.append(1)

    event.listen(engine, "before_cursor_execute", hook)
    try:
        result = fn()
    finally:
        event.remove(engine, "before_cursor_execute", hook)
    return result, len(seen)


def test_reads_are_cached_and_follow_writes_and_quotes(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=10))
    first = trading.funds(alice)
    assert first["m2munrealized"] == "0.00"
    again, queries = _count_sql(lambda: trading.funds(alice))
    assert again == first
    assert queries == 0
    _, queries = _count_sql(lambda: trading.orderbook(alice))
    assert queries == 0
    set_quote("INFY", "1510")  # a stored broker quote: drops the cached quote, not the account
    assert trading.funds(alice)["m2munrealized"] == "100.00"
    assert trading.positionbook(alice)[0]["ltp"] == 1510.0
    trading.place_order(alice, order(action="SELL", quantity=10))
    assert len(trading.orderbook(alice)["orders"]) == 2
    assert len(trading.tradebook(alice)) == 2
    f = trading.funds(alice)
    assert f["m2mrealized"] == "100.00"
    assert f["utiliseddebits"] == "0.00"
    assert trading.positionbook(alice)[0]["quantity"] == 0


def test_open_orders_are_still_matched_lazily(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(pricetype="LIMIT", price="1490"))
    assert trading.orderbook(alice)["statistics"]["total_open_orders"] == 1
    set_quote("INFY", "1480")
    book = trading.orderbook(alice)
    assert book["orders"][0]["order_status"] == "complete"
    assert trading.positionbook(alice)[0]["quantity"] == 10
    assert D(trading.funds(alice)["utiliseddebits"]) > 0


def test_a_read_that_matches_nothing_writes_nothing(app, users):
    """Open orders are matched on read under the funds lock; when none fills, the account is not
    touched: no UPDATE, Funds.updated_at unchanged, the cached account kept."""
    from services.trading.paper import account as paper

    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(pricetype="LIMIT", price="1490"))
    trading.orderbook(alice)
    before = paper.read_funds(alice).updated_at
    db.session.rollback()
    updates = []

    def hook(_conn, _cursor, statement, *_a):
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    event.listen(db.engine, "before_cursor_execute", hook)
    try:
        for _ in range(3):
            assert trading.orderbook(alice)["statistics"]["total_open_orders"] == 1
            trading.funds(alice)
    finally:
        event.remove(db.engine, "before_cursor_execute", hook)
    assert updates == []
    assert paper.read_funds(alice).updated_at == before
