"""The paper broker's connection: no credentials, a daily session like a live broker's."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from brokers import get_broker
from brokers.base import BrokerError
from brokers.paper import PaperBroker


def test_paper_connects_without_credentials():
    broker = get_broker("paper")
    assert broker.login_kind == "none"
    assert broker.form_fields() == ()

    result = broker.complete_login({})

    assert result.access_token
    assert result.broker_user_id == "PAPER"
    assert result.expires_at > dt.datetime.now(dt.UTC)
    assert result.expires_at.astimezone(ZoneInfo("Asia/Kolkata")).time() == dt.time(6, 0)
    assert result.access_token not in repr(result)
    broker.logout(result.access_token)


def test_each_paper_login_is_a_new_session():
    broker = PaperBroker()
    first = broker.complete_login({"user_id": "alice", "user_name": "Alice"})
    second = broker.complete_login({})
    assert first.access_token != second.access_token
    assert (first.broker_user_id, first.user_name) == ("alice", "Alice")


def test_paper_has_no_login_page():
    with pytest.raises(BrokerError) as info:
        PaperBroker().login_url("state")
    assert info.value.kind == "unsupported"


def test_the_paper_connection_has_no_broker_api():
    # Analyze-mode trading goes to services.trading.paper, never through a broker client.
    with pytest.raises(BrokerError) as info:
        PaperBroker().session("token")
    assert info.value.kind == "unsupported"
