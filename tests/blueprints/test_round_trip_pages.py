"""The round trips page (/roundtrips) and its CSV export, signed in, on both databases."""

from __future__ import annotations

import csv
import io

import pytest

from services.trading import venues
from tests.helpers import trading
from tests.helpers.accounts import isolated_client, login, make_user, use_test_hasher
from tests.helpers.orders import contract, order, set_quote  # noqa: F401 - fixtures

HEADERS = ["Symbol", "Exchange", "Product", "Side", "Qty", "Entry time", "Entry price", "Exit time", "Exit price",
           "Gross P&L", "Charges", "Net P&L", "Holding", "Exit reason"]


@pytest.fixture
def viewer(app, contract, monkeypatch):  # noqa: F811
    """A signed-in viewer (any role may read) with one closed trip: 10 INFY 1500 -> 1512.5."""
    use_test_hasher(monkeypatch)
    user = make_user("viewer1", "viewer")
    set_quote("INFY", "1500")
    trading.place_order(user.id, order(quantity=10))
    set_quote("INFY", "1512.5")
    trading.place_order(user.id, order(action="SELL", quantity=10))
    client = isolated_client(app)
    login(client, user.username)
    return {"id": user.id, "client": client}


def test_round_trips_page_lists_the_trip_with_statistics(viewer):
    client = viewer["client"]
    for url in ("/roundtrips", "/roundtrips?days=7", "/roundtrips?days=bogus"):
        resp = client.get(url)
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        assert 'id="roundtrips"' in html
        for text in ("1,500.00", "1,512.50", "125.00", "Win rate", "100.00%", "Max drawdown"):
            assert text in html
        assert 'href="/roundtrips"' in html  # the nav link
    resp = client.get("/roundtrips?days=7")
    assert 'href="/roundtrips.csv?days=7"' in resp.get_data(as_text=True)


def test_round_trips_csv(viewer):
    resp = viewer["client"].get("/roundtrips.csv?days=30")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert "roundtrips-analyze-" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == HEADERS
    assert len(rows) == 2
    row = dict(zip(HEADERS, rows[1], strict=True))
    assert (row["Symbol"], row["Side"], row["Qty"], row["Entry price"], row["Exit price"]) == \
        ("INFY", "long", "10", "1500.0", "1512.5")
    assert (row["Gross P&L"], row["Charges"], row["Net P&L"], row["Exit reason"]) == ("125.0", "0.0", "125.0", "api")


def test_live_mode_says_round_trips_are_analyze_only(viewer):
    venues.set_analyze(viewer["id"], False)
    html = viewer["client"].get("/roundtrips").get_data(as_text=True)
    assert "kept for analyze mode only" in html
    assert 'id="roundtrips"' not in html
    rows = list(csv.reader(io.StringIO(viewer["client"].get("/roundtrips.csv").get_data(as_text=True))))
    assert rows == [HEADERS]
