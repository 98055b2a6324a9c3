"""Helpers for the REST API v1 tests: a user with an API key, the sample contract, posting JSON."""

from __future__ import annotations

from sqlalchemy import func, select

from database import db
from database.apilog_db import ApiLog
from database.latency_db import OrderLatency
from database.order_db import Order
from services.accounts import api_keys
from services.market import symbol_index
from services.market.master_contract import ensure_sample_contract
from tests.helpers.accounts import make_user

ALL_SCOPES = ("orders", "read", "data")
HIGH_LIMITS = {"API_RATE_LIMIT": "10000 per second", "ORDER_RATE_LIMIT": "10000 per second",
               "SMART_ORDER_RATE_LIMIT": "10000 per second"}


def user_with_key(username: str = "alice", scopes=ALL_SCOPES, role: str = "trader"):
    """A committed user and the plaintext of a new API key of theirs."""
    user = make_user(username, role)
    row, key = api_keys.create_key(user, f"{username}-key", list(scopes))
    db.session.commit()
    return user, row, key


def load_symbols(rows: int = 2000) -> None:
    ensure_sample_contract(rows=rows)
    symbol_index.reload()


def raise_limits(app, monkeypatch) -> None:
    for name, value in HIGH_LIMITS.items():
        monkeypatch.setitem(app.config, name, value)


def post(client, name: str, body=None, **kwargs):
    return client.post(f"/api/v1/{name}", json=body, **kwargs)


def flush_logs(app) -> None:
    assert app.extensions["algobridge.writer"].flush(timeout=30)


def count(model) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def api_logs() -> list[ApiLog]:
    db.session.rollback()
    return list(db.session.scalars(select(ApiLog).order_by(ApiLog.id)))


def latency_rows() -> list[OrderLatency]:
    db.session.rollback()
    return list(db.session.scalars(select(OrderLatency).order_by(OrderLatency.id)))


def orders_count() -> int:
    return count(Order)
