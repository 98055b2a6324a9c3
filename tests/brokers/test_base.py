"""The interface's values: orders, errors, times."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from brokers.base import (
    BrokerError,
    ErrorKind,
    LoginResult,
    OrderRequest,
    exchange_time,
    next_daily_expiry,
    to_decimal,
)

IST = ZoneInfo("Asia/Kolkata")


@pytest.mark.parametrize(
    ("moment", "expiry"),
    [
        (dt.datetime(2024, 3, 28, 10, 0, tzinfo=IST), dt.datetime(2024, 3, 29, 6, 0, tzinfo=IST)),
        (dt.datetime(2024, 3, 28, 6, 0, tzinfo=IST), dt.datetime(2024, 3, 29, 6, 0, tzinfo=IST)),
        (dt.datetime(2024, 3, 28, 5, 59, tzinfo=IST), dt.datetime(2024, 3, 28, 6, 0, tzinfo=IST)),
        # 23:00 UTC is 04:30 IST the next day.
        (dt.datetime(2024, 3, 28, 23, 0, tzinfo=dt.UTC), dt.datetime(2024, 3, 29, 6, 0, tzinfo=IST)),
    ],
)
def test_next_daily_expiry(moment, expiry):
    assert next_daily_expiry(moment) == expiry


def test_next_daily_expiry_refuses_naive_times():
    with pytest.raises(ValueError, match="aware"):
        next_daily_expiry(dt.datetime(2024, 3, 28, 10, 0))


def test_exchange_time_reads_naive_values_as_ist():
    assert exchange_time("2024-03-28 09:15:00") == dt.datetime(2024, 3, 28, 9, 15, tzinfo=IST)
    assert exchange_time(None) is None
    assert exchange_time("") is None
    aware = dt.datetime(2024, 3, 28, 3, 45, tzinfo=dt.UTC)
    assert exchange_time(aware) is aware


def test_to_decimal():
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal("12.50") == Decimal("12.50")
    assert to_decimal(None) == Decimal(0)
    with pytest.raises(ValueError, match="not a number"):
        to_decimal("abc")
    with pytest.raises(ValueError, match="not a number"):
        to_decimal(True)


def test_order_request_normalises_codes_and_prices():
    order = OrderRequest(
        symbol="INFY",
        exchange="NSE",
        action="buy",
        quantity=1,
        pricetype="sl-m",
        product="cnc",
        trigger_price=1500.5,
    )
    assert (order.action, order.pricetype, order.product) == ("BUY", "SL-M", "CNC")
    assert order.trigger_price == Decimal("1500.5")
    assert order.price == Decimal(0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"action": "HOLD"}, "action must be one of"),
        ({"pricetype": "STOP"}, "pricetype must be one of"),
        ({"product": "MTF"}, "product must be one of"),
        ({"quantity": 0}, "quantity must be positive"),
        ({"quantity": -1}, "quantity must be a non-negative int"),
        ({"quantity": 1.5}, "quantity must be a non-negative int"),
        ({"quantity": True}, "quantity must be a non-negative int"),
        ({"price": Decimal("-1")}, "price and trigger_price must not be negative"),
        ({"disclosed_quantity": -1}, "disclosed_quantity must be a non-negative int"),
        ({"symbol": ""}, "symbol and exchange are required"),
    ],
)
def test_order_request_refuses_bad_values(changes, message):
    fields = {"symbol": "INFY", "exchange": "NSE", "action": "BUY", "quantity": 1, **changes}
    with pytest.raises(ValueError, match=message):
        OrderRequest(**fields)


def test_broker_error():
    error = BrokerError("Incorrect `api_key` or `access_token`.", status=403, kind="token")
    assert str(error) == "Incorrect `api_key` or `access_token`."
    assert error.kind is ErrorKind.TOKEN
    assert error.kind == "token"
    assert error.is_session_error
    assert BrokerError("x").kind == "broker"
    with pytest.raises(ValueError, match="not a valid ErrorKind"):
        BrokerError("x", kind="no-such-kind")


def test_login_result_keeps_its_token_out_of_repr():
    result = LoginResult(
        access_token="very-secret-token",
        broker_user_id="AB1234",
        user_name="Tester",
        expires_at=dt.datetime(2024, 3, 29, 6, 0, tzinfo=IST),
    )
    assert "very-secret-token" not in repr(result)
    with pytest.raises(ValueError, match="aware"):
        LoginResult(
            access_token="t",
            broker_user_id="x",
            user_name="x",
            expires_at=dt.datetime(2024, 3, 29, 6, 0),
        )
