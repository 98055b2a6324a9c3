"""Fixtures for the broker adapters: a fake Kite on a local port, and adapters pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from brokers.zerodha import KiteClient, ZerodhaBroker
from tests.fakes.kite_server import RunningKite, running_kite


@pytest.fixture
def kite() -> Iterator[RunningKite]:
    with running_kite() as server:
        yield server


@pytest.fixture
def zerodha(kite: RunningKite) -> Iterator[ZerodhaBroker]:
    broker = ZerodhaBroker(
        api_key=kite.fake.api_key,
        api_secret=kite.fake.api_secret,
        redirect_url=kite.fake.redirect_url,
        root=kite.url,
        login_url=kite.login_url,
        timeout=5,
    )
    yield broker
    broker.close()


@pytest.fixture
def client(zerodha: ZerodhaBroker, kite: RunningKite) -> KiteClient:
    """A logged-in session, obtained through the real token exchange."""
    result = zerodha.complete_login({"status": "success", "request_token": kite.fake.issue_request_token()})
    return zerodha.session(result.access_token)
