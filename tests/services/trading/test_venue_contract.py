"""One master contract serves every user: a live venue refuses calls when the loaded contract is not its broker's
(a broker that addresses instruments by id, on the sample contract; any broker, on another broker's), before
anything reaches the broker; and a broker login does not replace a contract that other users' broker is trading on.
Against the fake Kite, SmartAPI and DhanHQ servers, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from database import db
from database.alert_db import Alert
from database.user_db import User
from services.accounts import broker_login
from services.market import contract_refresh, master_contract, symbol_index
from services.runtime import contract_jobs
from tests.helpers import angelone as angel_fixtures
from tests.helpers import dhan as dhan_fixtures
from tests.helpers import live as kite_fixtures
from tests.helpers.angelone import connect_angel_with_contract
from tests.helpers.api import load_symbols, post, raise_limits, user_with_key
from tests.helpers.dhan import connect_dhan
from tests.helpers.live import connect_live, session_client

kite = kite_fixtures.kite
angel = angel_fixtures.angel
dhan = dhan_fixtures.dhan

ORDER = {"strategy": "T", "symbol": "INFY", "exchange": "NSE", "action": "BUY", "pricetype": "MARKET",
         "product": "MIS", "quantity": 1}


def test_a_broker_that_goes_by_id_refuses_live_calls_on_the_sample_contract(app, dhan, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols()
    client = app.test_client()
    user, _row, key = user_with_key("dhanuser")
    connect_dhan(user.id, dhan)
    for name, body in (("placeorder", ORDER), ("funds", {}), ("orderbook", {})):
        resp = post(client, name, {"apikey": key, **body})
        assert resp.status_code == 409, (name, resp.get_json())
        assert "sample contract, not dhan's" in resp.get_json()["message"]
    assert dhan.fake.orders == {}  # nothing reached the broker
    # Dhan's own contract loaded (the Symbols page's download): the same call goes through.
    master_contract.import_from_broker(session_client(user.id), broker="dhan")
    symbol_index.reload()
    resp = post(client, "placeorder", {"apikey": key, **ORDER})
    assert resp.status_code == 200, resp.get_json()
    assert len(dhan.fake.orders) == 1


def test_a_broker_that_goes_by_symbol_refuses_another_brokers_contract(app, kite, angel, monkeypatch):
    raise_limits(app, monkeypatch)
    client = app.test_client()
    kite_user, _row, key = user_with_key("kiteuser")
    connect_live(kite_user.id, kite)
    angel_user, _row2, _key2 = user_with_key("angeluser")
    connect_angel_with_contract(angel_user.id, angel)
    resp = post(client, "placeorder", {"apikey": key, **ORDER})
    assert resp.status_code == 409
    assert "angelone's, not zerodha's" in resp.get_json()["message"]
    assert kite.fake.calls_to("/orders") == 0


def test_a_login_leaves_the_contract_other_users_trade_on(app, kite, angel, monkeypatch):
    angel_user, _row, _key = user_with_key("angeluser")
    connect_angel_with_contract(angel_user.id, angel)
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)  # logins from now on refresh a stale contract
    monkeypatch.setitem(app.config, "CONTRACT_REFRESH_TIME", "08:30")
    kite_user, _row2, _key2 = user_with_key("kiteuser")
    user = db.session.get(User, kite_user.id)
    broker_login.start_login(user, "zerodha")
    row = broker_login.complete_login(user, "zerodha", {"request_token": kite.fake.issue_request_token(),
                                                        "status": "success"})
    db.session.commit()
    contract_jobs.wait_for_login_refreshes()
    assert contract_refresh.loaded_contract().broker == "angelone"
    assert kite.fake.calls_to("/instruments") == 0
    alert = db.session.scalars(select(Alert).where(Alert.kind == "contract_in_use")).one()
    assert "zerodha's master contract was not loaded" in alert.title
    # With nobody left on Angel One, the next Kite login does load Kite's contract.
    broker_login.disconnect(db.session.get(User, angel_user.id))
    db.session.commit()
    assert contract_jobs.after_broker_login(row) is not None
    contract_jobs.wait_for_login_refreshes()
    db.session.expire_all()
    assert contract_refresh.loaded_contract().broker == "zerodha"
