"""Orders waiting for a person's approval (OpenAlgo's action center), issue #19.

A scope whose limits say `require_approval` (the account, a strategy, or the API key that called) does not
send its orders to the venue: `queue()` stores the order's input with the alert that made it and answers
`Queued` (an OrderError the API turns into OpenAlgo's answer for a queued order). A person approves it
(the order is then placed, as its owner, through the ordinary use case: every risk check applies again)
or rejects it, on the risk page or from Telegram; one not decided in time expires (`expire_due`, from the
scheduler). Every decision is an audit row.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from database import db
from database.alert_db import Alert
from database.audit_db import AuditEvent
from database.risk_db import APPROVED, EXPIRED, FAILED, QUEUED, REJECTED, Approval
from database.types import utcnow
from database.unit import unit_of_work
from services.trading import orders, risk, venues
from services.trading.errors import OrderError
from services.trading.journal import OrderInput
from services.trading.risk import QUEUED_MESSAGE, Queued, queue

log = logging.getLogger("algobridge.approvals")

__all__ = ["QUEUED_MESSAGE", "ApprovalError", "Queued", "approve", "expire_due", "pending", "queue", "recent",
           "reject"]

class ApprovalError(ValueError):
    """An approval that cannot be decided (unknown, already decided, expired)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def _order_input(data: dict[str, Any]) -> OrderInput:
    values = {k: data[k] for k in OrderInput.__dataclass_fields__ if k in data}
    for k in ("price", "trigger_price"):
        if k in values:
            values[k] = Decimal(str(values[k]))
    return OrderInput(**values)


def pending(user_id: int, now: dt.datetime | None = None) -> list[Approval]:
    """The user's orders still waiting (not yet expired at `now`), oldest first."""
    now = now or utcnow()
    return list(db.session.scalars(select(Approval).where(
        Approval.user_id == user_id, Approval.status == QUEUED, Approval.expires_at > now).order_by(Approval.id)))


def recent(user_id: int, limit: int = 50) -> list[Approval]:
    return list(db.session.scalars(select(Approval).where(Approval.user_id == user_id)
                                   .order_by(Approval.id.desc()).limit(limit)))


MAX_ID = 2**31 - 1  # the ids' column is a 32-bit integer: a larger one names nothing


def _claim(user_id: int, approval_id: int, status: str, actor: str, reason: str | None,
           now: dt.datetime) -> Approval:
    """Move a queued, unexpired approval to `status` (one decision wins across processes)."""
    if not 0 < approval_id <= MAX_ID:
        raise ApprovalError(f"Approval {approval_id} not found", 404)
    with unit_of_work(write=True):
        row = db.session.get(Approval, approval_id)
        if row is None or row.user_id != user_id:
            raise ApprovalError(f"Approval {approval_id} not found", 404)
        late = row.status == QUEUED and row.expires_at <= now
        if late:  # expired: recorded so (committed with this unit), then refused
            _expire(row, now)
        else:
            done = db.session.execute(update(Approval).where(Approval.id == approval_id, Approval.status == QUEUED)
                                      .values(status=status, decided_at=now, decided_by=actor[:64], reason=reason))
            if done.rowcount != 1:
                db.session.refresh(row)
                raise ApprovalError(f"Approval {approval_id} was already {row.status}", 409)
            db.session.add(AuditEvent(user_id=user_id, actor=actor[:64], action=f"approval.{status}",
                                      target_type="approval", target_id=str(approval_id),
                                      after={"reason": reason} if reason else None))
    if late:
        raise ApprovalError(f"Approval {approval_id} has expired", 409)
    db.session.refresh(row)
    return row


def approve(user_id: int, approval_id: int, actor: str, now: dt.datetime | None = None) -> Approval:
    """Approve and place the order (its risk checks apply now). The row ends `approved` with the order id, or
    `failed` with the venue's refusal. ApprovalError when it cannot be approved."""
    now = now or utcnow()
    row = _claim(user_id, approval_id, APPROVED, actor, None, now)
    data = dict(row.order)
    position_size = data.pop("position_size", None)
    orderid, message = None, None
    try:
        venue = venues.venue_for(user_id)
        message = _moved(row, venue)
        if message is None:
            inp = _order_input(data)
            with risk.approved():
                if row.kind == "smart":
                    placed = orders.place_smart_order(venue, inp, int(position_size or 0), signal_id=row.signal_id)
                else:
                    placed = orders.place_order(venue, inp, signal_id=row.signal_id)
            orderid = placed.orderid if placed is not None else None
    except OrderError as exc:
        message = exc.message
    except Exception:  # never a 500 with the row left "approved": it failed, and the log says why
        log.exception("approval %s of user %s: placing the order failed", approval_id, user_id)
        db.session.rollback()
        message = "The order could not be placed (an internal error; see the application log)"
    with unit_of_work():
        row = db.session.get(Approval, approval_id)
        row.orderid = orderid
        if message is not None:
            row.status, row.reason = FAILED, message[:1000]
    db.session.refresh(row)
    return row


def _moved(row: Approval, venue: venues.Venue) -> str | None:
    """Why the approval cannot be placed at `venue` (the account changed mode or broker since it was queued)."""
    if row.mode is not None and row.mode != venue.mode.value:
        return f"queued in {row.mode} mode; the account is now {venue.mode.value}: not placed"
    if row.broker is not None and row.broker != venue.broker:
        return f"queued at {row.broker}; the account now trades at {venue.broker}: not placed"
    return None


def reject(user_id: int, approval_id: int, actor: str, reason: str | None = None,
           now: dt.datetime | None = None) -> Approval:
    """Reject a queued order: it is never placed."""
    return _claim(user_id, approval_id, REJECTED, actor, (reason or "").strip()[:1000] or None, now or utcnow())


def _expire(row: Approval, now: dt.datetime) -> None:
    row.status, row.decided_at, row.decided_by = EXPIRED, now, "system"
    db.session.add(Alert(user_id=row.user_id, severity="warning", kind="approval_expired",
                         title=f"Approval #{row.id} expired: the order was not placed"))
    db.session.add(AuditEvent(user_id=row.user_id, actor="system", action="approval.expired",
                              target_type="approval", target_id=str(row.id)))


def expire_due(now: dt.datetime | None = None) -> int:
    """Expire every queued approval whose time is up (the scheduler). Returns how many."""
    now = now or utcnow()
    with unit_of_work(write=True):
        rows = list(db.session.scalars(select(Approval).where(Approval.status == QUEUED, Approval.expires_at <= now)
                                       .with_for_update(skip_locked=True)))
        for row in rows:
            _expire(row, now)
    return len(rows)
