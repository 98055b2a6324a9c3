"""What to tell on Telegram, and the one process that tells it.

What (`Notifier.poll`), each to the chat linked to the user it concerns:
- fills and rejections of the user's orders, both modes: read by polling the order journal with
  services.trading.order_events.JournalWatcher, as the WebSocket feed does, so the trading path pays nothing;
- new `alerts` rows (risk limit breaches, broker session expiry, ...; not `order_rejected`, which the journal
  already tells), above a high-water id kept on the lease row; an alert for the admins (no user) goes to every
  linked admin;
- orders waiting for approval (services.trading.approvals), once each, with Approve and Reject buttons;
- the daily P&L summary, once per trading day at TELEGRAM_DAILY_SUMMARY_TIME (exchange time) or at the first
  poll after it; the day sent is kept on the lease row.

Who: every process (each gunicorn worker) runs a `Runner` thread, started after its first response as the
deferred start-up work is (services.runtime.startup), never in gunicorn's master. Only the holder of the database
lease `notifier` (telegram_db.take_lease, renewed at every step, LEASE_TTL) polls the journal and Telegram's
getUpdates (long polling: a self-hosted server behind NAT needs no webhook); the others try again now and then,
and one of them takes over within LEASE_TTL of the holder's end. What it says goes through the outbox
(services.notifications.outbox): a slow or failing Telegram delays messages, never an order.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading

from flask import Flask, Response, current_app
from sqlalchemy import func, select

import config as config_module
from database import db
from database import telegram_db as store
from database.alert_db import Alert
from database.enums import Role
from database.risk_db import QUEUED, Approval
from database.types import utcnow
from database.unit import unit_of_work
from database.user_db import User
from services.market import calendar
from services.notifications import telegram
from services.notifications.outbox import Outbox
from services.notifications.telegram_api import TelegramApi, TelegramError
from services.trading.order_events import JournalWatcher, OrderRow
from services.trading.shapes import num

log = logging.getLogger("algobridge.telegram")

__all__ = ["LEASE", "Notifier", "Runner", "start"]

LEASE = "notifier"
LEASE_TTL = dt.timedelta(seconds=60)
SETTLE = dt.timedelta(seconds=5)  # an alert id may become visible this long after a higher one (PostgreSQL)
POLL_TIMEOUT = 5  # seconds a getUpdates call waits for updates: also the longest pause between event polls
# alerts told otherwise: rejections by the journal's watch, waiting orders with their buttons (`approvals`)
SILENT_KINDS = frozenset({"order_rejected", "approval_queued"})
EXTENSION_KEY = "algobridge.telegram"


def fill_text(row: OrderRow) -> str:
    return (f"Filled: {row.action} {int(row.filled_quantity or row.quantity)} {row.symbol} {row.exchange} "
            f"{row.product} @ {num(row.average_price)} ({row.mode}), order {row.orderid}")


def rejection_text(row: OrderRow) -> str:
    return (f"Rejected: {row.action} {int(row.quantity)} {row.symbol} {row.exchange} {row.product} ({row.mode}), "
            f"order {row.orderid}: {row.status_message or 'no reason given'}")


class Notifier:
    """What happened since the last poll, as Bot API calls. One per process; needs an application context."""

    def __init__(self, holder: str | None = None, *, summary_time: str | None = None) -> None:
        self.holder = (holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")[:64]
        self.summary_time = summary_time
        self.watcher = JournalWatcher()
        self.alerts_told: set[int] = set()
        self.approvals_told: set[int] = set()

    # -- the lease --------------------------------------------------------------------------------------------
    def take_lease(self, now: dt.datetime | None = None) -> bool:
        now = now or utcnow()
        with unit_of_work():
            return store.take_lease(LEASE, self.holder, now=now, until=now + LEASE_TTL)

    def release_lease(self, now: dt.datetime | None = None) -> None:
        with unit_of_work():
            store.release_lease(LEASE, self.holder, now=now or utcnow())

    # -- everything -------------------------------------------------------------------------------------------
    def poll(self, now: dt.datetime | None = None) -> list[telegram.Call]:
        """Call with the lease held."""
        now = now or utcnow()
        chats = store.chats_by_user()
        calls = self.orders(chats) + self.alerts(chats, now) + self.approvals(chats, now) + self.summary(chats, now)
        db.session.remove()
        return calls

    def orders(self, chats: dict[int, int]) -> list[telegram.Call]:
        calls = []
        for row in self.watcher.poll():
            chat = chats.get(row.user_id)
            if chat is None:
                continue
            if row.status == "complete":
                calls.append(telegram.say(chat, fill_text(row)))
            elif row.status == "rejected":
                calls.append(telegram.say(chat, rejection_text(row)))
        return calls

    def alerts(self, chats: dict[int, int], now: dt.datetime) -> list[telegram.Call]:
        with unit_of_work(write=True):
            lease = store.lease(LEASE)
            if lease is None:
                return []
            if lease.alert_mark is None:  # the first poll ever: from now on
                lease.alert_mark = db.session.scalar(select(func.max(Alert.id))) or 0
                return []
            rows = db.session.execute(select(Alert.id, Alert.user_id, Alert.kind, Alert.title, Alert.message,
                                             Alert.created_at).where(Alert.id > lease.alert_mark)
                                      .order_by(Alert.id).limit(500)).all()
            settled = [r.id for r in rows if r.created_at <= now - SETTLE]
            if settled:
                lease.alert_mark = max(settled)
            mark = lease.alert_mark
        fresh = [r for r in rows if r.id not in self.alerts_told and r.kind not in SILENT_KINDS]
        self.alerts_told = {i for i in self.alerts_told | {r.id for r in rows} if i > mark}
        if not fresh or not chats:
            return []
        admins = None
        calls = []
        for r in fresh:
            text = f"Alert: {r.title}" + (f"\n{r.message}" if r.message else "")
            if r.user_id is not None:
                targets = [chats[r.user_id]] if r.user_id in chats else []
            else:
                if admins is None:
                    admins = list(db.session.scalars(select(User.id).where(User.id.in_(list(chats)),
                                                                           User.role == Role.ADMIN)))
                targets = [chats[a] for a in admins]
            calls += [telegram.say(chat, text) for chat in targets]
        return calls

    def approvals(self, chats: dict[int, int], now: dt.datetime) -> list[telegram.Call]:
        if not chats:
            return []
        rows = db.session.scalars(select(Approval).where(
            Approval.status == QUEUED, Approval.expires_at > now, Approval.user_id.in_(list(chats)))
            .order_by(Approval.id))
        calls, waiting = [], set()
        for a in rows:
            waiting.add(a.id)
            if a.id not in self.approvals_told:
                calls.append(telegram.approval_message(chats[a.user_id], a))
        self.approvals_told = waiting  # decided or expired ones are forgotten
        return calls

    def summary(self, chats: dict[int, int], now: dt.datetime) -> list[telegram.Call]:
        raw = (self.summary_time if self.summary_time is not None
               else current_app.config.get("TELEGRAM_DAILY_SUMMARY_TIME", "")).strip()
        if raw.lower() in ("", "off"):
            return []
        local = now.astimezone(config_module.exchange_tz(current_app.config))
        if local.time() < config_module.parse_time_of_day(raw) or not calendar.is_trading_day("NSE", local.date()):
            return []
        with unit_of_work(write=True):
            lease = store.lease(LEASE)
            if lease is None or lease.summary_day == local.date():
                return []
            lease.summary_day = local.date()
        calls = []
        for user_id, chat in chats.items():
            text = telegram.pnl_text(user_id, title=f"Daily P&L {local.date().isoformat()}")
            if text is not None:
                calls.append(telegram.say(chat, text))
        return calls


class Runner:
    """The loop of the lease holder: events, then Telegram's updates (long polling), again and again."""

    def __init__(self, app: Flask, api: TelegramApi, outbox: Outbox, notifier: Notifier | None = None, *,
                 poll_timeout: int = POLL_TIMEOUT) -> None:
        self.app = app
        self.api = api
        self.outbox = outbox
        self.notifier = notifier or Notifier()
        self.poll_timeout = poll_timeout
        self.offset: int | None = None
        self.stop_event = threading.Event()
        self.holding = False
        self.thread: threading.Thread | None = None  # set by start_in_this_process

    def step(self, now: dt.datetime | None = None) -> bool:
        """One round; False when another process holds the lease (nothing was done)."""
        with self.app.app_context():
            held = self.notifier.take_lease(now)
            if held and not self.holding:
                log.info("Telegram: this process (%s) polls the bot now", self.notifier.holder)
            self.holding = held
            if not held:
                return False
            for method, params in self.notifier.poll(now):
                self.outbox.put(method, params)
        updates = self.api.get_updates(self.offset, self.poll_timeout)
        with self.app.app_context():
            for update in updates:
                uid = update.get("update_id")
                if isinstance(uid, int):
                    self.offset = max(self.offset or 0, uid + 1)
                for method, params in telegram.handle_update(update, now=now):
                    self.outbox.put(method, params)
        return True

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                if self.step():
                    continue
                wait = LEASE_TTL.total_seconds() / 4
            except TelegramError as exc:
                log.warning("Telegram: %s", exc)
                wait = min(exc.retry_after or 5.0, 60.0)
            except Exception:
                log.exception("Telegram poller failed; it tries again")
                wait = 5.0
            self.stop_event.wait(wait)
        if self.holding:
            with self.app.app_context():
                self.notifier.release_lease()

    def stop(self) -> None:
        self.stop_event.set()


