"""Mapping of Zerodha instrument rows to OpenAlgo symbols, the sample generator, and search ranking.

Pure unit tests: no database.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.market import master_contract as mc
from services.market import sample_contract
from services.market.symbol_index import SymbolInfo, build_index


def zrow(**kw):
    row = {
        "instrument_token": "408065",
        "exchange_token": "1594",
        "tradingsymbol": "INFY",
        "name": "INFOSYS",
        "last_price": "0",
        "expiry": "",
        "strike": "0",
        "tick_size": "0.05",
        "lot_size": "1",
        "instrument_type": "EQ",
        "segment": "NSE",
        "exchange": "NSE",
    }
    row.update(kw)
    return row


def test_equity():
    r = mc.map_zerodha_row(zrow())
    assert r == ("INFY", "INFY", "INFOSYS", "NSE", "NSE", "408065", None, None, 1, "EQ", Decimal("0.05"), None)


def test_equity_series_suffix_is_dropped_from_our_symbol_only():
    r = mc.map_zerodha_row(zrow(tradingsymbol="XYZ-BE", exchange="NSE"))
    assert (r[0], r[1]) == ("XYZ", "XYZ-BE")


def test_bse_equity():
    r = mc.map_zerodha_row(zrow(tradingsymbol="TATAMOTORS", segment="BSE", exchange="BSE", instrument_token="128"))
    assert (r[0], r[3], r[4]) == ("TATAMOTORS", "BSE", "BSE")


@pytest.mark.parametrize(
    ("tradingsymbol", "exchange", "symbol", "oa_exchange"),
    [
        ("NIFTY 50", "NSE", "NIFTY", "NSE_INDEX"),
        ("NIFTY BANK", "NSE", "BANKNIFTY", "NSE_INDEX"),
        ("NIFTY FIN SERVICE", "NSE", "FINNIFTY", "NSE_INDEX"),
        ("NIFTY MID SELECT", "NSE", "MIDCPNIFTY", "NSE_INDEX"),
        ("INDIA VIX", "NSE", "INDIAVIX", "NSE_INDEX"),
        ("NIFTY IT", "NSE", "NIFTYIT", "NSE_INDEX"),
        ("SENSEX", "BSE", "SENSEX", "BSE_INDEX"),
        ("BANKEX", "BSE", "BANKEX", "BSE_INDEX"),
    ],
)
def test_index(tradingsymbol, exchange, symbol, oa_exchange):
    r = mc.map_zerodha_row(zrow(tradingsymbol=tradingsymbol, name=tradingsymbol, segment="INDICES", exchange=exchange,
                                tick_size="0", lot_size="0"))
    assert (r[0], r[1], r[3], r[4], r[9]) == (symbol, tradingsymbol, oa_exchange, exchange, "INDEX")
    # zero lot/tick in the CSV become sane defaults
    assert r[8] == 1
    assert r[10] == Decimal("0.05")


def test_future():
    r = mc.map_zerodha_row(zrow(tradingsymbol="BANKNIFTY24APRFUT", name="BANKNIFTY", expiry="2024-04-24",
                                instrument_type="FUT", segment="NFO-FUT", exchange="NFO", lot_size="15"))
    assert r[0] == "BANKNIFTY24APR24FUT"
    assert (r[1], r[3], r[6], r[7], r[8], r[9]) == ("BANKNIFTY24APRFUT", "NFO", dt.date(2024, 4, 24), None, 15, "FUT")


def test_mcx_and_cds_futures():
    mcx = mc.map_zerodha_row(zrow(tradingsymbol="CRUDEOILM24MAYFUT", name="CRUDEOILM", expiry="2024-05-20",
                                  instrument_type="FUT", segment="MCX-FUT", exchange="MCX", tick_size="1"))
    assert (mcx[0], mcx[3], mcx[10]) == ("CRUDEOILM20MAY24FUT", "MCX", Decimal("1"))
    cds = mc.map_zerodha_row(zrow(tradingsymbol="USDINR24MAYFUT", name="USDINR", expiry="2024-05-10",
                                  instrument_type="FUT", segment="CDS-FUT", exchange="CDS", tick_size="0.0025"))
    assert (cds[0], cds[3]) == ("USDINR10MAY24FUT", "CDS")


@pytest.mark.parametrize(
    ("tradingsymbol", "name", "expiry", "strike", "kind", "symbol"),
    [
        ("NIFTY2432820800CE", "NIFTY", "2024-03-28", "20800.0", "CE", "NIFTY28MAR2420800CE"),  # weekly format
        ("NIFTY24MAR20800PE", "NIFTY", "2024-03-28", "20800", "PE", "NIFTY28MAR2420800PE"),  # monthly format
        ("VEDL24APR292.5CE", "VEDL", "2024-04-25", "292.5", "CE", "VEDL25APR24292.5CE"),
        ("USDINR24MAY83.25CE", "USDINR", "2024-05-24", "83.25", "CE", "USDINR24MAY2483.25CE"),
    ],
)
def test_options(tradingsymbol, name, expiry, strike, kind, symbol):
    r = mc.map_zerodha_row(zrow(tradingsymbol=tradingsymbol, name=name, expiry=expiry, strike=strike,
                                instrument_type=kind, segment="NFO-OPT", exchange="NFO"))
    assert r[0] == symbol
    assert r[1] == tradingsymbol
    assert r[9] == kind
    assert r[7] == Decimal(strike)


def test_bfo_option():
    r = mc.map_zerodha_row(zrow(tradingsymbol="SENSEX2441273000CE", name="SENSEX", expiry="2024-04-12",
                                strike="73000", instrument_type="CE", segment="BFO-OPT", exchange="BFO"))
    assert (r[0], r[3], r[4]) == ("SENSEX12APR2473000CE", "BFO", "BFO")


def test_adapter_rows_with_python_types_map_too():
    # kiteconnect's instruments() yields ints, floats and dates rather than CSV strings.
    r = mc.map_zerodha_row(zrow(instrument_token=12345, tradingsymbol="NIFTY24MAR22000CE", name="NIFTY",
                                expiry=dt.date(2024, 3, 28), strike=22000.0, lot_size=25, tick_size=0.05,
                                instrument_type="CE", segment="NFO-OPT", exchange="NFO"))
    assert (r[0], r[5], r[8]) == ("NIFTY28MAR2422000CE", "12345", 25)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (zrow(exchange="NSEIX", segment="NSEIX"), "unknown exchange NSEIX"),
        (zrow(instrument_type="XX"), "unknown instrument_type XX"),
        (zrow(instrument_type="FUT", segment="NFO-FUT", exchange="NFO"), "derivative without expiry"),
        (zrow(instrument_type="CE", segment="NFO-OPT", exchange="NFO", expiry="2024-03-28", strike="0"),
         "option without strike"),
        (zrow(instrument_type="FUT", exchange="NFO", expiry="28/03/2024"), "bad expiry"),
        (zrow(tradingsymbol=""), "missing tradingsymbol or token"),
        (zrow(tick_size="abc"), "bad tick_size"),
        (zrow(freeze_qty="many"), "bad freeze_qty"),
    ],
)
def test_unmappable_rows_are_skipped_with_a_reason(row, reason):
    with pytest.raises(mc.Skip, match=reason):
        mc.map_zerodha_row(row)


def test_map_rows_counts_skips_and_duplicates():
    rows = [zrow(), zrow(instrument_token="2"), zrow(exchange="XXX"), zrow(tradingsymbol="TCS", instrument_token="3")]
    mapped, skipped, read = mc.map_rows(rows)
    assert read == 4
    assert [m[0] for m in mapped] == ["INFY", "TCS"]
    assert skipped == {"duplicate symbol": 1, "unknown exchange XXX": 1}


def test_strike_and_expiry_formats():
    assert mc.format_strike(Decimal("20800.0")) == "20800"
    assert mc.format_strike(Decimal("292.50")) == "292.5"
    assert mc.format_strike(Decimal("83.2500")) == "83.25"
    assert mc.format_expiry(dt.date(2024, 3, 8)) == "08MAR24"


def test_sample_generator_is_deterministic_complete_and_maps_fully():
    today = dt.date(2024, 3, 20)
    rows = list(sample_contract.generate(5000, today=today))
    assert rows == list(sample_contract.generate(5000, today=today))
    assert len(rows) == 5000
    mapped, skipped, _ = mc.map_rows(rows)
    assert not skipped
    assert len(mapped) == 5000
    kinds = {(m[3], m[9]) for m in mapped}
    for kind in [("NSE", "EQ"), ("BSE", "EQ"), ("NSE_INDEX", "INDEX"), ("BSE_INDEX", "INDEX"), ("NFO", "FUT"),
                 ("NFO", "CE"), ("NFO", "PE"), ("BFO", "CE"), ("MCX", "FUT"), ("CDS", "FUT")]:
        assert kind in kinds
    symbols = {m[0] for m in mapped}
    assert {"NIFTY", "BANKNIFTY", "SENSEX", "RELIANCE", "NIFTY28MAR24FUT"} <= symbols
    # weekly NIFTY expiries exist besides the monthly ones
    assert any(m[0].startswith("NIFTY21MAR24") for m in mapped)


def test_a_kite_row_has_no_freeze_quantity_and_a_row_that_carries_one_keeps_it():
    # Kite's instruments file has no freeze quantity: not known (NULL), so not checked.
    assert mc.map_zerodha_row(zrow())[11] is None
    assert mc.map_zerodha_row(zrow(freeze_qty=""))[11] is None
    assert mc.map_zerodha_row(zrow(freeze_qty="0"))[11] is None
    assert mc.map_zerodha_row(zrow(freeze_qty="1800"))[11] == 1800


def test_sample_contract_carries_freeze_quantities():
    mapped, skipped, _ = mc.map_rows(sample_contract.generate(20_000, today=dt.date(2024, 3, 20)))
    assert not skipped
    by_symbol = {(m[3], m[0]): m for m in mapped}
    # NSE's published limits for the index derivatives, futures and options alike
    assert by_symbol[("NFO", "NIFTY28MAR24FUT")][11] == 1800
    assert by_symbol[("NFO", "NIFTY28MAR2422000CE")][11] == 1800
    assert by_symbol[("NFO", "BANKNIFTY28MAR24FUT")][11] == 900
    assert by_symbol[("NFO", "FINNIFTY28MAR24FUT")][11] == 1800
    assert by_symbol[("NFO", "MIDCPNIFTY28MAR24FUT")][11] == 2800
    # stock derivatives: a whole number of their lots
    stock = [m for m in mapped if m[3] == "NFO" and m[2] == "RELIANCE"]
    assert stock
    assert {m[11] for m in stock} == {8500}  # 34 lots of 250 at 2900: the lots within 2.5 crore of notional
    stocks = {s[0] for s in sample_contract.STOCKS}
    assert all(m[11] % m[8] == 0 and m[11] >= m[8] for m in mapped if m[3] == "NFO" and m[2] in stocks)
    # cash instruments, indices, BSE index derivatives, commodities, currencies: none
    for exchange in ("NSE", "BSE", "NSE_INDEX", "BSE_INDEX", "BFO", "MCX", "CDS"):
        assert {m[11] for m in mapped if m[3] == exchange} == {None}, exchange


def test_sample_generator_reaches_benchmark_size():
    rows = sum(1 for _ in sample_contract.generate(150_000, today=dt.date(2024, 3, 20)))
    assert rows == 150_000


def test_csv_round_trip(tmp_path):
    path = tmp_path / "instruments.csv"
    with open(path, "w", newline="") as f:
        mc.write_zerodha_csv(sample_contract.generate(300, today=dt.date(2024, 3, 20)), f)
    with open(path, newline="") as f:
        rows = list(mc.read_zerodha_csv(f))
    assert rows == list(sample_contract.generate(300, today=dt.date(2024, 3, 20)))


def test_read_csv_rejects_other_formats():
    with pytest.raises(mc.ContractImportError, match="missing columns"):
        mc.read_zerodha_csv(["a,b,c", "1,2,3"])


# -- search ranking on an in-memory index --------------------------------------------------------


@pytest.fixture(scope="module")
def index():
    mapped, _, _ = mc.map_rows(sample_contract.generate(20_000, today=dt.date(2024, 3, 20)))
    return build_index([SymbolInfo(*r) for r in mapped])


def test_exact_before_prefix_before_substring(index):
    results = [r.symbol for r in index.search("INFY")]
    assert results[:2] == ["INFY", "INFY"]  # NSE then BSE equity, exact
    assert results[2] == "INFY28MAR24FUT"  # then its derivatives (exact on name), nearest first
    motors = [r.symbol for r in index.search("MOTORS")]  # a name word, and a fragment of symbols
    assert set(motors[:2]) == {"EICHERMOT", "TATAMOTORS"}  # names EICHER MOTORS, TATA MOTORS


def test_prefix_puts_shortest_completion_first(index):
    assert index.search("RELI")[0].symbol == "RELIANCE"
    assert index.search("BANKNIF")[0].symbol == "BANKNIFTY"


def test_search_by_token_strike_and_several_words(index):
    assert [r.symbol for r in index.search("256265")] == ["NIFTY"]
    hits = index.search("nifty 22000 ce")
    assert hits
    assert all(h.strike == 22000 and h.instrumenttype == "CE" for h in hits)
    nifty = [h for h in hits if h.name == "NIFTY"]
    assert nifty
    assert hits[: len(nifty)] == nifty  # whole-word matches before BANKNIFTY, FINNIFTY...
    assert [h.expiry for h in nifty] == sorted(h.expiry for h in nifty)  # nearest expiry first


def test_search_with_exchange_and_limit(index):
    assert {r.exchange for r in index.search("INFY", "BSE")} == {"BSE"}
    assert index.search("NIFTY", "MCX") == []
    assert len(index.search("NIFTY", limit=7)) == 7
    assert index.search("qqqzzz") == []
    assert index.search("   ") == []


def test_lookups(index):
    info = index.find("symbol", "NFO", "NIFTY28MAR2422000CE")
    assert info.symbol == "NIFTY28MAR2422000CE"
    assert info.exchange == "NFO"
    assert index.find("brsymbol", "NFO", info.brsymbol) is info
    assert index.find("token", "NFO", info.token) is info
    assert index.find("symbol", "nfo", "nifty28mar2422000ce") is info  # any case
    nifty = index.find("symbol", "NSE_INDEX", "NIFTY")
    # an index is found by the broker's exchange as well as ours, never by a symbol of another one
    assert index.find("token", "NSE", nifty.token) is nifty
    assert index.find("brsymbol", "NSE", "NIFTY 50") is nifty
    assert index.find("symbol", "NSE", "NIFTY") is None
    assert index.find("symbol", "NFO", "INFY") is None
    assert index.find("token", "NFO", nifty.token) is None
    assert index.find("token", "XYZ", info.token) is None


def test_lookup_collisions_prefer_our_exchange_then_rank():
    def rec(symbol, exchange, brexchange, token, itype="EQ"):
        return SymbolInfo(symbol, symbol, symbol, exchange, brexchange, token, None, None, 1, itype, Decimal("0.05"))

    # token 7 is NSE's ABC, and the broker's NSE also names the index IDX with it
    index = build_index([rec("IDX", "NSE_INDEX", "NSE", "7", "INDEX"), rec("ABC", "NSE", "NSE", "7"),
                         rec("IDY", "NSE_INDEX", "NSE", "8", "INDEX"), rec("IDZ", "BSE_INDEX", "NSE", "8", "INDEX")])
    assert index.find("token", "NSE", "7").symbol == "ABC"  # ours wins
    assert index.find("token", "NSE_INDEX", "7").symbol == "IDX"
    assert index.find("token", "NSE", "8").symbol == "IDY"  # the broker's: first in rank (NSE_INDEX)


def test_to_dict_shape(index):
    d = index.find("symbol", "NFO", "NIFTY28MAR2422000CE").to_dict()
    assert d["expiry"] == "28-MAR-24"
    assert d["strike"] == 22000.0
    assert d["lotsize"] == 25
    assert set(d) == {"id", "symbol", "brsymbol", "name", "exchange", "brexchange", "token", "expiry", "strike",
                      "lotsize", "instrumenttype", "tick_size", "freeze_qty"}
    assert d["freeze_qty"] == 1800  # NSE's limit for NIFTY, carried by the sample contract
    assert d["id"] is None  # built from mapped rows, not from sym_tokens
