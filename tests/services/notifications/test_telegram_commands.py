"""The bot's commands in a linked chat: /positions, /pnl, /mode, /help, /closeall with its confirmation
(closing the analyze-mode positions), /approvals with Approve and Reject buttons, and who may do what."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from database import db
from database.enums import Role
from database.order_db import Order
from database.risk_db import QUEUED, Approval
from database.types import utcnow
from database.user_db import User
from services.notifications import telegram
from services.trading import venues
from tests.helpers import trading
from tests.helpers.orders import order, set_quote
from tests.services.notifications.conftest import ALICE_CHAT, BOB_CHAT, button, link, send


def _buttons(calls) -> list[list[dict]]:
    [(method, params)] = calls
    assert method == "sendMessage"
    return params["reply_markup"]["inline_keyboard"]


def _press(chat_id: int, data: str, **kw) -> tuple[dict, list[str]]:
    calls = telegram.handle_update(button(chat_id, data), **kw)
    assert calls[0][0] == "answerCallbackQuery"
    return calls[0][1], [p["text"] for m, p in calls[1:] if m == "sendMessage"]


def test_positions_pnl_mode_and_help(app, users):
    alice, _ = users
    link(alice, ALICE_CHAT)
    assert send(ALICE_CHAT, "/positions") == ["No open positions (analyze mode)."]
    set_quote("INFY", "1500", bid="1499.95", ask="1500.05")
    trading.place_order(alice, order(quantity=10))
    set_quote("INFY", "1510", bid="1509.95", ask="1510.05")
    assert send(ALICE_CHAT, "/positions@AlgobridgeBot") == [
        "Open positions (analyze mode):\nINFY NSE MIS: 10 @ 1500.05, LTP 1510.0, P&L 99.5"]
    [pnl] = send(ALICE_CHAT, "/pnl")
    assert pnl.startswith("P&L (analyze mode):\nRealized 0.00\nUnrealized 99.50\nTotal 99.50")
    assert send(ALICE_CHAT, "/help") == [telegram.HELP]
    assert send(ALICE_CHAT, "/whatever") == [telegram.HELP]

    venues.set_analyze(alice, False)
    db.session.commit()
    assert send(ALICE_CHAT, "/mode")[0].startswith("Mode: live")
    assert send(ALICE_CHAT, "/pnl") == ["P&L unavailable: live mode without a broker session."]
    assert send(ALICE_CHAT, "/positions")[0].startswith("Positions unavailable:")


def test_closeall_asks_then_closes_the_analyze_positions_and_cancels_open_orders(app, users):
    alice, bob = users
    link(alice, ALICE_CHAT)
    set_quote("INFY", "1500", bid="1499.95", ask="1500.05")
    set_quote("SBIN", "800", bid="799.95", ask="800.05")
    trading.place_order(alice, order(quantity=10))
    trading.place_order(alice, order(symbol="SBIN", action="SELL", quantity=5))
    resting = trading.place_order(alice, order(symbol="SBIN", pricetype="LIMIT", price="700", quantity=1))
    trading.place_order(bob, order(quantity=3))  # bob's position is his own

    calls = telegram.handle_update({"update_id": 1, "message": {"chat": {"id": ALICE_CHAT, "type": "private"},
                                                                "text": "/closeall"}})
    assert calls[0][1]["text"].startswith("Close 2 open position(s) at market and cancel every open order (analyze")
    [[confirm, keep]] = _buttons(calls)
    assert confirm["text"] == "Close all"
    assert keep["text"] == "Keep"
    assert len([p for p in trading.positionbook(alice) if p["quantity"]]) == 2  # nothing happens before the answer

    # another chat cannot press alice's button; a made-up nonce does nothing
    assert _press(BOB_CHAT, confirm["callback_data"])[0]["text"] == "This chat is not linked."
    assert _press(ALICE_CHAT, "ca:0000")[1] == ["This confirmation has expired or was used. Send /closeall again."]

    answer, texts = _press(ALICE_CHAT, confirm["callback_data"])
    assert texts == ["Close all (analyze mode): 2 closing order(s) placed, 1 open order(s) cancelled."]
    assert answer["text"] == texts[0]
    assert [p for p in trading.positionbook(alice) if p["quantity"]] == []
    assert db.session.scalar(select(Order.status).where(Order.orderid == resting.orderid)).value == "cancelled"
    assert [p["quantity"] for p in trading.positionbook(bob)] == [3]
    assert set(db.session.scalars(select(Order.strategy).where(Order.user_id == alice,
                                                               Order.strategy == "Telegram"))) == {"Telegram"}
    # pressed twice: used
    assert _press(ALICE_CHAT, confirm["callback_data"])[1][0].startswith("This confirmation has expired")


def test_closeall_keep_and_expiry_close_nothing_and_viewers_may_not(app, users):
    alice, _ = users
    link(alice, ALICE_CHAT)
    set_quote("INFY", "1500", bid="1499.95", ask="1500.05")
    trading.place_order(alice, order(quantity=10))

    now = utcnow()
    [[_, keep]] = _buttons(telegram.handle_update({"update_id": 1, "message": {
        "chat": {"id": ALICE_CHAT, "type": "private"}, "text": "/closeall"}}, now=now))
    assert _press(ALICE_CHAT, keep["callback_data"], now=now)[1] == ["Nothing was closed."]
    [[confirm, _]] = _buttons(telegram.handle_update({"update_id": 2, "message": {
        "chat": {"id": ALICE_CHAT, "type": "private"}, "text": "/closeall"}}, now=now))
    late = now + telegram.CLOSEALL_TTL + dt.timedelta(seconds=1)
    assert _press(ALICE_CHAT, confirm["callback_data"], now=late)[1][0].startswith("This confirmation has expired")
    assert [p["quantity"] for p in trading.positionbook(alice)] == [10]

    db.session.get(User, alice).role = Role.VIEWER
    db.session.commit()
    assert send(ALICE_CHAT, "/closeall") == ["Viewers cannot trade."]
    assert send(ALICE_CHAT, "/approvals") == ["Viewers cannot approve orders."]
    assert [p["quantity"] for p in trading.positionbook(alice)] == [10]


def _queued(user_id: int, **order_fields) -> int:
    data = {"strategy": "tv", "exchange": "NSE", "symbol": "INFY", "action": "BUY", "quantity": 2,
            "pricetype": "MARKET", "product": "MIS", "price": "0", "trigger_price": "0", **order_fields}
    row = Approval(user_id=user_id, kind="place", order=data, strategy="tv", status=QUEUED,
                   created_at=utcnow(), expires_at=utcnow() + dt.timedelta(minutes=5))
    db.session.add(row)
    db.session.commit()
    return row.id


def test_approvals_listed_with_buttons_approve_places_reject_does_not(app, users):
    alice, bob = users
    link(alice, ALICE_CHAT)
    link(bob, BOB_CHAT)
    set_quote("INFY", "1500", bid="1499.95", ask="1500.05")
    assert send(ALICE_CHAT, "/approvals") == ["No orders are waiting for approval."]
    first, second = _queued(alice), _queued(alice, action="SELL", quantity=1)

    calls = telegram.handle_update({"update_id": 1, "message": {"chat": {"id": ALICE_CHAT, "type": "private"},
                                                                "text": "/approvals"}})
    assert [p["text"] for _, p in calls] == [f"Approval needed #{first}: BUY 2 INFY NSE MARKET MIS (strategy tv)",
                                             f"Approval needed #{second}: SELL 1 INFY NSE MARKET MIS (strategy tv)"]
    assert calls[0][1]["reply_markup"]["inline_keyboard"] == [[
        {"text": "Approve", "callback_data": f"ap:{first}"}, {"text": "Reject", "callback_data": f"rj:{first}"}]]

    assert _press(BOB_CHAT, f"ap:{first}")[1] == [f"Approval #{first}: Approval {first} not found"]  # not his
    [text] = _press(ALICE_CHAT, f"ap:{first}")[1]
    placed = db.session.scalar(select(Order).where(Order.user_id == alice))
    assert text == f"Approval #{first} approved: order {placed.orderid} placed."
    assert (placed.action.value, placed.quantity) == ("BUY", 2)
    assert _press(ALICE_CHAT, f"rj:{second}")[1] == [f"Approval #{second} rejected: the order will not be placed."]
    assert _press(ALICE_CHAT, f"rj:{second}")[1] == [f"Approval #{second}: Approval {second} was already rejected"]
    assert db.session.get(Approval, second).decided_by == "telegram:alice"
    assert len(list(db.session.scalars(select(Order).where(Order.user_id == alice)))) == 1
    assert _press(ALICE_CHAT, "ap:x")[1] == ["This button is not known."]
    assert _press(ALICE_CHAT, "zz")[1] == ["This button is not known."]
