"""The sample contract built like a real one: chains centred on the simulated price with ATM +/- 20 strikes
all day, and generated again each exchange day (new weeklies), never over a broker's contract."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import config
from database import db
from database.enums import ImportState
from database.symbol import MasterContractStatus, SymToken
from database.types import utcnow
from database.unit import unit_of_work
from services.market import master_contract as mc
from services.market import quotes, sample_contract, symbol_index
from services.runtime import scheduler, startup

IST = ZoneInfo("Asia/Kolkata")
DEFAULT_ROWS = int(next(s.default for s in config.SETTINGS if s.name == "SAMPLE_CONTRACT_ROWS"))
# Wednesday 20 March 2024 to Tuesday 2 April: a weekly expiry (21st), the month's (28th), a weekend, a new month.
DAYS = [dt.date(2024, 3, 20) + dt.timedelta(days=d) for d in range(14)]


def at(day: dt.date, hour: int, minute: int = 0) -> float:
    return dt.datetime.combine(day, dt.time(hour, minute), IST).timestamp()


def chains_of(rows) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], set[float]] = defaultdict(set)
    for r in rows:
        if r["instrument_type"] in ("CE", "PE"):
            out[(r["name"], r["expiry"])].add(float(r["strike"]))
    return {k: sorted(v) for k, v in out.items()}


def atm_index(strikes: list[float], price: float) -> int:
    return min(range(len(strikes)), key=lambda i: (abs(strikes[i] - price), strikes[i]))  # the lower on a tie


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_every_chain_keeps_atm_plus_minus_20_all_day(day):
    sim = quotes.PriceSimulator()
    rows = list(sample_contract.generate(DEFAULT_ROWS, day, spot=lambda name: sim.session_open(name, day)))
    assert len(rows) == DEFAULT_ROWS
    assert sample_contract.minimum_rows(day, lambda name: sim.session_open(name, day)) <= DEFAULT_ROWS
    chains = chains_of(rows)
    names = {n for n, _ in chains}
    stocks = {s for s, _, _, lot in sample_contract.STOCKS if lot}
    assert names == stocks | {n for n, *_ in sample_contract.INDEX_DERIVATIVES}  # every chain is there
    for (name, expiry), strikes in chains.items():
        base = quotes.base_price(name)
        # the open, midday, the close, and the day's extremes (so every moment in between)
        ltp, open_, high, low, _, _ = sim.spot(name, base, at=at(day, 15, 30))
        prices = [open_, sim.spot(name, base, at=at(day, 12, 30))[0], ltp, high, low]
        for price in prices:
            i = atm_index(strikes, round(price, 2))
            assert 20 <= i <= len(strikes) - 21, (day, name, expiry, price, strikes[0], strikes[-1])
        assert strikes[0] > 0


def test_chains_are_centred_on_the_simulated_price_not_the_base():
    day = DAYS[0]
    sim = quotes.PriceSimulator()
    rows = list(sample_contract.generate(DEFAULT_ROWS, day, spot=lambda name: sim.session_open(name, day)))
    nifty = chains_of(rows)[("NIFTY", "2024-03-21")]
    centre = sim.session_open("NIFTY", day)
    assert abs(centre - 22000) > 500  # the walk is far enough from its base for this test to tell
    assert abs((nifty[0] + nifty[-1]) / 2 - centre) <= 50
    uncentred = chains_of(sample_contract.generate(DEFAULT_ROWS, day))[("NIFTY", "2024-03-21")]
    assert abs((uncentred[0] + uncentred[-1]) / 2 - 22000) <= 50


def test_weeklies_roll_and_stocks_list_the_near_month():
    sim = quotes.PriceSimulator()

    def expiries(day, name):
        rows = sample_contract.generate(DEFAULT_ROWS, day, spot=lambda n: sim.session_open(n, day))
        return sorted({e for n, e in chains_of(rows) if n == name})

    thursday, friday = dt.date(2024, 3, 21), dt.date(2024, 3, 22)
    on_expiry, after = expiries(thursday, "NIFTY"), expiries(friday, "NIFTY")
    assert on_expiry[0] == "2024-03-21"  # listed through its expiry day
    assert "2024-03-21" not in after
    assert "2024-05-02" in after  # the new sixth weekly
    assert "2024-05-02" not in on_expiry
    assert expiries(friday, "RELIANCE") == ["2024-03-28"]  # the near month only, at this size
    assert len(expiries(friday, "BANKNIFTY")) == 3  # index monthlies: three


def test_cheap_stocks_step_finely_enough():
    chains = chains_of(sample_contract.generate(DEFAULT_ROWS, DAYS[0]))

    def step(name):
        strikes = next(v for (n, _), v in chains.items() if n == name)
        return round(strikes[1] - strikes[0], 4)

    assert step("IDEA") == 0.25  # at 13: 20 strikes and the day's margin stay above zero
    assert step("RELIANCE") == 50.0  # the usual steps elsewhere
    assert step("MARUTI") == 100.0


def test_generation_is_deterministic_and_sizes_are_met():
    day, sim = DAYS[2], quotes.PriceSimulator()
    spot = lambda name: sim.session_open(name, day)  # noqa: E731
    rows = list(sample_contract.generate(20_000, day, spot))
    assert rows == list(sample_contract.generate(20_000, day, spot))
    assert len(rows) == 20_000
    assert len(list(sample_contract.generate(300, day, spot))) == 300
    smallest = list(sample_contract.generate(None, day, spot))
    assert len(smallest) == sample_contract.minimum_rows(day, spot) < DEFAULT_ROWS
    # more rows buy a second and a third stock expiry before wider chains
    big = chains_of(sample_contract.generate(40_000, day, spot))
    assert sorted(e for n, e in big if n == "RELIANCE") == ["2024-03-28", "2024-04-25", "2024-05-30"]


def derivative_keys(rows) -> set[tuple[str, str]]:
    return {(r["exchange"], r["tradingsymbol"]) for r in rows if r["instrument_type"] in ("FUT", "CE", "PE")}


def test_each_day_keeps_every_unexpired_contract_as_it_was_and_grows_only_by_cores():
    sim = quotes.PriceSimulator()
    previous: list[dict[str, str]] = []
    for day in DAYS:
        spot = lambda name, day=day: sim.session_open(name, day)  # noqa: E731
        rows = list(sample_contract.generate(DEFAULT_ROWS, day, spot, keep=previous))
        listed = {(r["exchange"], r["tradingsymbol"]): r for r in rows}
        assert len(listed) == len(rows)
        assert len({(r["exchange"], r["instrument_token"]) for r in rows}) == len(rows)  # a token: one instrument
        kept = {(r["exchange"], r["tradingsymbol"]): r for r in previous
                if r["instrument_type"] in ("FUT", "CE", "PE") and r["expiry"] >= day.isoformat()}
        assert {k: listed.get(k) for k in kept} == kept  # unchanged: tokens, lot, tick, freeze
        assert all(r["expiry"] >= day.isoformat() for r in rows if r["expiry"])  # the expired ones went
        cores = {(r["exchange"], r["tradingsymbol"]) for r in sample_contract.generate(None, day, spot)}
        assert cores <= listed.keys()  # ATM +/- 20 all day, as without kept strikes
        if len(rows) > DEFAULT_ROWS:  # over the size only by what must be listed: no wider new strike
            assert listed.keys() - kept.keys() <= cores
        assert len(rows) < DEFAULT_ROWS * 1.1  # a little (the worst in three simulated years: 13%)
        previous = rows
    assert len(previous) > DEFAULT_ROWS  # the chains moved and kept strikes the new centres do not need


def test_a_kept_token_is_never_given_to_a_new_row_and_a_kept_row_wins():
    day, sim = DAYS[1], quotes.PriceSimulator()
    spot = lambda name: sim.session_open(name, day)  # noqa: E731
    fresh = list(sample_contract.generate(DEFAULT_ROWS, day, spot))
    option = next(r for r in fresh if r["instrument_type"] == "CE")
    future = next(r for r in fresh if r["instrument_type"] == "FUT" and r["exchange"] == "NFO")
    strike_only = {**option, "tradingsymbol": "NIFTY24APR99000CE", "strike": "99000", "expiry": "2024-04-25"}
    keep = [
        strike_only,  # a strike listed before, far from today's chain, holding the token today's first option gets
        {**future, "instrument_token": "99999994", "exchange_token": "390624", "lot_size": "50"},  # its own lot
        {**option, "tradingsymbol": "NIFTY24MAR20000CE", "expiry": "2024-03-20", "instrument_token": "1"},  # expired
    ]
    rows = list(sample_contract.generate(DEFAULT_ROWS, day, spot, keep=keep))
    by_symbol = {(r["exchange"], r["tradingsymbol"]): r for r in rows}
    assert by_symbol[("NFO", "NIFTY24APR99000CE")] == strike_only
    assert by_symbol[("NFO", option["tradingsymbol"])]["instrument_token"] != option["instrument_token"]
    assert by_symbol[("NFO", future["tradingsymbol"])] == keep[1]
    assert ("NFO", "NIFTY24MAR20000CE") not in by_symbol
    assert len({(r["exchange"], r["instrument_token"]) for r in rows}) == len(rows)
    assert len(rows) == DEFAULT_ROWS  # kept rows count in the size: the chains widen a strike less
    assert list(sample_contract.generate(DEFAULT_ROWS, day, spot, keep=[])) == fresh
    # a contract cut short (rows below the cores) lists its first rows and the kept ones on top
    assert len(list(sample_contract.generate(3000, day, spot, keep=keep))) == 3000 + 1


# -- the daily regeneration ---------------------------------------------------------------------


def moment(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), IST).astimezone(dt.UTC)


def status(broker: str = "sample") -> MasterContractStatus:
    db.session.rollback()
    return db.session.execute(select(MasterContractStatus).where(MasterContractStatus.broker == broker)).scalar_one()


def weeklies() -> set[str]:
    db.session.rollback()
    return {str(e) for e in db.session.scalars(select(SymToken.expiry).where(SymToken.name == "NIFTY",
                                                                            SymToken.instrumenttype == "CE"))}


def test_the_sample_is_generated_again_on_a_new_exchange_day(app):
    thursday, friday = dt.date(2024, 3, 21), dt.date(2024, 3, 22)
    assert mc.ensure_sample_contract(rows=3000, now=moment(thursday, 10)) is not None
    assert status().source.endswith("2024-03-21")
    assert "2024-03-21" in weeklies()
    assert mc.refresh_sample_contract(now=moment(thursday, 23)) is None  # the same exchange day
    # 02:00 IST on Friday is still Thursday in UTC: the exchange's date decides
    result = mc.refresh_sample_contract(now=moment(friday, 2))
    assert result is not None
    assert result.rows_mapped >= 3000  # the size it had, and the unexpired strikes it listed (below)
    assert status().source == "embedded sample contract (size 3000) of 2024-03-22"
    assert "2024-03-21" not in weeklies()
    assert "2024-05-02" in weeklies()
    assert mc.refresh_sample_contract(now=moment(friday, 9)) is None  # once a day, whoever runs it
    new = db.session.scalars(select(SymToken.symbol).where(SymToken.expiry == dt.date(2024, 5, 2))).first()
    assert symbol_index.get_symbol_info(new, "NFO") is not None  # this process's index has the new contract


def test_a_brokers_contract_is_never_replaced(app):
    day = dt.date(2024, 3, 21)
    mc.ensure_sample_contract(rows=1000, now=moment(day, 10))
    rows = list(sample_contract.generate(1000, today=day))
    rows.append({**rows[30], "tradingsymbol": "MARKERCO", "name": "MARKER", "instrument_token": "99999901"})
    mc.import_rows(rows, broker="zerodha")
    assert mc.refresh_sample_contract(now=moment(day + dt.timedelta(days=3), 10)) is None
    assert symbol_index.get_symbol_info("MARKERCO", "NSE") is not None


def test_no_refresh_while_an_import_runs(app):
    day = dt.date(2024, 3, 21)
    mc.ensure_sample_contract(rows=1000, now=moment(day, 10))
    with unit_of_work() as session:
        session.add(MasterContractStatus(broker="zerodha", state=ImportState.RUNNING, source="broker",
                                         started_at=utcnow()))
    assert mc.refresh_sample_contract(now=moment(day + dt.timedelta(days=1), 10)) is None
    assert status().source.endswith("2024-03-21")


def test_the_scheduler_and_start_up_run_the_refresh(app):
    day = dt.date(2024, 3, 21)
    mc.ensure_sample_contract(rows=1000, now=moment(day, 10))
    scheduler.run_once(app, since=moment(day, 23), until=moment(day + dt.timedelta(days=1), 1))
    assert status().source.endswith("2024-03-22")
    # a restart on a later day (the real one, here) makes it again before the index is built
    startup.run_deferred(app)
    today = dt.datetime.now(quotes.simulator().tz).date()
    assert status().source.endswith(today.isoformat())
    assert status().state == ImportState.DONE
