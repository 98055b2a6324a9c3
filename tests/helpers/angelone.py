"""Live mode in tests with Angel One: the application pointed at a local fake SmartAPI, and a user connected to
it through the login form (client code, PIN, TOTP)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from database import db
from database.user_db import User
from services.accounts import broker_login
from services.market import master_contract, symbol_index
from services.trading import venues
from tests.fakes.angelone_server import API_KEY, RunningAngel, running_angel
from tests.helpers.live import app_settings, session_client


@contextlib.contextmanager
def app_on_fake_angel(app) -> Iterator[RunningAngel]:
    """A fake SmartAPI on a local port, with the app's Angel One settings pointed at it (restored after)."""
    with running_angel() as server, app_settings(
        app,
        {"ANGELONE_API_KEY": API_KEY, "ANGELONE_ROOT_URL": server.url,
         "ANGELONE_INSTRUMENTS_URL": server.instruments_url},
    ):
        yield server


@pytest.fixture
def angel(app) -> Iterator[RunningAngel]:
    """The app on a fake SmartAPI for the test (a fixture: import it into the test module)."""
    with app_on_fake_angel(app) as server:
        yield server


def connect_angel(user_id: int, angel: RunningAngel) -> None:
    """Log `user_id` in to the fake SmartAPI through the login form and switch them to live mode."""
    user = db.session.get(User, user_id)
    broker_login.start_login(user, "angelone")
    broker_login.complete_login(user, "angelone", broker_login.form_values("angelone", angel.fake.login_fields()))
    db.session.commit()
    venues.set_analyze(user_id, False)


def connect_angel_with_contract(user_id: int, angel: RunningAngel) -> None:
    """`connect_angel`, and Angel One's scrip master loaded as the master contract (its tokens are the ones the
    fake knows)."""
    connect_angel(user_id, angel)
    master_contract.import_from_broker(session_client(user_id), broker="angelone")
    symbol_index.reload()
