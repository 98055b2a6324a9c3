"""/settings/telegram and the Telegram card of /settings: the link's state, a one-time code that links the chat
through the bot's /start, unlinking; Telegram off without a bot token; forms need their CSRF token."""

from __future__ import annotations

import re

import pytest

from database import db
from database.user_db import User
from services.notifications import telegram
from tests.helpers.accounts import client_for, csrf_token, one_user_per_role
from tests.services.notifications.conftest import ALICE_CHAT, send

PAGE = "/settings/telegram"


@pytest.fixture
def people(app):
    return one_user_per_role()


@pytest.fixture
def bot_on(app, monkeypatch):
    monkeypatch.setitem(app.config, "TELEGRAM_BOT_TOKEN", "123456:page-test-token")


def _post(c, url):
    return c.post(url, data={"csrf_token": csrf_token(c, PAGE)})


def test_off_without_a_bot_token(app, people):
    c = client_for(app, "trader1")
    assert "Telegram is off on this server" in c.get("/settings").get_data(as_text=True)
    page = c.get(PAGE).get_data(as_text=True)
    assert "Make a link code" not in page
    resp = _post(c, f"{PAGE}/code")
    assert resp.status_code == 409
    assert "set TELEGRAM_BOT_TOKEN first" in resp.get_data(as_text=True)


@pytest.mark.parametrize("role", ["admin", "trader", "viewer"])
def test_link_with_the_shown_code_then_unlink(app, people, bot_on, role):
    c = client_for(app, f"{role}1")
    settings = c.get("/settings").get_data(as_text=True)
    assert 'id="telegram"' in settings
    assert "Not linked." in settings
    resp = _post(c, f"{PAGE}/code")
    assert resp.status_code == 200
    code = re.search(r"/start ([A-Z0-9]{8})</code>", resp.get_data(as_text=True)).group(1)

    assert send(ALICE_CHAT, f"/start {code}")[0].startswith(f"Linked to Algobridge user {role}1")
    assert "Linked to the Telegram chat <strong>tg_user</strong>" in c.get("/settings").get_data(as_text=True)
    assert "Unlink" in c.get(PAGE).get_data(as_text=True)

    resp = _post(c, f"{PAGE}/unlink")
    assert resp.status_code == 302
    assert "Telegram unlinked" in c.get(PAGE).get_data(as_text=True)
    user_id = db.session.scalar(db.select(User.id).where(User.username == f"{role}1"))
    assert telegram.link_state(user_id) is None
    assert send(ALICE_CHAT, "/pnl") == [telegram.NOT_LINKED]


def test_forms_without_csrf_and_visitors_are_refused(app, people, bot_on):
    c = client_for(app, "trader1")
    assert c.post(f"{PAGE}/code").status_code == 400
    assert c.post(f"{PAGE}/unlink").status_code == 400
    assert app.test_client().get(PAGE).status_code in (302, 303)
