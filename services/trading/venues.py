"""The one decision: for a user and a call, which venue the call goes to, and with which mode label.

- analyze mode (the default, per user: setting "analyze_mode"): the analyze-mode exchange
  (services.trading.paper), with virtual funds; no broker is needed;
- live mode: the user's live broker session. The paper connection is not one: in live mode without a
  live broker session every call that needs the broker answers 403 (OpenAlgo's behaviour).
A call about an existing order goes where that order was placed: an analyze-mode order stays one after
the user switches to live. Every use case takes the Venue this module hands out, and the answer, the
API log, the latency log and the journal row all carry its `label`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from sqlalchemy import select

from brokers import get_broker_class
from brokers.base import BrokerClient, BrokerError
from database import db
from database.auth_db import BrokerSession
from database.enums import Mode
from database.order_db import Order
from database.unit import unit_of_work
from services.accounts import broker_login
from services.accounts.settings import SETTING_KEY, is_analyze, set_analyze
from services.market import contract_refresh
from services.trading.errors import NO_SESSION, SESSION_EXPIRED, OrderError, not_found

# The user's mode is a user setting (services.accounts.settings); here for the trading callers.
__all__ = ["PAPER", "SETTING_KEY", "Venue", "is_analyze", "live_venue", "mode_label", "own_order", "set_analyze",
           "venue_for"]

log = logging.getLogger("algobridge.orders")

PAPER = "paper"  # the broker label of the analyze-mode exchange, and the name of the paper connection


# -- the user's mode (a user setting: services.accounts.settings) ---------------------------------------
def mode_label(user_id: int) -> str:
    """The user's mode as a label ("analyze" or "live"), for calls that need no broker."""
    return Mode.ANALYZE.value if is_analyze(user_id) else Mode.LIVE.value


# -- the venue -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Venue:
    """Where one call goes. `client` and `active` are set for the live venue only."""

    user_id: int
    mode: Mode
    broker: str
    active: broker_login.ActiveSession | None = None
    client: BrokerClient | None = None
    orderid: str | None = None  # the order the venue was decided for (venue_for(..., orderid=...)),
    order: Order | None = None  # and its journal row (None when the journal has none): no second lookup

    @property
    def label(self) -> str:
        return self.mode.value

    @property
    def is_analyze(self) -> bool:
        return self.mode == Mode.ANALYZE

    def refused(self, exc: BrokerError) -> OrderError:
        """A live broker's refusal of a call, recorded in a unit of its own (see `record_refusal`), as
        the OrderError to raise."""
        with unit_of_work():
            self.record_refusal(exc)
        return self.answer_to(exc)

    def record_refusal(self, exc: BrokerError) -> None:
        """Inside the caller's unit: a refused token (the session is dead) marks the session expired."""
        if exc.is_session_error:
            row = db.session.get(BrokerSession, self.active.session_id)
            if row is not None:
                broker_login.mark_expired(row, reason="was refused by the broker")
            log.warning("%s refused the session of user %s: marked expired", self.broker, self.user_id)

    def answer_to(self, exc: BrokerError) -> OrderError:
        """The answer to a live broker's refusal: 403 for a dead session; else the broker's message with its
        HTTP status (400 when it has none, or when it is 401/403: a refused call, not a bad API key)."""
        if exc.is_session_error:
            return OrderError(SESSION_EXPIRED, 403)
        status = exc.status if exc.status and 400 <= exc.status < 600 else 400
        if status in (401, 403):
            status = 400
        log.warning("%s refused a call of user %s (%s): %s", self.broker, self.user_id, exc.kind.value, exc.message)
        return OrderError(exc.message, status)


def own_order(user_id: int, orderid: str) -> Order | None:
    """The user's journal row for `orderid`, or None when nobody has one; 404 when only another user has."""
    rows = list(db.session.scalars(select(Order).where(Order.orderid == str(orderid))))
    for row in rows:
        if row.user_id == user_id:
            return row
    if rows:
        raise not_found(orderid)
    return None


def _needs_own_contract(broker: str) -> bool:
    try:
        return get_broker_class(broker).needs_own_contract
    except BrokerError:  # an adapter gone since the session was made: opening its session says so
        return False


def _check_contract(broker: str) -> None:
    """A live call maps symbols through the one master contract: it must be this broker's (or, for a broker that
    goes by symbol, the sample contract, whose names are Kite's). Another broker's ids would name other
    instruments at this one, so the call is refused (409) before it reaches the broker."""
    loaded = contract_refresh.loaded_broker()
    if loaded is None or loaded == broker:
        return
    if loaded in contract_refresh.NO_CONTRACT and not _needs_own_contract(broker):
        return
    what = "the sample contract" if loaded in contract_refresh.NO_CONTRACT else f"{loaded}'s"
    raise OrderError(f"The master contract loaded is {what}, not {broker}'s: live calls to {broker} need its own "
                     f"(Symbols page, Download; it is downloaded after a {broker} login when the scheduler runs)", 409)


def venue_for(user_id: int, *, orderid: str | None = None) -> Venue:
    """The venue of a call by `user_id`; with `orderid`, of a call about that order (where it was placed,
    when the journal has it). Raises OrderError 403 in live mode without a live broker session, 404 for
    another user's order."""
    orderid = str(orderid) if orderid is not None else None
    row = own_order(user_id, orderid) if orderid is not None else None
    analyze = row.mode == Mode.ANALYZE if row is not None else is_analyze(user_id)
    if analyze:
        return Venue(user_id, Mode.ANALYZE, PAPER, orderid=orderid, order=row)
    return replace(live_venue(user_id), orderid=orderid, order=row)


def live_venue(user_id: int) -> Venue:
    """The user's live venue, whatever the user's mode: the live broker session, opened, after the master
    contract check. Raises OrderError 403 without a live broker session (or when it cannot be opened), 409 when
    the contract loaded is another broker's."""
    active = broker_login.active_session(user_id)
    if active is None or active.broker == PAPER:
        raise OrderError(NO_SESSION, 403)
    venue = Venue(user_id, Mode.LIVE, active.broker, active)
    _check_contract(active.broker)
    try:
        client = broker_login.broker(active.broker).session(broker_login.access_token(active))
    except broker_login.BrokerLoginError:
        raise OrderError(SESSION_EXPIRED, 403) from None
    except BrokerError as exc:
        raise venue.refused(exc) from None
    return Venue(user_id, Mode.LIVE, active.broker, active, client)
