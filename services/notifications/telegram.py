"""Telegram linking and commands.

Linking: the settings page asks `new_code(user_id)` for a one-time code (8 characters, 10 minutes, stored as its
SHA-256 only); the person sends `/start CODE` to the bot from a private chat, and that chat becomes the user's
(a user has one chat and a chat one user: linking again moves the link). A wrong, expired or used code links
nothing. `unlink(user_id)` ends it from the settings page.

Commands, answered only in a linked chat and only about its own user:
  /positions   the open positions of the user's current book (analyze account or live broker)
  /pnl         realized, unrealized and total P&L now
  /mode        analyze or live
  /closeall    asks first: a "Close all" button (valid CLOSEALL_TTL) cancels the open orders and squares off
               every position, through the same use cases as the order book page; traders and admins only
  /approvals   the orders waiting for approval, each with Approve and Reject buttons; traders and admins only
  /help        this list
`handle_update(update, now)` answers one update (a message or a button's callback query) with the Bot API calls
to make, `(method, params)`; the poller (services.notifications.events) hands them to the outbox.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from typing import Any

from database import db
from database import telegram_db as store
from database.audit_db import AuditEvent
from database.risk_db import Approval
from database.types import utcnow
from database.unit import unit_of_work
from database.user_db import User
from services.accounts.users import TRADE_ROLES
from services.notifications.telegram_api import MAX_TEXT
from services.trading import approvals, books, orders, portfolio, venues
from services.trading.errors import OrderError

log = logging.getLogger("algobridge.telegram")

__all__ = ["CODE_TTL", "Call", "handle_update", "link_state", "new_code", "unlink"]

Call = tuple[str, dict[str, Any]]  # a Bot API method and its parameters

CODE_TTL = dt.timedelta(minutes=10)
CLOSEALL_TTL = dt.timedelta(minutes=2)
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen and typed on a phone
CODE_LENGTH = 8
WEB_STRATEGY = "Telegram"

HELP = ("Commands:\n/positions - open positions\n/pnl - profit and loss now\n/mode - analyze or live\n"
        "/closeall - close every position (asks first)\n/approvals - orders waiting for your approval\n"
        "/help - this list")
NOT_LINKED = ("This chat is not linked to an Algobridge account. On the Settings page, under Telegram, make a "
              "link code and send /start CODE here.")
BAD_CODE = "That link code is wrong, used or expired. Make a new one on the Settings page."


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


# -- linking (the settings page) ----------------------------------------------------------------------------
def new_code(user_id: int, *, now: dt.datetime | None = None) -> str:
    """A fresh one-time code for the user (their earlier codes stop working)."""
    now = now or utcnow()
    code = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
    with unit_of_work():
        store.add_code(user_id, _hash(code), now=now, expires_at=now + CODE_TTL)
        store.purge_codes(now - dt.timedelta(days=1))
    return code


def link_state(user_id: int) -> store.TelegramLink | None:
    return store.link_of_user(user_id)


def unlink(user_id: int, *, actor: str, ip: str | None = None) -> bool:
    with unit_of_work():
        gone = store.delete_links(user_id=user_id) > 0
        if gone:
            db.session.add(AuditEvent(user_id=user_id, actor=actor[:64], action="telegram.unlink", target_type="user",
                                      target_id=str(user_id), ip=ip))
    return gone


def _link(chat: dict, code: str, now: dt.datetime) -> str:
    """`/start CODE` from `chat`: the answer to send."""
    if chat.get("type") != "private":
        return "Link a private chat with the bot, not a group."
    with unit_of_work(write=True):
        row = store.code_for_update(_hash(code)) if code else None
        if row is None or row.used_at is not None or row.expires_at <= now:
            return BAD_CODE
        user = db.session.get(User, row.user_id)
        if user is None or not user.is_active:
            return BAD_CODE
        row.used_at = now
        chat_id = int(chat["id"])
        store.delete_links(user_id=user.id, chat_id=chat_id)
        db.session.flush()
        name = chat.get("username") or chat.get("first_name") or ""
        db.session.add(store.TelegramLink(user_id=user.id, chat_id=chat_id, chat_name=str(name)[:64], linked_at=now))
        db.session.add(AuditEvent(user_id=user.id, actor=user.username, action="telegram.link", target_type="user",
                                  target_id=str(user.id), after={"chat": str(name)[:64]}))
        username = user.username
    return f"Linked to Algobridge user {username}. You will get fills, rejections and alerts here.\n\n{HELP}"


# -- updates ------------------------------------------------------------------------------------------------
def say(chat_id: int, text: str, buttons: list[list[dict]] | None = None) -> Call:
    params: dict[str, Any] = {"chat_id": chat_id, "text": text[:MAX_TEXT]}
    if buttons:
        params["reply_markup"] = {"inline_keyboard": buttons}
    return ("sendMessage", params)


def handle_update(update: dict, *, now: dt.datetime | None = None) -> list[Call]:
    """The Bot API calls that answer one update (none for what the bot ignores)."""
    now = now or utcnow()
    try:
        if isinstance(update.get("message"), dict):
            return _message(update["message"], now)
        if isinstance(update.get("callback_query"), dict):
            return _callback(update["callback_query"], now)
    except (KeyError, TypeError, ValueError):  # a shape we do not know: nothing to say
        log.info("Telegram update %s not understood", update.get("update_id"))
    finally:
        db.session.remove()
    return []


def _user_of(chat_id: int) -> User | None:
    link = store.link_of_chat(chat_id)
    if link is None:
        return None
    user = db.session.get(User, link.user_id)
    return user if user is not None and user.is_active else None


def _message(msg: dict, now: dt.datetime) -> list[Call]:
    chat = msg["chat"]
    chat_id = int(chat["id"])
    text = str(msg.get("text") or "").strip()
    if not text.startswith("/"):
        return []
    word, _, rest = text.partition(" ")
    command = word[1:].split("@", 1)[0].lower()  # /pnl@SomeBot in a group names the bot
    if command == "start":
        code = rest.strip()
        if not code:
            return [say(chat_id, NOT_LINKED if _user_of(chat_id) is None else HELP)]
        return [say(chat_id, _link(chat, code, now))]
    user = _user_of(chat_id)
    if user is None:
        return [say(chat_id, NOT_LINKED)]
    handler = _COMMANDS.get(command)
    if handler is None:
        return [say(chat_id, HELP)]
    return handler(user, chat_id, now)


def _positions(user: User, chat_id: int, now: dt.datetime) -> list[Call]:
    try:
        venue = venues.venue_for(user.id)
        rows = [p for p in books.positionbook(venue) if p.get("quantity")]
    except OrderError as exc:
        return [say(chat_id, f"Positions unavailable: {exc.message}")]
    if not rows:
        return [say(chat_id, f"No open positions ({venue.label} mode).")]
    lines = [f"Open positions ({venue.label} mode):"]
    lines += [f"{p['symbol']} {p['exchange']} {p['product']}: {p['quantity']} @ {p['average_price']}, "
              f"LTP {p['ltp']}, P&L {p['pnl']}" for p in rows]
    return [say(chat_id, "\n".join(lines))]


def _pnl(user: User, chat_id: int, now: dt.datetime) -> list[Call]:
    return [say(chat_id, pnl_text(user.id) or "P&L unavailable: live mode without a broker session.")]


def pnl_text(user_id: int, title: str = "P&L") -> str | None:
    f = portfolio.figures(user_id)
    if f is None:
        return None
    total = f.realized_pnl + f.unrealized_pnl
    return (f"{title} ({f.mode.value} mode):\nRealized {f.realized_pnl:.2f}\nUnrealized {f.unrealized_pnl:.2f}\n"
            f"Total {total:.2f}\nAvailable cash {f.cash:.2f}")


def _mode(user: User, chat_id: int, now: dt.datetime) -> list[Call]:
    label = venues.mode_label(user.id)
    where = "the built-in paper broker" if label == "analyze" else "your broker"
    return [say(chat_id, f"Mode: {label} (orders go to {where}). Switch it on the Settings page.")]


def _closeall(user: User, chat_id: int, now: dt.datetime) -> list[Call]:
    if user.role not in TRADE_ROLES:
        return [say(chat_id, "Viewers cannot trade.")]
    try:
        venue = venues.venue_for(user.id)
        count = sum(1 for p in books.positionbook(venue) if p.get("quantity"))
    except OrderError as exc:
        return [say(chat_id, f"Cannot close: {exc.message}")]
    nonce = secrets.token_hex(8)
    with unit_of_work():
        link = store.link_of_chat(chat_id)
        link.pending_nonce, link.pending_until = nonce, now + CLOSEALL_TTL
    buttons = [[{"text": "Close all", "callback_data": f"ca:{nonce}"},
                {"text": "Keep", "callback_data": f"cx:{nonce}"}]]
    return [say(chat_id, f"Close {count} open position(s) at market and cancel every open order "
                          f"({venue.label} mode)? This button works for {int(CLOSEALL_TTL.total_seconds() // 60)} "
                          "minutes.", buttons)]


def _approvals(user: User, chat_id: int, now: dt.datetime) -> list[Call]:
    if user.role not in TRADE_ROLES:
        return [say(chat_id, "Viewers cannot approve orders.")]
    waiting = list(approvals.pending(user.id))
    if not waiting:
        return [say(chat_id, "No orders are waiting for approval.")]
    return [approval_message(chat_id, a) for a in waiting]


def _help(user: User, chat_id: int, now: dt.datetime) -> list[Call]:
    return [say(chat_id, HELP)]


_COMMANDS = {"positions": _positions, "pnl": _pnl, "mode": _mode, "closeall": _closeall, "approvals": _approvals,
             "help": _help}


# -- approvals ----------------------------------------------------------------------------------------------
def approval_message(chat_id: int, approval: Approval) -> Call:
    """A waiting order, with its Approve and Reject buttons."""
    aid = approval.id
    order = approval.order if isinstance(approval.order, dict) else {}
    what = " ".join(str(order.get(k, "")) for k in ("action", "quantity", "symbol", "exchange", "pricetype",
                                                      "product") if order.get(k) not in (None, ""))
    strategy = approval.strategy
    text = f"Approval needed #{aid}: {what or 'an order'}" + (f" (strategy {strategy})" if strategy else "")
    buttons = [[{"text": "Approve", "callback_data": f"ap:{aid}"}, {"text": "Reject", "callback_data": f"rj:{aid}"}]]
    return say(chat_id, text, buttons)


# -- buttons ------------------------------------------------------------------------------------------------
def _callback(query: dict, now: dt.datetime) -> list[Call]:
    answer: dict[str, Any] = {"callback_query_id": str(query["id"])}
    calls: list[Call] = [("answerCallbackQuery", answer)]
    message = query.get("message")
    if not isinstance(message, dict):
        return calls
    chat_id = int(message["chat"]["id"])
    user = _user_of(chat_id)
    if user is None:
        answer["text"] = "This chat is not linked."
        return calls
    kind, _, arg = str(query.get("data") or "").partition(":")
    if kind in ("ca", "cx"):
        text = _confirm_closeall(user, chat_id, arg, now, confirmed=kind == "ca")
    elif kind in ("ap", "rj"):
        text = _decide(user, chat_id, arg, approve=kind == "ap")
    else:
        text = "This button is not known."
    answer["text"] = text[:200]
    calls.append(say(chat_id, text))
    return calls


def _confirm_closeall(user: User, chat_id: int, nonce: str, now: dt.datetime, *, confirmed: bool) -> str:
    with unit_of_work(write=True):
        link = store.link_of_chat(chat_id)
        valid = (link is not None and link.pending_nonce is not None and secrets.compare_digest(link.pending_nonce,
                                                                                              nonce)
                 and link.pending_until is not None and link.pending_until > now)
        if link is not None and valid:
            link.pending_nonce, link.pending_until = None, None
    if not valid:
        return "This confirmation has expired or was used. Send /closeall again."
    if not confirmed:
        return "Nothing was closed."
    if user.role not in TRADE_ROLES:
        return "Viewers cannot trade."
    try:
        venue = venues.venue_for(user.id)
        cancelled, failed = orders.cancel_all_orders(venue)
        placed = orders.close_all_positions(venue, strategy=WEB_STRATEGY)
    except OrderError as exc:
        return f"Close all failed: {exc.message}"
    log.info("user %s closed all positions from Telegram: %d orders, %d cancelled", user.id, placed, len(cancelled))
    text = (f"Close all ({venue.label} mode): {placed} closing order(s) placed, "
            f"{len(cancelled)} open order(s) cancelled.")
    if failed:
        text += f" {len(failed)} could not be cancelled: {', '.join(failed[:10])}."
    return text


def _decide(user: User, chat_id: int, arg: str, *, approve: bool) -> str:
    if user.role not in TRADE_ROLES:
        return "Viewers cannot approve orders."
    if not (arg.isascii() and arg.isdigit()) or not 0 < int(arg) <= approvals.MAX_ID:
        return "This button is not known."
    actor = f"telegram:{user.username}"[:64]
    try:
        if approve:
            result = approvals.approve(user.id, int(arg), actor)
        else:
            result = approvals.reject(user.id, int(arg), actor, "rejected from Telegram")
    except (OrderError, approvals.ApprovalError) as exc:
        return f"Approval #{arg}: {exc.message}"
    if result.status == "failed":
        return f"Approval #{arg} approved, but the order failed: {result.reason or 'no reason given'}"
    if not approve:
        return f"Approval #{arg} rejected: the order will not be placed."
    return f"Approval #{arg} approved: order {result.orderid} placed."

