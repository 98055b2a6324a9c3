"""`POST /api/v1/killswitch` and `riskstate` (issue #19), and the answer to an order held for approval by the
calling API key (OpenAlgo's action center: success, mode semi_auto, pending_order_id)."""

from __future__ import annotations

from sqlalchemy import select

from database import db
from database.audit_db import AuditEvent
from services.trading import risk
from tests.blueprints.api_v1.test_options_api import key, target  # noqa: F401 - a fixture and its request
from tests.helpers.api import load_symbols, orders_count, post, raise_limits, user_with_key
from tests.helpers.orders import set_quote

ORDER = {"strategy": "Kill", "exchange": "NSE", "symbol": "INFY", "action": "BUY", "quantity": "1",
         "pricetype": "MARKET", "product": "MIS"}


def test_killswitch_on_blocks_entries_and_off_lets_them_again(app, client, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols(50)
    set_quote("INFY", "1500", bid="1500", ask="1500")
    user, _row, akey = user_with_key("alice")
    assert post(client, "placeorder", {"apikey": akey, **ORDER}).status_code == 200

    resp = post(client, "killswitch", {"apikey": akey, "action": "on"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["kill_switch"] is True
    positions = post(client, "openposition", {"apikey": akey, "strategy": "Kill", "symbol": "INFY", "exchange": "NSE",
                                              "product": "MIS"}).get_json()
    assert positions["quantity"] in (0, "0")  # squared off at once
    refused = post(client, "placeorder", {"apikey": akey, **ORDER})
    assert refused.status_code == 403
    assert "kill switch" in refused.get_json()["message"]
    state = post(client, "riskstate", {"apikey": akey}).get_json()["data"]
    assert state["kill_switch"] is True
    assert state["killed_by"] == f"api:{user.id}"
    assert post(client, "killswitch", {"apikey": akey, "action": "on"}).get_json()["message"] == \
        "Kill switch was already on; open orders cancelled and positions closed again"

    assert post(client, "killswitch", {"apikey": akey, "action": "off"}).status_code == 200
    assert post(client, "placeorder", {"apikey": akey, **ORDER}).status_code == 200
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("risk.%"))
                                 .order_by(AuditEvent.id)).all()
    assert actions == ["risk.kill", "risk.refuse", "risk.kill", "risk.unkill"]  # the second press audited too


def test_killswitch_needs_the_orders_scope_and_a_known_action(app, client):
    _user, _row, read_only = user_with_key("bob", scopes=("read",))
    assert post(client, "killswitch", {"apikey": read_only, "action": "on"}).status_code == 403
    _user, _row, akey = user_with_key("carol")
    for body in ({"apikey": akey, "action": "maybe"}, {"apikey": akey}, {"apikey": akey, "action": "on", "x": 1}):
        resp = post(client, "killswitch", body)
        assert resp.status_code == 400
        assert resp.get_json()["status"] == "error"
    assert post(client, "killswitch", {"apikey": "nope", "action": "on"}).status_code == 403
    assert risk.state(_user.id)["kill_switch"] is False


def test_an_order_of_a_held_api_key_is_queued(app, client, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols(50)
    user, row, akey = user_with_key("dave")
    _, _other_row, other_key = user_with_key("erin")
    risk.set_limits(user.id, "apikey", str(row.id), {"require_approval": True}, actor="t")
    before = orders_count()
    resp = post(client, "placeorder", {"apikey": akey, **ORDER})
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert (body["status"], body["mode"]) == ("success", "semi_auto")
    assert isinstance(body["pending_order_id"], int)
    assert orders_count() == before
    assert post(client, "placeorder", {"apikey": other_key, **ORDER}).status_code == 200  # erin is not held


def test_a_held_leg_of_an_options_multi_order_is_accepted(app, client, key):  # noqa: F811
    from database.user_db import User

    owner = db.session.scalars(select(User).where(User.username == "opt")).one()
    risk.set_limits(owner.id, "strategy", "Held", {"require_approval": True}, actor="t")
    legs = [{"offset": "ATM", "option_type": "CE", "action": "BUY", "quantity": 75},
            {"offset": "ATM", "option_type": "PE", "action": "BUY", "quantity": 150, "splitsize": 75}]
    before = orders_count()
    resp = post(client, "optionsmultiorder", {**target(key), "strategy": "Held", "legs": legs})
    assert resp.status_code == 200, resp.get_json()
    first, second = resp.get_json()["results"]
    assert (first["status"], isinstance(first["pending_order_id"], int)) == ("success", True)
    assert second["status"] == "success"
    assert [r["status"] for r in second["split_results"]] == ["success", "success"]
    assert orders_count() == before
