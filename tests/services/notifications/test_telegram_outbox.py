"""The Bot API client and the outbox against the fake Bot API server: messages with buttons, errors as
exceptions (429 with retry_after, a wrong token, the network) that never show the token, retries with
backoff, drops after the last try, and a queue whose `put` never waits for Telegram."""

from __future__ import annotations

import socket

import pytest

from config import ConfigError, load_config
from services.notifications import telegram
from services.notifications.outbox import Outbox
from services.notifications.telegram_api import TelegramApi, TelegramError
from tests.fakes.telegram_server import TOKEN, running_telegram


@pytest.fixture
def fake():
    with running_telegram() as (server, url):
        server.url = url
        yield server


def test_a_message_with_buttons_and_an_answer_to_a_button(fake):
    api = TelegramApi(TOKEN, fake.url)
    buttons = [[{"text": "Approve", "callback_data": "ap:1"}]]
    result = api.call(*telegram.say(42, "x" * 5000, buttons))
    assert result["chat"] == {"id": 42}
    assert fake.messages == [{"chat_id": 42, "text": "x" * 4096, "reply_markup": {"inline_keyboard": buttons}}]
    assert api.call("answerCallbackQuery", {"callback_query_id": "cq1", "text": "done"}) is True
    assert fake.answers == [{"callback_query_id": "cq1", "text": "done"}]


def test_errors_become_exceptions_without_the_token(fake):
    fake.fail_next("sendMessage", retry_after=7)
    with pytest.raises(TelegramError) as info:
        TelegramApi(TOKEN, fake.url).call(*telegram.say(1, "hi"))
    assert (info.value.code, info.value.retry_after, info.value.retryable) == (429, 7, True)

    with pytest.raises(TelegramError) as info:
        TelegramApi("999:wrong", fake.url).call(*telegram.say(1, "hi"))
    assert (info.value.code, info.value.description, info.value.retryable) == (401, "Unauthorized", False)

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(TelegramError) as info:
        TelegramApi(TOKEN, closed, timeout=2).call(*telegram.say(1, "hi"))
    assert info.value.code is None
    assert info.value.retryable
    assert TOKEN not in str(info.value)
    assert info.value.__cause__ is None  # the requests exception (its text names the URL) is not chained


def test_get_updates_confirms_by_offset(fake):
    api = TelegramApi(TOKEN, fake.url)
    first = fake.push_message(7, "/pnl")
    second = fake.push_callback(7, "ap:1")
    assert [u["update_id"] for u in api.get_updates(None, 0)] == [first, second]
    assert [u["update_id"] for u in api.get_updates(second, 0)] == [second]
    assert api.get_updates(second + 1, 0) == []  # both confirmed
    assert fake.updates == []


def test_the_outbox_retries_a_429_then_delivers_once(fake):
    api = TelegramApi(TOKEN, fake.url)
    box = Outbox(api.call, max_wait=0.01)
    fake.fail_next("sendMessage", times=2, retry_after=30)  # honoured up to max_wait
    assert box.put(*telegram.say(1, "filled"))
    assert box.flush(10)
    assert fake.texts() == ["filled"]
    assert fake.calls == ["sendMessage"] * 3
    assert (box.sent, box.dropped) == (1, 0)
    box.stop()


def test_the_outbox_drops_after_its_tries_and_at_once_when_refused(fake):
    box = Outbox(TelegramApi(TOKEN, fake.url).call, tries=3, max_wait=0.001)
    fake.fail_next("sendMessage", times=3)
    box.put(*telegram.say(1, "lost"))
    box.put("sendMessage", {"chat_id": "not-a-chat", "text": "refused"})  # 400: no retry
    box.put(*telegram.say(1, "after"))
    assert box.flush(10)
    assert fake.texts() == ["after"]
    assert fake.calls == ["sendMessage"] * 5
    assert (box.sent, box.dropped) == (1, 2)
    box.stop()


def test_put_never_waits_for_a_slow_telegram(fake):
    fake.hold("sendMessage")
    box = Outbox(TelegramApi(TOKEN, fake.url).call, maxsize=2)
    assert box.put(*telegram.say(1, "one"))
    assert fake.wait_held("sendMessage")  # the sender is stuck in Telegram with "one"
    assert box.put(*telegram.say(1, "two"))
    assert box.put(*telegram.say(1, "three"))
    assert box.put(*telegram.say(1, "four")) is False  # full: dropped, not waited for
    assert fake.messages == []
    fake.release("sendMessage")
    assert box.flush(10)
    assert fake.texts() == ["one", "two", "three"]
    assert box.dropped == 1
    box.stop()


@pytest.mark.parametrize("raw", ["25:00", "4pm", "15"])
def test_a_bad_summary_time_stops_start_up_naming_the_variable(tmp_path, raw):
    with pytest.raises(ConfigError, match="TELEGRAM_DAILY_SUMMARY_TIME"):
        load_config(str(tmp_path), environ={"TELEGRAM_DAILY_SUMMARY_TIME": raw})
    cfg = load_config(str(tmp_path), environ={"TELEGRAM_DAILY_SUMMARY_TIME": "off"})  # no summary
    assert (cfg["TELEGRAM_BOT_TOKEN"], cfg["TELEGRAM_DAILY_SUMMARY_TIME"]) == ("", "off")
