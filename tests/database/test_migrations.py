"""The schema belongs to the migrations: upgrade from empty, no drift, downgrade and back, and the
start-up path (AUTO_MIGRATE, init_db idempotent, a database behind head refused)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from app import create_app, setup_environment
from database import Base, db, schema
from database.order_db import Fill, Order
from database.portfolio_db import Funds, Holding, Position
from database.strategy_db import Strategy, StrategySymbolMapping
from database.symbol import Quote, SymToken
from database.types import utcnow
from database.user_db import User
from tests.conftest import shutdown_app
from tests.helpers.databases import app_overrides, create_pg_database, drop_pg_database, sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_app(request, tmp_path):
    """An application on an empty database, not migrated."""
    url = sqlite_url(str(tmp_path)) if request.param == "sqlite" else create_pg_database("algobridge_mig")
    application = create_app(app_overrides(url, str(tmp_path), AUTO_MIGRATE=False, SETUP_ENVIRONMENT=False))
    yield application
    shutdown_app(application)
    if request.param == "postgresql":
        drop_pg_database(url)


def _tables(application) -> set[str]:
    with application.app_context():
        return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def _no_drift(application) -> bool:
    """`flask db check`: exit 0 when the database matches the models, an error on drift."""
    result = application.test_cli_runner().invoke(args=["db", "check"])
    return result.exit_code == 0 and result.exception is None


def test_upgrade_check_downgrade_round_trip(empty_app):
    assert _tables(empty_app) == set()
    with empty_app.app_context():
        upgrade()
    assert _tables(empty_app) == set(Base.metadata.tables)
    assert _no_drift(empty_app)

    with empty_app.app_context():
        downgrade(revision="base")
    assert _tables(empty_app) == set()
    with empty_app.app_context():
        upgrade()
        assert schema.current_revision(db.engine) == schema.head_revision()
    assert _tables(empty_app) == set(Base.metadata.tables)
    assert _no_drift(empty_app)

    # The check can fail: drop an index behind the migrations' back and it reports the drift.
    with empty_app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_api_logs_created_at"))
    assert not _no_drift(empty_app)


def test_auto_migrate_then_init_db_is_idempotent(empty_app):
    empty_app.config["AUTO_MIGRATE"] = True
    setup_environment(empty_app)
    assert _tables(empty_app) == set(Base.metadata.tables)
    with empty_app.app_context():
        before = _snapshot()
    setup_environment(empty_app)  # a second start changes nothing
    with empty_app.app_context():
        assert _snapshot() == before


def _snapshot() -> dict[str, int]:
    with db.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in Base.metadata.tables}  # noqa: S608


def test_a_database_behind_head_is_refused_with_the_fix_named(empty_app):
    with pytest.raises(schema.SchemaError, match="flask db upgrade"):
        setup_environment(empty_app)


def test_head_revision_read_from_the_scripts_matches_alembic():
    assert schema.head_revision() == schema._alembic_heads()[0]


# -- ab899c8ea6c5: one instrument, one name (issue #13) ------------------------------------------------------
BEFORE_FOLD = "3c553ae48f4f"


def _seed_two_spellings() -> dict[str, int]:
    """Rows as the bridge stored them before issue #13: one instrument under several spellings."""
    now = utcnow()
    earlier, later = now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)
    ids: dict[str, int] = {}
    with db.engine.begin() as conn:
        def add(model, **values) -> int:
            # The table as it was at that revision: only the columns given (a newer column's Python
            # default would name a column the table does not have yet), with the id back.
            table = model.__table__
            # The table as the old revision had it: its columns the model still has, and those it has since lost.
            present = {c["name"]: c["type"] for c in inspect(conn).get_columns(table.name)}
            old = sa.Table(table.name, sa.MetaData(), *[c._copy() for c in table.c if c.name in present],
                           *[sa.Column(n, k) for n, k in present.items() if n not in table.c])
            return conn.execute(old.insert().values(**values)).inserted_primary_key[0]

        ids["alice"] = add(User, username="alice", password_hash="x", role="trader", is_active=True)
        ids["bob"] = add(User, username="bob", password_hash="x", role="trader", is_active=True)
        alice, bob = ids["alice"], ids["bob"]
        add(SymToken, symbol="RELIANCE", brsymbol="RELIANCE", exchange="NSE", brexchange="NSE", token="1",
            instrumenttype="EQ", lotsize=1)
        # alice: funds hold the margin of the four positions below and the 7 realized by the short one
        add(Funds, user_id=alice, mode="analyze", opening_balance=D(1_000_000), available_cash=D(1_000_000 + 7 - 1810),
            used_margin=D(1810), realized_pnl=D(7))
        pos = dict(user_id=alice, mode="analyze", exchange="NSE", sell_quantity=D(0), sell_value=D(0),
                   realized_pnl=D(0))
        # long 10 @ 100 and long 5 @ 130, MIS (leverage 5): one long 15 @ 110, margin 200 + 130
        ids["p_lower"] = add(Position, **pos, symbol="reliance", product="MIS", quantity=D(10), average_price=D(100),
                             buy_quantity=D(10), buy_value=D(1000), margin_blocked=D(200), updated_at=earlier)
        ids["p_upper"] = add(Position, **pos, symbol="RELIANCE", product="MIS", quantity=D(5), average_price=D(130),
                             buy_quantity=D(5), buy_value=D(650), margin_blocked=D(130), updated_at=later)
        # INFY is not in the contract: folded to UPPER(TRIM()). long 10 @ 100 and short 4 @ 120 (NRML, leverage 1)
        # net to long 6 @ 100, realizing 4 x 20 = 80; margin 1000 + 480 becomes 600's worth.
        ids["p_infy"] = add(Position, **pos | {"realized_pnl": D(0)}, symbol="infy", product="NRML", quantity=D(10),
                            average_price=D(100), buy_quantity=D(10), buy_value=D(1000), margin_blocked=D(1000),
                            updated_at=earlier)
        ids["p_infy2"] = add(Position, **pos | {"realized_pnl": D(7), "sell_quantity": D(4), "sell_value": D(480)},
                             symbol=" Infy ", product="NRML", quantity=D(-4), average_price=D(120),
                             buy_quantity=D(0), buy_value=D(0), margin_blocked=D(480), updated_at=earlier)
        # bob's lone lower-case position is only renamed
        ids["p_bob"] = add(Position, **pos | {"user_id": bob}, symbol="reliance", product="MIS", quantity=D(1),
                           average_price=D(100), buy_quantity=D(1), buy_value=D(100), margin_blocked=D(20),
                           updated_at=earlier)
        add(Holding, user_id=alice, mode="analyze", symbol="tcs", exchange="NSE", quantity=D(10),
            average_price=D(3000), updated_at=earlier)
        ids["h_upper"] = add(Holding, user_id=alice, mode="analyze", symbol="TCS", exchange="NSE", quantity=D(30),
                             average_price=D(4000), updated_at=later)
        order = dict(user_id=alice, broker="paper", mode="analyze", exchange="NSE", action="BUY", pricetype="MARKET",
                     product="MIS", quantity=D(1), status="complete")
        ids["o_lower"] = add(Order, **order, orderid="1", symbol="reliance")
        add(Order, **order, orderid="2", symbol="RELIANCE")
        add(Fill, order_id=ids["o_lower"], tradeid="t1", quantity=D(1), price=D(100))
        sid = add(Strategy, user_id=alice, name="Alpha", webhook_id="w-1", platform="tradingview")
        add(StrategySymbolMapping, strategy_id=sid, symbol="reliance", exchange="NSE", quantity=5, product="MIS")
        ids["m_upper"] = add(StrategySymbolMapping, strategy_id=sid, symbol="RELIANCE", exchange="NSE", quantity=7,
                             product="MIS")
        ids["q_lower"] = add(Quote, symbol="reliance", exchange="NSE", ltp=D(2), updated_at=later)
        add(Quote, symbol="RELIANCE", exchange="NSE", ltp=D(1), updated_at=earlier)
    return ids


