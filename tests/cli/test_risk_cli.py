"""`flask risk kill/unkill/status USER`: the kill switch from the server's shell (issue #19)."""

from __future__ import annotations

from sqlalchemy import select

from database import db
from database.audit_db import AuditEvent
from services.trading import risk, venues
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.orders import order, set_quote

contract = fx.contract  # fixture
users = fx.users  # fixture


def run(runner, *args: str):
    return runner.invoke(args=["risk", *args])


def test_kill_status_unkill(runner, users):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    trading.place_order(alice, order(quantity=10))
    result = run(runner, "kill", "alice")
    assert result.exit_code == 0, result.output
    assert "kill switch on for alice" in result.output
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0
    assert "already on" in run(runner, "kill", "alice").output

    status = run(runner, "status", "alice")
    assert status.exit_code == 0, status.output
    assert "alice: kill switch ON" in status.output
    assert "by cli" in status.output
    assert "approvals waiting: 0" in status.output
    assert risk.user_risk(alice).killed

    result = run(runner, "unkill", "alice")
    assert result.exit_code == 0
    assert "kill switch off for alice" in result.output
    assert "alice: kill switch off" in run(runner, "status", "alice").output
    assert trading.place_order(alice, order(quantity=1)).status == "complete"
    assert venues.is_analyze(alice)
    audit = db.session.execute(select(AuditEvent.action, AuditEvent.actor).where(AuditEvent.action.like("risk.%"))
                               .order_by(AuditEvent.id)).all()
    # the second kill squares off again, and says so in its own row
    assert [tuple(r) for r in audit] == [("risk.kill", "cli"), ("risk.kill", "cli"), ("risk.unkill", "cli")]


def test_unknown_user(runner, users):
    for command in ("kill", "unkill", "status"):
        result = run(runner, command, "nobody")
        assert result.exit_code != 0
        assert "no user 'nobody'" in result.output
