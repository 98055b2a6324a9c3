"""/risk: limits per account and strategy, today's state, the kill switch button, the approvals queue (issue #19)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from database import db
from database.risk_db import Approval, RiskLimit
from services.trading import approvals, risk
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.accounts import client_for, csrf_token, one_user_per_role
from tests.helpers.orders import order, set_quote

contract = fx.contract  # fixture


@pytest.fixture
def people(app, contract):
    return one_user_per_role()


def post(c, url, data=None):
    return c.post(url, data={**(data or {}), "csrf_token": csrf_token(c, "/risk")})


def test_limits_form_kill_switch_and_approvals(app, people):
    trader = people["trader"]
    c = client_for(app, "trader1")
    page = c.get("/risk")
    assert page.status_code == 200
    assert b"Kill switch on" in page.data
    assert b'href="/risk"' in page.data

    resp = post(c, "/risk/limits", {"scope_kind": "strategy", "scope": "semi", "max_loss": "500",
                                    "require_approval": "on", "approval_ttl_seconds": "120"})
    assert resp.status_code == 302
    row = db.session.scalars(select(RiskLimit)).one()
    assert (row.scope_kind, row.scope, row.max_loss, row.require_approval) == ("strategy", "semi", 500, True)
    bad = post(c, "/risk/limits", {"scope_kind": "account", "max_loss": "-1"})
    assert bad.status_code == 400
    assert b"max_loss must be a positive amount" in bad.data

    set_quote("INFY", "1500", bid="1500", ask="1500")
    with pytest.raises(approvals.Queued) as first:
        trading.place_order(trader.id, order(quantity=2, strategy="semi"))
    with pytest.raises(approvals.Queued) as second:
        trading.place_order(trader.id, order(quantity=3, strategy="semi"))
    page = c.get("/risk").data.decode()
    assert "BUY 2 INFY" in page
    assert "BUY 3 INFY" in page
    assert post(c, f"/risk/approvals/{first.value.approval_id}/approve").status_code == 302
    assert post(c, f"/risk/approvals/{second.value.approval_id}/reject", {"reason": "no"}).status_code == 302
    statuses = db.session.scalars(select(Approval.status).order_by(Approval.id)).all()
    assert statuses == ["approved", "rejected"]
    again = post(c, f"/risk/approvals/{first.value.approval_id}/approve")
    assert again.status_code == 303  # already decided: said on the page, nothing done
    assert post(c, "/risk/approvals/999999/reject").status_code == 303

    assert post(c, "/risk/kill").status_code == 302
    assert risk.state(trader.id)["kill_switch"] is True
    assert trading.open_position(trader.id, "INFY", "NSE", "MIS") == 0
    assert b"Switch off" in c.get("/risk").data
    assert post(c, "/risk/unkill").status_code == 302
    assert risk.state(trader.id)["kill_switch"] is False


def test_viewers_read_but_cannot_change(app, people):
    c = client_for(app, "viewer1")
    page = c.get("/risk")
    assert page.status_code == 200
    assert b"Kill switch on" not in page.data
    for url in ("/risk/kill", "/risk/unkill", "/risk/limits", "/risk/approvals/1/approve"):
        assert post(c, url).status_code == 403
    assert risk.state(people["viewer"].id)["kill_switch"] is False
    anonymous = app.test_client().get("/risk")
    assert anonymous.status_code in (302, 401)
