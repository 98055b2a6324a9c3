"""Option look-ups on the master contract (services.market.options): request formats, expiries, chains, the
underlying that sets ATM, ATM / ITMn / OTMn resolution and labels, and the option book's cache per contract."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from database import db
from database.symbol import SymToken
from services.market import options as mo
from services.market import symbol_index

D = Decimal
PAST, WEEK, MONTH = dt.date(2029, 12, 27), dt.date(2030, 1, 3), dt.date(2030, 1, 31)
TODAY = dt.date(2030, 1, 1)
MCX_OPT, CRUDE_JAN, CRUDE_FEB = dt.date(2030, 1, 14), dt.date(2030, 1, 17), dt.date(2030, 2, 18)


def _rows() -> list[tuple]:
    """(symbol, exchange, name, itype, expiry, strike, lot): a small contract with every case below."""
    rows = [("NIFTY", "NSE_INDEX", "NIFTY 50", "INDEX", None, None, 1),
            ("SENSEX", "BSE_INDEX", "SENSEX", "INDEX", None, None, 1),
            ("RELIANCE", "NSE", "RELIANCE INDUSTRIES", "EQ", None, None, 1),
            ("NIFTY27DEC29FUT", "NFO", "NIFTY", "FUT", PAST, None, 75),
            ("NIFTY31JAN30FUT", "NFO", "NIFTY", "FUT", MONTH, None, 75),
            ("CRUDEOIL17JAN30FUT", "MCX", "CRUDEOIL", "FUT", CRUDE_JAN, None, 100),
            ("CRUDEOIL18FEB30FUT", "MCX", "CRUDEOIL", "FUT", CRUDE_FEB, None, 100)]

    def chain(name, exchange, expiry, strikes, lot, kinds=("CE", "PE")):
        code = mo.expiry_code(expiry)
        for k in strikes:
            for kind in kinds:
                rows.append((f"{name}{code}{k}{kind}", exchange, name, kind, expiry, D(k), lot))

    chain("NIFTY", "NFO", PAST, range(21800, 22201, 50), 75)
    chain("NIFTY", "NFO", WEEK, range(21800, 22201, 50), 75)
    chain("NIFTY", "NFO", WEEK, [22250], 75, kinds=("CE",))  # a call with no put at its strike
    chain("NIFTY", "NFO", MONTH, range(21500, 22501, 100), 75)
    chain("RELIANCE", "NFO", MONTH, range(2800, 3001, 20), 250)
    chain("SENSEX", "BFO", WEEK, range(72500, 73501, 100), 10)
    chain("CRUDEOIL", "MCX", MCX_OPT, range(6700, 6901, 50), 100)
    return rows


def load(rows: list[tuple]) -> None:
    for n, (sym, ex, name, itype, expiry, strike, lot) in enumerate(rows):
        brex = {"NSE_INDEX": "NSE", "BSE_INDEX": "BSE"}.get(ex, ex)
        db.session.add(SymToken(symbol=sym, brsymbol=sym, name=name, exchange=ex, brexchange=brex,
                                token=str(1000 + n), expiry=expiry, strike=strike, lotsize=lot, instrumenttype=itype,
                                tick_size=D("0.05")))
    db.session.commit()
    symbol_index.reload()


@pytest.fixture
def contract(app):
    load(_rows())
    yield
    db.session.rollback()


# -- formats (no database) ----------------------------------------------------------------------------------
def test_expiries_are_read_as_ddmmmyy():
    assert mo.parse_expiry("28NOV24") == dt.date(2024, 11, 28)
    assert mo.parse_expiry(" 28nov24 ") == dt.date(2024, 11, 28)
    assert mo.parse_expiry("28-NOV-24") == dt.date(2024, 11, 28)  # the expiry endpoint's own form
    for bad in ("2024-11-28", "28NOV2024", "28NOVE24", "NOV24", ""):
        with pytest.raises(ValueError, match="DDMMMYY"):
            mo.parse_expiry(bad)
    with pytest.raises(ValueError, match="31FEB24 is not a date"):
        mo.parse_expiry("31FEB24")
    assert (mo.expiry_code(dt.date(2024, 11, 8)), mo.expiry_label(dt.date(2024, 11, 8))) == ("08NOV24", "08-NOV-24")


def test_an_underlying_may_name_its_expiry():
    assert mo.split_underlying("NIFTY28NOV24FUT") == ("NIFTY", dt.date(2024, 11, 28))
    assert mo.split_underlying("nifty") == ("NIFTY", None)
    assert mo.split_underlying("M&M30JAN25FUT") == ("M&M", dt.date(2025, 1, 30))
    assert mo.split_underlying("NIFTY31FEB24FUT") == ("NIFTY31FEB24FUT", None)  # no such day: not an expiry


def test_offsets():
    assert [mo.parse_offset(o) for o in ("ATM", "itm1", "OTM50", "ITM12")] == [0, -1, 50, -12]
    for bad in ("ATM0", "ITM0", "OTM51", "ITM", "OTM-1", "OTM 2", "XTM1", ""):
        with pytest.raises(ValueError, match="ATM, ITM1 to ITM50 or OTM1 to OTM50"):
            mo.parse_offset(bad)
    # ITM is below ATM for a call and above it for a put; OTM the other way round.
    assert (mo.strike_step(-2, "CE"), mo.strike_step(-2, "PE"), mo.strike_step(3, "CE"), mo.strike_step(3, "PE")) == \
        (-2, 2, 3, -3)


def test_option_exchange():
    assert [mo.option_exchange(e) for e in ("NSE", "nse_index", "BSE", "BSE_INDEX", "NFO", "MCX", "CDS")] == \
        ["NFO", "NFO", "BFO", "BFO", "NFO", "MCX", "CDS"]


# -- the contract ---------------------------------------------------------------------------------------
def test_expiries_from_today_on_nearest_first(contract):
    assert mo.expiries("NIFTY", "NFO", "options", TODAY) == [WEEK, MONTH]
    assert mo.expiries("NIFTY", "NFO", "futures", TODAY) == [MONTH]
    assert mo.expiries("NIFTY", "NFO", "options", PAST) == [PAST, WEEK, MONTH]  # the expiry day itself counts
    assert mo.expiries("CRUDEOIL", "MCX", "futures", TODAY) == [CRUDE_JAN, CRUDE_FEB]
    assert mo.expiries("nifty", "nfo", "options", TODAY) == [WEEK, MONTH]
    assert mo.expiries("NIFTY", "BFO", "options", TODAY) == []
    assert mo.expiries("NOSUCH", "NFO", "options", TODAY) == []
    assert mo.underlyings("NFO") == ["NIFTY", "RELIANCE"]


def test_a_chain_lists_every_strike_with_its_legs(contract):
    chain = mo.chain("NIFTY", "NFO", WEEK)
    assert chain.strikes == tuple(D(k) for k in range(21800, 22251, 50))
    assert chain.leg(D(22250), "CE").symbol == "NIFTY03JAN3022250CE"
    assert chain.leg(D(22250), "PE") is None
    assert chain.leg(D(22000), "pe").symbol == "NIFTY03JAN3022000PE"
    assert mo.chain("NIFTY", "NFO", dt.date(2030, 1, 10)) is None


def test_the_underlying_that_sets_atm(contract):
    assert mo.underlying_instrument("NIFTY", "NFO", TODAY).exchange == "NSE_INDEX"  # the index, not the stock
    assert mo.underlying_instrument("SENSEX", "BFO", TODAY).exchange == "BSE_INDEX"
    assert (mo.underlying_instrument("RELIANCE", "NFO", TODAY).symbol,
            mo.underlying_instrument("RELIANCE", "NFO", TODAY).exchange) == ("RELIANCE", "NSE")
    assert mo.underlying_instrument("NIFTY", "NSE_INDEX", TODAY).symbol == "NIFTY"
    assert mo.underlying_instrument("RELIANCE", "NSE_INDEX", TODAY) is None  # asked on an index exchange
    # MCX lists no spot: the nearest future still to expire.
    assert mo.underlying_instrument("CRUDEOIL", "MCX", TODAY).symbol == "CRUDEOIL17JAN30FUT"
    assert mo.underlying_instrument("CRUDEOIL", "MCX", dt.date(2030, 1, 18)).symbol == "CRUDEOIL18FEB30FUT"
    assert mo.underlying_instrument("CRUDEOIL", "MCX", dt.date(2030, 3, 1)) is None


@pytest.mark.parametrize(("ltp", "offset", "kind", "strike"), [
    ("22010", "ATM", "CE", 22000), ("22010", "ATM", "PE", 22000),
    ("22025", "ATM", "CE", 22000),  # a tie: the lower strike
    ("22025.05", "ATM", "CE", 22050),
    ("22010", "ITM2", "CE", 21900), ("22010", "ITM2", "PE", 22100),
    ("22010", "OTM1", "CE", 22050), ("22010", "OTM1", "PE", 21950),
    ("22010", "OTM5", "CE", 22250), ("22010", "ITM4", "PE", 22200),
    ("10", "ATM", "PE", 21800), ("99999", "ATM", "CE", 22250),  # far outside: the nearest listed strike
])
def test_offsets_count_listed_strikes_from_atm(contract, ltp, offset, kind, strike):
    info = mo.resolve(mo.chain("NIFTY", "NFO", WEEK), D(ltp), mo.parse_offset(offset), kind)
    assert (info.strike, info.instrumenttype) == (D(strike), kind)


def test_beyond_the_listed_strikes_is_400_and_a_missing_leg_404(contract):
    chain = mo.chain("NIFTY", "NFO", WEEK)
    with pytest.raises(mo.OptionLookupError) as beyond:
        mo.resolve(chain, D(22010), 6, "CE")
    assert beyond.value.status == 400
    assert beyond.value.message == ("OTM6 CE is beyond the listed strikes of NIFTY 03JAN30 on NFO (ATM 22000; "
                                    "listed 21800 to 22250)")
    with pytest.raises(mo.OptionLookupError) as missing:  # 22250 is listed as a call only
        mo.resolve(chain, D(22010), -5, "PE")
    assert missing.value.status == 404
    assert missing.value.message == "Symbol NIFTY03JAN3022250PE not found in exchange NFO"


def test_strike_int_steps_from_the_rounded_price(contract):
    chain = mo.chain("NIFTY", "NFO", MONTH)  # listed every 100
    assert mo.resolve(chain, D(22040), 0, "CE", D(100)).strike == D(22000)
    assert mo.resolve(chain, D(22040), 2, "CE", D(100)).strike == D(22200)
    assert mo.resolve(chain, D(22040), -2, "PE", D(100)).strike == D(22200)  # ITM2 put: above ATM
    with pytest.raises(mo.OptionLookupError) as off_grid:  # 22050 is in range but not listed
        mo.resolve(chain, D(22040), 0, "CE", D(50))
    assert off_grid.value.status == 404
    with pytest.raises(mo.OptionLookupError) as beyond:
        mo.resolve(chain, D(22040), 6, "CE", D(100))
    assert beyond.value.status == 400


def test_labels_around_atm(contract):
    chain = mo.chain("NIFTY", "NFO", WEEK)
    atm = chain.atm_index(D(22010))
    assert chain.labels(atm, 2) == [(D(21900), "ITM2", "OTM2"), (D(21950), "ITM1", "OTM1"), (D(22000), "ATM", "ATM"),
                                    (D(22050), "OTM1", "ITM1"), (D(22100), "OTM2", "ITM2")]
    assert len(chain.labels(atm)) == len(chain.strikes)
    edge = chain.labels(chain.atm_index(D(21800)), 3)  # cut at the lowest strike
    assert [s for s, _, _ in edge] == [D(21800), D(21850), D(21900), D(21950)]


def test_the_book_is_built_once_per_contract(contract):
    first = mo.chain("NIFTY", "NFO", WEEK)
    assert mo.chain("NIFTY", "NFO", WEEK) is first  # the same snapshot: the same book
    load([("NIFTY03JAN3022300CE", "NFO", "NIFTY", "CE", WEEK, D(22300), 75)])  # a new contract generation
    again = mo.chain("NIFTY", "NFO", WEEK)
    assert again is not first
    assert again.strikes[-1] == D(22300)
