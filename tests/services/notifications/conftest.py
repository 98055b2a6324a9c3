"""Fixtures of the Telegram tests: the order tests' contract and users, and chats linked the bot's way."""

from __future__ import annotations

from services.notifications import telegram
from tests.helpers import orders as fx

contract = fx.contract  # fixture
users = fx.users  # fixture

ALICE_CHAT, BOB_CHAT = 5001, 5002


def message(chat_id: int, text: str, *, chat_type: str = "private", update_id: int = 1) -> dict:
    return {"update_id": update_id, "message": {"message_id": 1, "date": 0, "text": text,
                                                "chat": {"id": chat_id, "type": chat_type, "username": "tg_user"},
                                                "from": {"id": chat_id, "is_bot": False, "first_name": "T"}}}


def button(chat_id: int, data: str, *, update_id: int = 2) -> dict:
    return {"update_id": update_id, "callback_query": {"id": f"cq{update_id}", "data": data, "chat_instance": "x",
                                                       "from": {"id": chat_id, "is_bot": False, "first_name": "T"},
                                                       "message": {"message_id": 9, "date": 0,
                                                                   "chat": {"id": chat_id, "type": "private"}}}}


def send(chat_id: int, text: str, **kw) -> list[str]:
    """The texts the bot answers to `text` from `chat_id`."""
    return [p["text"] for m, p in telegram.handle_update(message(chat_id, text), **kw) if m == "sendMessage"]


def link(user_id: int, chat_id: int) -> None:
    """Link the way a person does: a code from the settings page, then /start CODE in the chat."""
    code = telegram.new_code(user_id)
    [answer] = send(chat_id, f"/start {code}")
    assert answer.startswith("Linked to Algobridge user")
