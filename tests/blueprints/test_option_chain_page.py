"""/options/chain: the expiry picker, strikes around ATM with last price, OI, IV and delta of each call and put,
ATM highlighted; for every signed-in role, through the user's venue, and never a 500 when the venue cannot
answer."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from blueprints import options as options_page
from database import db
from database.symbol import SymToken
from services.market import black76, symbol_index
from services.market import options as mo
from services.trading import options as trading_options
from services.trading import venues
from tests.helpers.accounts import client_for, one_user_per_role
from tests.helpers.orders import set_quote

TODAY = dt.datetime.now(black76.IST).date()
NOW = dt.datetime.combine(TODAY, dt.time(10, 0), black76.IST)
WEEK, MONTH = TODAY + dt.timedelta(days=7), TODAY + dt.timedelta(days=35)
SPOT, SIGMA = 22010.0, 0.15
_ROW = re.compile(r'<tr data-strike="([\d.]+)"( class="atm")?.*?</tr>', re.S)


def _price(kind: str, strike: int, expiry: dt.date) -> Decimal:
    years = black76.years_to_expiry(NOW, "NFO", expiry)
    return Decimal(str(round(black76.price(kind, SPOT, strike, years, SIGMA), 2)))


@pytest.fixture
def chain(app, monkeypatch):
    monkeypatch.setattr(trading_options, "utcnow", lambda: NOW)
    monkeypatch.setattr(options_page, "utcnow", lambda: NOW)
    rows = [("NIFTY", "NIFTY 50", "NSE_INDEX", "NSE", "NIFTY 50", "INDEX", None, None, 1)]
    for expiry, strikes in ((WEEK, range(21500, 22501, 50)), (MONTH, range(21000, 23001, 100))):
        for k in strikes:
            for kind in ("CE", "PE"):
                sym = f"NIFTY{mo.expiry_code(expiry)}{k}{kind}"
                rows.append((sym, sym, "NFO", "NFO", "NIFTY", kind, expiry, Decimal(k), 75))
    for n, (sym, brs, ex, brex, name, itype, expiry, strike, lot) in enumerate(rows):
        db.session.add(SymToken(symbol=sym, brsymbol=brs, name=name, exchange=ex, brexchange=brex, token=str(700 + n),
                                expiry=expiry, strike=strike, lotsize=lot, instrumenttype=itype,
                                tick_size=Decimal("0.05")))
    db.session.commit()
    symbol_index.reload()
    set_quote("NIFTY", SPOT, exchange="NSE_INDEX")
    for expiry, strikes in ((WEEK, range(21500, 22501, 50)), (MONTH, range(21000, 23001, 100))):
        for k in strikes:
            for kind in ("CE", "PE"):
                set_quote(f"NIFTY{mo.expiry_code(expiry)}{k}{kind}", _price(kind, k, expiry), exchange="NFO")
    return one_user_per_role()


def rows(html: str) -> list[tuple[float, bool, str]]:
    return [(float(m[1]), bool(m[2]), m[0]) for m in _ROW.finditer(html)]


@pytest.mark.parametrize("role", ["admin", "trader", "viewer"])
def test_the_nearest_expiry_around_atm_for_every_role(app, chain, role):
    resp = client_for(app, f"{role}1").get("/options/chain")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert f'<option value="{mo.expiry_code(WEEK)}" selected>{mo.expiry_label(WEEK)}</option>' in html
    assert f'<option value="{mo.expiry_code(MONTH)}" >{mo.expiry_label(MONTH)}</option>' in html
    found = rows(html)
    assert [s for s, _, _ in found] == [21500.0 + 50 * i for i in range(21)]  # 10 strikes each side of 22000
    assert [s for s, atm, _ in found if atm] == [22000.0]  # ATM, and only it, highlighted
    atm_row = next(text for _s, atm, text in found if atm)
    years = black76.years_to_expiry(NOW, "NFO", WEEK)
    ce = float(_price("CE", 22000, WEEK))
    forward = 22000 + ce - float(_price("PE", 22000, WEEK))
    sigma = black76.implied_vol("CE", ce, forward, 22000, years)
    delta = black76.greeks("CE", forward, 22000, years, sigma).delta
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", atm_row)
    oi, iv, d, ltp, strike = cells[:5]
    assert (strike, ltp) == ("22,000.00", f"{ce:,.2f}")
    assert iv == f"{round(sigma * 100, 2):.2f}"
    assert abs(float(iv) - SIGMA * 100) < 0.2
    assert d == f"{round(delta, 4):.3f}"
    assert int(oi.replace(",", "")) >= 0
    assert "/static/js/option_chain.js" in html
    assert 'id="atm-strike">22,000.00<' in html


def test_picking_an_expiry_and_a_width(app, chain):
    html = client_for(app, "trader1").get(f"/options/chain?exchange=NFO&underlying=nifty&expiry={mo.expiry_code(MONTH)}"
                                          "&strikes=5").get_data(as_text=True)
    assert [s for s, _, _ in rows(html)] == [21500.0 + 100 * i for i in range(11)]
    assert f'<option value="{mo.expiry_code(MONTH)}" selected>' in html
    # An expiry that is not listed, or an odd width, falls back to the nearest expiry and 10 strikes.
    html = client_for(app, "trader1").get("/options/chain?expiry=01JAN99&strikes=7&underlying=NOSUCH").get_data(
        as_text=True)
    assert len(rows(html)) == 21
    assert f'<option value="{mo.expiry_code(WEEK)}" selected>' in html


def test_a_venue_that_cannot_answer_is_shown_not_raised(app, chain):
    client = client_for(app, "trader1")
    venues.set_analyze(chain["trader"].id, False)
    db.session.commit()
    resp = client.get("/options/chain")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "No live broker session: connect your broker or switch to analyze mode" in html
    assert rows(html) == []


def test_an_exchange_without_options(app, chain):
    html = client_for(app, "viewer1").get("/options/chain?exchange=MCX").get_data(as_text=True)
    assert "No options are listed on MCX" in html
    assert rows(html) == []


def test_signed_out_visitors_go_to_sign_in(app, chain):
    resp = app.test_client().get("/options/chain")
    assert resp.status_code in (302, 303)
    assert "/auth/login" in resp.headers["Location"]