# -- start-up ---------------------------------------------------------------------------------------------------
def start(app: Flask) -> None:
    """Arrange this app's Telegram poller when TELEGRAM_BOT_TOKEN is set: it starts after the first response of
    each serving process (so not in gunicorn's master, and once per forked worker)."""
    if not app.config.get("TELEGRAM_BOT_TOKEN") or EXTENSION_KEY in app.extensions:
        return
    api = TelegramApi(app.config["TELEGRAM_BOT_TOKEN"], app.config.get("TELEGRAM_API_URL") or "https://api.telegram.org")
    app.extensions[EXTENSION_KEY] = {"api": api, "outbox": Outbox(api.call), "runner": None, "pid": None,
                                     "lock": threading.Lock()}
    app.after_request(_after_request)


def _after_request(response: Response) -> Response:
    state = current_app.extensions[EXTENSION_KEY]
    if state["pid"] != os.getpid():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        response.call_on_close(lambda: start_in_this_process(app))
    return response


def start_in_this_process(app: Flask) -> Runner | None:
    """Start this process's poller thread, once; returns its Runner (None if it was started already)."""
    state = app.extensions[EXTENSION_KEY]
    pid = os.getpid()
    with state["lock"]:
        if state["pid"] == pid:
            return None
        runner = Runner(app, state["api"], state["outbox"])
        state["pid"], state["runner"] = pid, runner
        runner.thread = threading.Thread(target=runner.run, name="algobridge-telegram", daemon=True)
    runner.thread.start()
    return runner
