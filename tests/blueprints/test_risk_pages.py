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
    assert post(c, "/risk/limits", {"scope_kind": "account", "max_loss": "0.001"}).status_code == 400
    held_key = post(c, "/risk/limits", {"scope_kind": "apikey", "scope": "1", "max_loss": "5"})
    assert (held_key.status_code, b"only &#39;orders wait for approval&#39;" in held_key.data) == (400, True)

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
    for huge in ("2147483648", "99999999999999999999999", "0"):
        assert post(c, f"/risk/approvals/{huge}/approve").status_code == 404
        assert post(c, f"/risk/approvals/{huge}/reject").status_code == 404

    assert post(c, "/risk/kill").status_code == 302
    assert risk.state(trader.id)["kill_switch"] is True
    assert post(c, "/risk/kill").status_code == 302  # again: closes again
    assert b"positions closed again" in c.get("/risk").data
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


def test_the_form_of_a_scope_keeps_its_limits(app, people):
    c = client_for(app, "trader1")
    assert post(c, "/risk/limits", {"scope_kind": "strategy", "scope": "semi", "max_loss": "500", "target": "75.5",
                                    "require_approval": "on", "approval_ttl_seconds": "120"}).status_code == 302
    page = c.get("/risk").data.decode()
    assert 'name="max_loss" inputmode="decimal" value="500' in page
    assert 'name="target" inputmode="decimal" value="75.5' in page
    assert 'name="require_approval" checked' in page
    assert 'name="approval_ttl_seconds" value="120"' in page
    # what the pre-filled form sends back when one field is changed keeps the others
    assert post(c, "/risk/limits", {"scope_kind": "strategy", "scope": "semi", "max_loss": "500.0000",
                                    "target": "80", "require_approval": "on",
                                    "approval_ttl_seconds": "120"}).status_code == 302
    row = db.session.scalars(select(RiskLimit)).one()
    db.session.refresh(row)
    assert (row.max_loss, row.target, row.require_approval, row.approval_ttl_seconds) == (500, 80, True, 120)
