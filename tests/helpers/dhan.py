"""Live mode on Dhan in tests: the application pointed at a local fake DhanHQ v2 server, and a user connected."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from database import db
from database.user_db import User
from services.accounts import broker_login
from services.market import master_contract, symbol_index
from services.trading import venues
from tests.fakes.dhan_server import CLIENT_ID, RunningDhan, running_dhan
from tests.helpers.live import app_settings, session_client


@contextlib.contextmanager
def app_on_fake_dhan(app) -> Iterator[RunningDhan]:
    """A fake Dhan on a local port, with the app's Dhan settings pointed at it (restored after). The adapter's
    pacing (Dhan's one quote request a second) is switched off: the fake has no rate limit to respect."""
    with running_dhan() as server, app_settings(
        app, {"DHAN_ROOT_URL": server.url, "DHAN_INSTRUMENTS_URL": server.instruments_url}
    ):
        with app.app_context():
            adapter = broker_login.broker("dhan")
            adapter.quote_pacer.interval = adapter.data_pacer.interval = 0.0
        yield server


@pytest.fixture
def dhan(app) -> Iterator[RunningDhan]:
    """The app on a fake Dhan for the test (a fixture: import it into the test module)."""
    with app_on_fake_dhan(app) as server:
        yield server


def connect_dhan(user_id: int, dhan: RunningDhan) -> str:
    """Log `user_id` in to the fake Dhan with a fresh access token (the form login) and switch them to live
    mode. Returns the access token."""
    token = dhan.fake.issue_token()
    user = db.session.get(User, user_id)
    broker_login.start_login(user, "dhan")
    broker_login.complete_login(user, "dhan", {"client_id": CLIENT_ID, "access_token": token})
    db.session.commit()
    venues.set_analyze(user_id, False)
    return token


def connect_dhan_with_contract(user_id: int, dhan: RunningDhan) -> str:
    """`connect_dhan`, and Dhan's own master contract loaded (securityIds, not the sample contract's tokens)."""
    token = connect_dhan(user_id, dhan)
    master_contract.import_from_broker(session_client(user_id), broker="dhan")
    symbol_index.reload()
    return token