def _rows(sql: str) -> list[tuple]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_the_symbol_fold_merges_rows_stored_under_two_spellings(empty_app):
    with empty_app.app_context():
        upgrade(revision=BEFORE_FOLD)
        ids = _seed_two_spellings()
        upgrade()
        assert schema.current_revision(db.engine) == schema.head_revision()

        def positions():
            return [(r[0], r[1], r[2], r[3], *(D(str(v)) for v in r[4:])) for r in _rows(
                "SELECT id, user_id, symbol, product, quantity, average_price, buy_quantity, buy_value, "
                "sell_quantity, sell_value, realized_pnl, margin_blocked FROM positions ORDER BY id")]

        assert positions() == [
            # the row already spelt as the contract spells it stays, with both rows' figures
            (ids["p_upper"], ids["alice"], "RELIANCE", "MIS", 15, 110, 15, 1650, 0, 0, 0, 330),
            (ids["p_infy"], ids["alice"], "INFY", "NRML", 6, 100, 10, 1000, 4, 480, 87, 600),
            (ids["p_bob"], ids["bob"], "RELIANCE", "MIS", 1, 100, 1, 100, 0, 0, 0, 20),
        ]
        # the netting's 80 realized and 880 of margin released reach alice's account
        ((used, realized, available),) = _rows("SELECT used_margin, realized_pnl, available_cash FROM funds")
        assert (D(str(used)), D(str(realized)), D(str(available))) == (930, 87, 1_000_000 + 87 - 930)
        ((hid, hsym, hqty, havg),) = _rows("SELECT id, symbol, quantity, average_price FROM holdings")
        assert (hid, hsym, D(str(hqty)), D(str(havg))) == (ids["h_upper"], "TCS", 40, 3750)
        assert _rows("SELECT symbol, exchange FROM orders ORDER BY id") == [("RELIANCE", "NSE")] * 2
        assert _rows("SELECT order_id FROM fills") == [(ids["o_lower"],)]
        assert _rows("SELECT id, symbol, quantity FROM strategy_symbol_mappings") == [(ids["m_upper"], "RELIANCE", 7)]
        ((qid, qsym, qltp),) = _rows("SELECT id, symbol, ltp FROM quotes")
        assert (qid, qsym, D(str(qltp))) == (ids["q_lower"], "RELIANCE", 2)  # the latest quote stays

        # downgrade is a no-op, and the fold run again changes nothing
        before = {t: _rows(f"SELECT * FROM {t} ORDER BY id")  # noqa: S608 - our own table names
                  for t in ("positions", "holdings", "funds", "orders", "strategy_symbol_mappings", "quotes")}
        downgrade(revision=BEFORE_FOLD)
        upgrade()
        assert {t: _rows(f"SELECT * FROM {t} ORDER BY id") for t in before} == before  # noqa: S608
    assert _no_drift(empty_app)
