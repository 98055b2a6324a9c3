"""Linking a chat with /start and a one-time code: the right code links once; wrong, expired, reused and
superseded codes link nothing; a group cannot link; unlinking ends the commands."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from database import db
from database.audit_db import AuditEvent
from database.telegram_db import TelegramLink, TelegramLinkCode
from database.types import utcnow
from database.user_db import User
from services.notifications import telegram
from tests.services.notifications.conftest import ALICE_CHAT, BOB_CHAT, link, send


def test_start_with_the_code_links_the_chat_once(app, users):
    alice, _ = users
    code = telegram.new_code(alice)
    assert len(code) == telegram.CODE_LENGTH
    stored = db.session.scalar(select(TelegramLinkCode.code_hash))
    assert code not in stored
    assert len(stored) == 64

    [answer] = send(ALICE_CHAT, f"/start {code.lower()}")  # typed in lower case on a phone
    assert answer.startswith("Linked to Algobridge user alice")
    state = telegram.link_state(alice)
    assert (state.chat_id, state.chat_name) == (ALICE_CHAT, "tg_user")
    assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.user_id == alice)) == "telegram.link"
    assert send(ALICE_CHAT, "/mode") == ["Mode: analyze (orders go to the built-in paper broker). "
                                         "Switch it on the Settings page."]

    # the same code again, from another chat: used
    assert send(BOB_CHAT, f"/start {code}") == [telegram.BAD_CODE]
    assert telegram.link_state(alice).chat_id == ALICE_CHAT


def test_wrong_expired_and_superseded_codes_link_nothing(app, users):
    alice, _ = users
    assert send(ALICE_CHAT, "/start NOTACODE") == [telegram.BAD_CODE]
    assert send(ALICE_CHAT, "/start") == [telegram.NOT_LINKED]

    now = utcnow()
    old = telegram.new_code(alice, now=now)
    new = telegram.new_code(alice, now=now)  # the earlier one stops working
    assert send(ALICE_CHAT, f"/start {old}") == [telegram.BAD_CODE]
    assert send(ALICE_CHAT, f"/start {new}", now=now + telegram.CODE_TTL + dt.timedelta(seconds=1)) == [
        telegram.BAD_CODE]
    assert telegram.link_state(alice) is None
    assert send(ALICE_CHAT, "/pnl") == [telegram.NOT_LINKED]


def test_a_group_cannot_link_and_a_disabled_user_cannot_either(app, users):
    alice, bob = users
    code = telegram.new_code(alice)
    answers = [p["text"] for _, p in telegram.handle_update(
        {"update_id": 1, "message": {"chat": {"id": -100, "type": "group"}, "text": f"/start {code}"}})]
    assert answers == ["Link a private chat with the bot, not a group."]
    assert telegram.link_state(alice) is None

    code = telegram.new_code(bob)
    db.session.get(User, bob).is_active = False
    db.session.commit()
    assert send(BOB_CHAT, f"/start {code}") == [telegram.BAD_CODE]


def test_linking_again_moves_the_link_and_unlink_ends_it(app, users):
    alice, bob = users
    link(alice, ALICE_CHAT)
    link(alice, BOB_CHAT)  # alice's new phone: one chat per user
    assert telegram.link_state(alice).chat_id == BOB_CHAT
    assert send(ALICE_CHAT, "/mode") == [telegram.NOT_LINKED]
    link(bob, BOB_CHAT)  # the chat now speaks for bob: one user per chat
    assert telegram.link_state(alice) is None
    assert telegram.link_state(bob).chat_id == BOB_CHAT

    assert telegram.unlink(bob, actor="bob") is True
    assert telegram.unlink(bob, actor="bob") is False
    assert send(BOB_CHAT, "/positions") == [telegram.NOT_LINKED]
    assert db.session.scalar(select(func.count()).select_from(TelegramLink)) == 0
    assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.action == "telegram.unlink")) is not None


def test_messages_the_bot_does_not_understand_get_no_answer(app, users):
    assert telegram.handle_update({"update_id": 1}) == []
    assert telegram.handle_update({"update_id": 2, "message": {"chat": {"id": 1, "type": "private"},
                                                               "text": "hello"}}) == []
    assert telegram.handle_update({"update_id": 3, "message": {"text": "/pnl"}}) == []  # no chat
