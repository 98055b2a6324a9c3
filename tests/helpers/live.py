"""Live mode in tests: the application pointed at a local fake Kite, and a user connected to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

from database import db
from database.user_db import User
from services.accounts import broker_login
from services.market import master_contract, symbol_index
from services.trading import venues
from tests.fakes.kite_server import API_KEY, API_SECRET, RunningKite, running_kite

_MISSING = object()


@contextlib.contextmanager
def app_settings(app, values: Mapping[str, Any], *, keep: Iterable[str] = ()) -> Iterator[None]:
    """The app's settings set to `values` for the block, and the brokers built again from them; after it,
    those settings (and the ones named in `keep`, which the block may change) are restored and the brokers
    built again."""
    names = {*values, *keep}
    saved = {k: app.config.get(k, _MISSING) for k in names}
    app.config.update(values)
    broker_login.reset_brokers()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is _MISSING:
                app.config.pop(k, None)
            else:
                app.config[k] = v
        broker_login.reset_brokers()


@contextlib.contextmanager
def app_on_fake_kite(app) -> Iterator[RunningKite]:
    """A fake Kite on a local port, with the app's Zerodha settings pointed at it (restored after)."""
    with running_kite() as server, app_settings(
        app,
        {"ZERODHA_API_KEY": API_KEY, "ZERODHA_API_SECRET": API_SECRET, "ZERODHA_ROOT_URL": server.url,
         "ZERODHA_LOGIN_URL": server.login_url},
        keep=("SESSION_EXPIRY_TIME",),
    ):
        yield server


@pytest.fixture
def kite(app) -> Iterator[RunningKite]:
    """The app on a fake Kite for the test (a fixture: import it into the test module)."""
    with app_on_fake_kite(app) as server:
        yield server


def connect_live(user_id: int, kite: RunningKite) -> None:
    """Log `user_id` in to the fake Kite through the real token exchange and switch them to live mode."""
    user = db.session.get(User, user_id)
    broker_login.start_login(user, "zerodha")
    broker_login.complete_login(user, "zerodha", {"request_token": kite.fake.issue_request_token(),
                                                  "status": "success"})
    db.session.commit()
    venues.set_analyze(user_id, False)


def session_client(user_id: int):
    """The client of `user_id`'s active broker session, as the Symbols page's download opens it (a live venue
    refuses calls until its broker's own contract is loaded: this is how that contract gets loaded)."""
    active = broker_login.active_session(user_id)
    return broker_login.broker(active.broker).session(broker_login.access_token(active))


def connect_live_with_contract(user_id: int, kite: RunningKite) -> None:
    """`connect_live`, and Kite's own master contract loaded (the fake Kite knows its instrument tokens, not the
    sample contract's)."""
    connect_live(user_id, kite)
    master_contract.import_from_broker(session_client(user_id), broker="zerodha")
    symbol_index.reload()
