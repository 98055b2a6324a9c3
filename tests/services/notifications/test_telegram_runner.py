"""The lease holder's loop against the fake Bot API server: updates read by long polling and confirmed by offset,
answers through the outbox, nothing done without the lease; and a slow or flooded Telegram never holds up an
order (the fill messages wait in the outbox while orders go on)."""

from __future__ import annotations

import threading

import pytest

from services.notifications import events, telegram
from services.notifications.events import Notifier, Runner
from services.notifications.outbox import Outbox
from services.notifications.telegram_api import TelegramApi
from tests.fakes.telegram_server import TOKEN, running_telegram
from tests.helpers import trading
from tests.helpers.orders import order, set_quote
from tests.services.notifications.conftest import ALICE_CHAT


@pytest.fixture
def fake():
    with running_telegram() as (server, url):
        server.url = url
        yield server


def test_the_loop_answers_updates_once_and_only_with_the_lease(app, users, fake):
    alice, _ = users
    api = TelegramApi(TOKEN, fake.url)
    box = Outbox(api.call)
    other = Notifier("another-worker")
    assert other.take_lease()
    runner = Runner(app, api, box, Notifier("this-worker", summary_time=""), poll_timeout=0)
    fake.push_message(ALICE_CHAT, "/mode")
    assert runner.step() is False  # another worker holds the lease: Telegram is not even asked
    assert "getUpdates" not in fake.calls
    other.release_lease()

    code = telegram.new_code(alice)
    fake.push_message(ALICE_CHAT, f"/start {code}")
    assert runner.step() is True
    assert box.flush(10)
    assert fake.texts(ALICE_CHAT) == [telegram.NOT_LINKED, fake.texts(ALICE_CHAT)[1]]
    assert fake.texts(ALICE_CHAT)[1].startswith("Linked to Algobridge user alice")

    fake.push_message(ALICE_CHAT, "/mode")
    pressed = fake.push_callback(ALICE_CHAT, "ca:stale")
    assert runner.step() is True
    assert runner.step() is True  # the updates were confirmed by the offset: not answered twice
    assert box.flush(10)
    assert fake.texts(ALICE_CHAT)[2:] == [
        "Mode: analyze (orders go to the built-in paper broker). Switch it on the Settings page.",
        "This confirmation has expired or was used. Send /closeall again."]
    assert [a["callback_query_id"] for a in fake.answers] == [f"cq{pressed}"]
    box.stop()


def test_a_slow_or_flooded_telegram_never_holds_up_an_order(app, users, fake, monkeypatch):
    alice, _ = users
    monkeypatch.setitem(app.config, "TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setitem(app.config, "TELEGRAM_API_URL", fake.url)
    monkeypatch.setitem(app.config, "TELEGRAM_DAILY_SUMMARY_TIME", "")
    api = TelegramApi(TOKEN, fake.url)
    monkeypatch.setitem(app.extensions, events.EXTENSION_KEY, {
        "api": api, "outbox": Outbox(api.call, max_wait=0.01), "runner": None, "pid": None,
        "lock": threading.Lock()})
    code = telegram.new_code(alice)
    set_quote("INFY", "1500", bid="1499.95", ask="1500.05")
    fake.hold("sendMessage")
    fake.push_message(ALICE_CHAT, f"/start {code}")

    runner = events.start_in_this_process(app)  # as the first response of a worker does
    assert events.start_in_this_process(app) is None  # once per process
    runner.poll_timeout = 1
    try:
        assert fake.wait_held("sendMessage")  # "Linked ..." is stuck in a slow Telegram
        first = trading.place_order(alice, order(quantity=1))
        fake.fail_next("sendMessage", times=2)  # and then Telegram floods: 429, retry_after
        second = trading.place_order(alice, order(quantity=2))
        # both orders were answered while the outbox's first message was still waiting at Telegram
        assert (first.status, second.status) == ("complete", "complete")
        assert fake.messages == []
        assert fake.waiting["sendMessage"] == 1
        fake.release("sendMessage")
        texts = [m["text"] for m in fake.wait_messages(3)]
        assert texts[0].startswith("Linked to Algobridge user alice")
        assert sorted(texts[1:]) == sorted([
            f"Filled: BUY 1 INFY NSE MIS @ 1500.05 (analyze), order {first.orderid}",
            f"Filled: BUY 2 INFY NSE MIS @ 1500.05 (analyze), order {second.orderid}"])
        assert fake.calls.count("sendMessage") == 5  # three messages, two of them refused once (429) first
    finally:
        runner.stop()
        runner.thread.join(10)
    assert not runner.thread.is_alive()
    assert Notifier("next-worker").take_lease()  # the stopped poller let its lease go


def test_no_token_no_poller(app):
    assert app.config["TELEGRAM_BOT_TOKEN"] == ""
    events.start(app)
    assert events.EXTENSION_KEY not in app.extensions
