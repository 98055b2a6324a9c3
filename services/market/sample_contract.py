"""A realistic, generated master contract in Zerodha's instruments format (no network needed).

This module owns the sample contract used by the embedded default (a fresh install can search
symbols and place analyze-mode orders offline), by tests and by benchmarks: NSE/BSE equities with
real company names, NSE/BSE indices, index and stock futures, weekly and monthly option chains
around a spot price, MCX commodity and CDS currency futures. Rows are dicts with Zerodha's CSV
columns, as strings, exactly what the broker adapter's `instruments()` and the CSV reader yield, plus
one column Kite's file does not have: `freeze_qty`, the most one order may carry (empty for cash
instruments, indices, and the derivatives whose exchange limit the sample does not know).

Generation is deterministic for a given (rows, today, spot). `today` defaults to the current date so
that the embedded contract has live expiries. Like a listed chain, each option chain is centred on its
underlying's price (`spot`: the simulator's price at the day's open, as master_contract passes it;
else `base_price()`) and wide enough that ATM +/- ATM_REACH strikes exist all day, however the price
moves within the simulator's DAY_BAND; master_contract generates it again each day. Like an exchange, a new
day's contract never delists a contract before its expiry: given the previous day's rows (`keep`), it lists
each of their unexpired derivatives as it was (tradingsymbol, tokens, lot, tick, freeze) and numbers new
rows around their tokens. `base_price()` is also where the quote simulator starts its random walks.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import itertools
import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

# (symbol, company name, approximate price, F&O lot size; 0 = no derivatives)
STOCKS: tuple[tuple[str, str, float, int], ...] = (
    ("RELIANCE", "RELIANCE INDUSTRIES", 2900, 250),
    ("TCS", "TATA CONSULTANCY SERV", 3900, 175),
    ("HDFCBANK", "HDFC BANK", 1550, 550),
    ("INFY", "INFOSYS", 1500, 400),
    ("ICICIBANK", "ICICI BANK", 1100, 700),
    ("HINDUNILVR", "HINDUSTAN UNILEVER", 2300, 300),
    ("ITC", "ITC", 430, 1600),
    ("SBIN", "STATE BANK OF INDIA", 760, 1500),
    ("BHARTIARTL", "BHARTI AIRTEL", 1200, 950),
    ("KOTAKBANK", "KOTAK MAHINDRA BANK", 1750, 400),
    ("LT", "LARSEN & TOUBRO", 3600, 150),
    ("AXISBANK", "AXIS BANK", 1050, 625),
    ("ASIANPAINT", "ASIAN PAINTS", 2850, 200),
    ("MARUTI", "MARUTI SUZUKI INDIA", 12500, 50),
    ("SUNPHARMA", "SUN PHARMACEUTICAL IND", 1600, 350),
    ("TITAN", "TITAN COMPANY", 3700, 175),
    ("BAJFINANCE", "BAJAJ FINANCE", 6900, 125),
    ("ULTRACEMCO", "ULTRATECH CEMENT", 9800, 100),
    ("NESTLEIND", "NESTLE INDIA", 2500, 400),
    ("WIPRO", "WIPRO", 480, 1500),
    ("HCLTECH", "HCL TECHNOLOGIES", 1450, 700),
    ("TECHM", "TECH MAHINDRA", 1250, 600),
    ("POWERGRID", "POWER GRID CORP", 290, 3600),
    ("NTPC", "NTPC", 350, 3000),
    ("ONGC", "OIL AND NATURAL GAS CORP", 270, 3850),
    ("TATAMOTORS", "TATA MOTORS", 990, 1425),
    ("TATASTEEL", "TATA STEEL", 155, 5500),
    ("JSWSTEEL", "JSW STEEL", 830, 675),
    ("HINDALCO", "HINDALCO INDUSTRIES", 600, 1400),
    ("COALINDIA", "COAL INDIA", 450, 2100),
    ("ADANIENT", "ADANI ENTERPRISES", 3100, 300),
    ("ADANIPORTS", "ADANI PORTS AND SEZ", 1300, 800),
    ("BAJAJFINSV", "BAJAJ FINSERV", 1600, 500),
    ("BAJAJ-AUTO", "BAJAJ AUTO", 8800, 75),
    ("M&M", "MAHINDRA & MAHINDRA", 1950, 350),
    ("EICHERMOT", "EICHER MOTORS", 3900, 175),
    ("HEROMOTOCO", "HERO MOTOCORP", 4500, 150),
    ("DRREDDY", "DR. REDDY'S LABORATORIES", 6200, 125),
    ("CIPLA", "CIPLA", 1450, 650),
    ("DIVISLAB", "DIVI'S LABORATORIES", 3700, 200),
    ("APOLLOHOSP", "APOLLO HOSPITALS ENTER", 6200, 125),
    ("BRITANNIA", "BRITANNIA INDUSTRIES", 4900, 200),
    ("TATACONSUM", "TATA CONSUMER PRODUCTS", 1100, 900),
    ("GRASIM", "GRASIM INDUSTRIES", 2250, 475),
    ("INDUSINDBK", "INDUSIND BANK", 1500, 500),
    ("SBILIFE", "SBI LIFE INSURANCE CO", 1450, 750),
    ("HDFCLIFE", "HDFC LIFE INS CO", 580, 1100),
    ("BPCL", "BHARAT PETROLEUM CORP", 600, 1800),
    ("SHRIRAMFIN", "SHRIRAM FINANCE", 2400, 300),
    ("LTIM", "LTIMINDTREE", 4900, 150),
    ("BANKBARODA", "BANK OF BARODA", 265, 2925),
    ("PNB", "PUNJAB NATIONAL BANK", 125, 8000),
    ("CANBK", "CANARA BANK", 580, 2700),
    ("FEDERALBNK", "FEDERAL BANK", 155, 5000),
    ("IDFCFIRSTB", "IDFC FIRST BANK", 80, 15000),
    ("AUBANK", "AU SMALL FINANCE BANK", 600, 1000),
    ("BANDHANBNK", "BANDHAN BANK", 185, 2500),
    ("VEDL", "VEDANTA", 292.5, 2000),
    ("SAIL", "STEEL AUTHORITY OF INDIA", 140, 8000),
    ("NMDC", "NMDC", 205, 4500),
    ("GAIL", "GAIL (INDIA)", 180, 4575),
    ("IOC", "INDIAN OIL CORP", 170, 4875),
    ("TATAPOWER", "TATA POWER CO", 400, 1350),
    ("DLF", "DLF", 880, 825),
    ("GODREJPROP", "GODREJ PROPERTIES", 2500, 325),
    ("PIDILITIND", "PIDILITE INDUSTRIES", 3000, 250),
    ("DABUR", "DABUR INDIA", 520, 1250),
    ("MARICO", "MARICO", 520, 1200),
    ("COLPAL", "COLGATE PALMOLIVE", 2700, 350),
    ("HAVELLS", "HAVELLS INDIA", 1500, 500),
    ("VOLTAS", "VOLTAS", 1200, 600),
    ("SIEMENS", "SIEMENS", 5300, 150),
    ("ABB", "ABB INDIA", 6500, 125),
    ("BEL", "BHARAT ELECTRONICS", 210, 5700),
    ("HAL", "HINDUSTAN AERONAUTICS", 3500, 300),
    ("IRCTC", "INDIAN RAIL TOUR CORP", 950, 875),
    ("ZOMATO", "ZOMATO", 180, 4500),
    ("PAYTM", "ONE 97 COMMUNICATIONS", 400, 0),
    ("NYKAA", "FSN E COMMERCE VENTURES", 165, 0),
    ("DMART", "AVENUE SUPERMARTS", 4600, 0),
    ("LICI", "LIFE INSURA CORP OF INDIA", 950, 0),
    ("ADANIGREEN", "ADANI GREEN ENERGY", 1800, 0),
    ("ADANIPOWER", "ADANI POWER", 550, 0),
    ("JIOFIN", "JIO FINANCIAL SERVICES", 350, 0),
    ("IRFC", "INDIAN RAILWAY FIN CORP", 145, 0),
    ("YESBANK", "YES BANK", 24, 0),
    ("SUZLON", "SUZLON ENERGY", 42, 0),
    ("IDEA", "VODAFONE IDEA", 13, 80000),
    ("MUTHOOTFIN", "MUTHOOT FINANCE", 1600, 375),
    ("CHOLAFIN", "CHOLAMANDALAM IN & FIN CO", 1200, 625),
    ("PFC", "POWER FIN CORP", 430, 3875),
    ("RECLTD", "REC", 480, 2000),
    ("LUPIN", "LUPIN", 1650, 425),
    ("AUROPHARMA", "AUROBINDO PHARMA", 1150, 550),
    ("BIOCON", "BIOCON", 270, 2500),
    ("MPHASIS", "MPHASIS", 2500, 275),
    ("COFORGE", "COFORGE", 5300, 150),
    ("PERSISTENT", "PERSISTENT SYSTEMS", 3900, 200),
    ("TRENT", "TRENT", 4000, 100),
    ("INDIGO", "INTERGLOBE AVIATION", 3900, 300),
)

# (Zerodha tradingsymbol, exchange, exchange_token, spot). Tokens of the main indices are Zerodha's.
INDICES: tuple[tuple[str, str, int, float], ...] = (
    ("NIFTY 50", "NSE", 1001, 22000),
    ("NIFTY BANK", "NSE", 1016, 48000),
    ("NIFTY FIN SERVICE", "NSE", 1007, 21500),
    ("NIFTY MID SELECT", "NSE", 1125, 11000),
    ("NIFTY NEXT 50", "NSE", 1058, 62000),
    ("INDIA VIX", "NSE", 1035, 14),
    ("NIFTY IT", "NSE", 1011, 35000),
    ("NIFTY AUTO", "NSE", 1019, 21000),
    ("NIFTY PHARMA", "NSE", 1023, 19000),
    ("NIFTY FMCG", "NSE", 1021, 54000),
    ("NIFTY METAL", "NSE", 1027, 8500),
    ("NIFTY REALTY", "NSE", 1028, 950),
    ("NIFTY ENERGY", "NSE", 1030, 39000),
    ("NIFTY 100", "NSE", 1012, 22800),
    ("NIFTY 500", "NSE", 1015, 20500),
    ("NIFTY MIDCAP 100", "NSE", 1062, 49000),
    ("SENSEX", "BSE", 1, 73000),
    ("BANKEX", "BSE", 1072, 54000),
)

# Index derivatives: (underlying name, index tradingsymbol, exchange, strike step, lot, weekly?)
INDEX_DERIVATIVES: tuple[tuple[str, str, str, int, int, bool], ...] = (
    ("NIFTY", "NIFTY 50", "NFO", 50, 25, True),
    ("BANKNIFTY", "NIFTY BANK", "NFO", 100, 15, False),
    ("FINNIFTY", "NIFTY FIN SERVICE", "NFO", 50, 40, False),
    ("MIDCPNIFTY", "NIFTY MID SELECT", "NFO", 25, 75, False),
    ("SENSEX", "SENSEX", "BFO", 100, 10, True),
    ("BANKEX", "BANKEX", "BFO", 100, 15, False),
)

# Freeze quantities of the NSE index derivatives (units, futures and options alike): NSE's limits as
# published in its quantity-freeze circulars (the latest, of 29 August 2025, effective 1 September
# 2025: NIFTY 1800, BANKNIFTY 900, FINNIFTY 1800, MIDCPNIFTY 2800), to be refreshed from the
# exchange's contract file when it revises them. A limit need not be a whole number of the sample's
# lots (MIDCPNIFTY: 2800 / 75): the largest order is then the whole lots below it. BSE's index
# derivatives (SENSEX, BANKEX) carry none here: not known, so not checked.
INDEX_FREEZE_QTY: dict[str, int] = {"NIFTY": 1800, "BANKNIFTY": 900, "FINNIFTY": 1800, "MIDCPNIFTY": 2800}

# Stock derivatives: NSE sets each stock's freeze quantity from its market-wide position limit and a
# notional cap, which the sample does not have. It stands in with a whole multiple of the lot: the
# lots that fit in this notional at the sample's price (at least one lot).
STOCK_FREEZE_NOTIONAL = 25_000_000  # rupees


def stock_freeze_qty(price: float, lot: int) -> int:
    """The sample's freeze quantity of a stock derivative: a whole number of lots (see above)."""
    return max(int(STOCK_FREEZE_NOTIONAL // (price * lot)), 1) * lot


# MCX futures: (name, price, lot, tick, expiry day of month)
COMMODITIES: tuple[tuple[str, float, int, str, int], ...] = (
    ("CRUDEOIL", 6800, 100, "1", 19),
    ("CRUDEOILM", 6800, 10, "1", 19),
    ("NATURALGAS", 180, 1250, "0.1", 25),
    ("GOLD", 71000, 100, "1", 5),
    ("GOLDM", 71000, 10, "1", 3),
    ("SILVER", 82000, 30, "1", 5),
    ("SILVERM", 82000, 5, "1", 28),
    ("COPPER", 800, 2500, "0.05", 28),
    ("ZINC", 250, 5000, "0.05", 28),
    ("ALUMINIUM", 230, 5000, "0.05", 28),
)

CURRENCIES: tuple[tuple[str, float], ...] = (("USDINR", 83.4), ("EURINR", 90.2), ("GBPINR", 105.6), ("JPYINR", 55.1))

# Zerodha's instrument_token is exchange_token << 8 | segment code.
SEGMENT_CODES = {"NSE": 1, "NFO": 2, "CDS": 3, "BSE": 4, "MCX": 7, "BFO": 8, "INDICES": 9}
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKLY_MONTH_CODES = "123456789OND"


# Every option chain lists at least this many strikes on each side of the at-the-money strike, at every
# moment until the contract is generated again (daily: master_contract.refresh_sample_contract).
ATM_REACH = 20
# The most the simulator lets a price stray from its session's open, in log terms (services.market.quotes
# clamps its intraday path there, like a price band). A chain centred on the open needs this much more room:
# the worst intraday move measured over 60,000 simulated sessions was 3.8 %.
DAY_BAND = 0.04
# Strikes no wider apart than this share of the price, so that ATM +/- ATM_REACH and the day's margin
# stay above zero for the cheapest stocks (real chains of cheap stocks also step finely).
_MAX_STEP_SHARE = 1 / 30
_STEPS = (100.0, 50.0, 20.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05)


@dataclass(frozen=True)
class _Chain:
    name: str
    exchange: str
    centre: float  # the underlying's price the chain is built around
    step: float
    lot: int
    expiry: dt.date
    monthly: bool
    weight: int  # index chains widen faster than stock chains, as on the exchange
    freeze: int | None  # the freeze quantity of its options (None: not known)

    @property
    def half(self) -> int:
        """Strikes a side that keep ATM +/- ATM_REACH listed while the price moves within DAY_BAND (+1: the
        at-the-money strike is the nearest, so rounding moves it by up to one more)."""
        return ATM_REACH + math.ceil(math.expm1(DAY_BAND) * self.centre / self.step) + 1

    def span(self, extra: int = 0) -> tuple[int, int]:
        """(lowest, highest) strike in steps: the centre's strike +/- (half + extra x weight), within 40% ..
        160% of the centre as listed chains are, but never narrower than `half`; only strikes above zero."""
        w = min(self.half + extra * self.weight, max(int(self.centre * 0.6 / self.step), self.half))
        mid = round(self.centre / self.step)
        return mid + max(-w, 1 - mid), mid + w

    def strikes(self, extra: int = 0) -> list[float]:
        """The chain's strikes, ascending."""
        lo, hi = self.span(extra)
        return [round(k * self.step, 4) for k in range(lo, hi + 1)]

    def count(self, extra: int = 0) -> int:
        lo, hi = self.span(extra)
        return max(hi - lo + 1, 0)


def _index_spot(tradingsymbol: str) -> float:
    return next(spot for ts, _, _, spot in INDICES if ts == tradingsymbol)


def _stock_step(price: float) -> float:
    step = 100.0
    for limit, s in ((50, 1.0), (100, 2.5), (250, 5.0), (1000, 10.0), (2500, 20.0), (5000, 50.0)):
        if price < limit:
            step = s
            break
    return next((s for s in _STEPS if s <= step and s <= price * _MAX_STEP_SHARE), _STEPS[-1])


def _last_weekday(year: int, month: int, weekday: int) -> dt.date:
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _months(today: dt.date, count: int) -> list[tuple[int, int]]:
    out, y, m = [], today.year, today.month
    while len(out) < count:
        out.append((y, m))
        m += 1
        if m > 12:
            y, m = y + 1, 1
    return out


def monthly_expiries(today: dt.date, weekday: int, count: int = 3) -> list[dt.date]:
    """The next `count` monthly expiries (last `weekday` of the month) on or after `today`."""
    dates = [_last_weekday(y, m, weekday) for y, m in _months(today, count + 1)]
    return [d for d in dates if d >= today][:count]


def weekly_expiries(today: dt.date, weekday: int, count: int) -> list[dt.date]:
    first = today + dt.timedelta(days=(weekday - today.weekday()) % 7)
    return [first + dt.timedelta(weeks=i) for i in range(count)]


def _strike_text(strike: float) -> str:
    return str(int(strike)) if strike == int(strike) else f"{strike:g}"


def _chains(today: dt.date, months: int, centre: Callable[[str], float]) -> list[_Chain]:
    """Index chains (6 weeklies where the index has them, and at least 3 monthlies), then stock chains on the
    first `months` monthly expiries."""
    chains: list[_Chain] = []
    for name, _, exch, step, lot, weekly in INDEX_DERIVATIVES:
        weekday = 3 if exch == "NFO" else 1  # NSE expiries on Thursday, BSE on Tuesday
        monthly = monthly_expiries(today, weekday, max(months, 3))
        expiries = set(monthly)
        if weekly:
            expiries.update(weekly_expiries(today, weekday, 6))
        for e in sorted(expiries):
            chains.append(_Chain(name, exch, centre(name), step, lot, e, e in monthly, 4, INDEX_FREEZE_QTY.get(name)))
    monthly = monthly_expiries(today, 3, months)
    for sym, _, price, lot, in STOCKS:
        if lot:
            for e in monthly:
                chains.append(_Chain(sym, "NFO", centre(sym), _stock_step(price), lot, e, True, 1,
                                     stock_freeze_qty(price, lot)))
    return chains


class _Kept:
    """The previous contract's derivatives that are still to expire: listed again as they were."""

    def __init__(self, rows: Iterable[Mapping[str, str]], today: dt.date) -> None:
        day = today.isoformat()
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        self.tokens: dict[str, set[int]] = {}  # exchange -> instrument tokens no new row may take
        self._strikes: dict[tuple[str, str, str], list[float]] = {}  # (name, exchange, expiry) -> one per row
        self.options = 0
        for r in rows:
            itype, expiry = r.get("instrument_type"), (r.get("expiry") or "")[:10]
            if itype not in ("FUT", "CE", "PE") or expiry < day:
                continue
            exchange = r["exchange"]
            self.rows[(exchange, r["tradingsymbol"])] = dict(r)
            try:
                self.tokens.setdefault(exchange, set()).add(int(r["instrument_token"]))
            except ValueError:  # not a number: no generated token can equal it
                pass
            if itype != "FUT":
                self._strikes.setdefault((r["name"], exchange, expiry), []).append(float(r["strike"]))
                self.options += 1
        self._chains: list[_Chain] | None = None  # the chains `_in_chains` is for (the fit asks often)
        self._in_chains: list[list[int]] = []

    def _in_steps(self, c: _Chain) -> list[int]:
        """The kept strikes of `c`'s chain on its grid, in steps, sorted (one per row)."""
        ks = (s / c.step for s in self._strikes.get((c.name, c.exchange, c.expiry.isoformat()), ()))
        return sorted(round(k) for k in ks if abs(k - round(k)) < 1e-6)

    def outside(self, chains: list[_Chain], extra: int) -> int:
        """Kept option rows that `chains` at width `extra` do not list: they come on top of the chains."""
        if not self.options:
            return 0
        if self._chains is not chains:
            self._chains, self._in_chains = chains, [self._in_steps(c) for c in chains]
        inside = 0
        for c, ks in zip(chains, self._in_chains, strict=True):
            if ks:
                lo, hi = c.span(extra)
                inside += bisect.bisect_right(ks, hi) - bisect.bisect_left(ks, lo)
        return self.options - inside


def _option_count(chains: list[_Chain], extra: int, kept: _Kept) -> int:
    return sum(2 * c.count(extra) for c in chains) + kept.outside(chains, extra)


def _fit(today: dt.date, centre: Callable[[str], float], budget: int | None,
         kept: _Kept) -> tuple[list[_Chain], int]:
    """(chains, extra width) for `budget` option rows, kept ones included: as many stock expiries as fit at
    the least width (up to a real chain's 3), then wider chains, then more expiries if even the widest fall
    short (benchmarks)."""
    months = 1
    if budget is None:
        return _chains(today, months, centre), 0
    while months < 3 and _option_count(_chains(today, months + 1, centre), 0, kept) <= budget:
        months += 1
    chains = _chains(today, months, centre)
    widest = 4000
    while _option_count(chains, widest, kept) < budget and months < 24:
        months += 1
        chains = _chains(today, months, centre)
    lo, hi = 0, widest
    while lo < hi:  # the narrowest extra width that reaches the budget (the count grows with it)
        mid = (lo + hi) // 2
        if _option_count(chains, mid, kept) >= budget:
            hi = mid
        else:
            lo = mid + 1
    return chains, lo


class _Tokens:
    """Numbers new rows per segment from 10,000, skipping the instrument tokens of kept rows: a token names
    one instrument of its exchange, and a kept row's stays its own."""

    def __init__(self, taken: Mapping[str, set[int]]) -> None:
        self._next = {seg: 10_000 for seg in SEGMENT_CODES}
        self._taken = taken

    def make(self, segment_key: str, exchange_token: int | None = None) -> tuple[str, str]:
        code = SEGMENT_CODES[segment_key]
        if exchange_token is None:
            exchange_token = self._next[segment_key]
            taken = self._taken.get(segment_key)
            while taken and exchange_token * 256 + code in taken:
                exchange_token += 1
            self._next[segment_key] = exchange_token + 1
        return str(exchange_token * 256 + code), str(exchange_token)


def _row(tokens: tuple[str, str], tradingsymbol: str, name: str, expiry: dt.date | None, strike: float, tick: str,
         lot: int, itype: str, segment: str, exchange: str, freeze: int | None = None) -> dict[str, str]:
    return {
        "instrument_token": tokens[0],
        "exchange_token": tokens[1],
        "tradingsymbol": tradingsymbol,
        "name": name,
        "last_price": "0",
        "expiry": expiry.isoformat() if expiry else "",
        "strike": _strike_text(strike) if strike else "0",
        "tick_size": tick,
        "lot_size": str(lot),
        "instrument_type": itype,
        "segment": segment,
        "exchange": exchange,
        "freeze_qty": str(freeze) if freeze else "",
    }


def minimum_rows(today: dt.date, spot: Callable[[str], float] | None = None) -> int:
    """The rows of the smallest contract whose every chain keeps ATM +/- ATM_REACH (generate(None, ...))."""
    return sum(1 for _ in generate(None, today, spot))


def generate(rows: int | None = 20_000, today: dt.date | None = None,
             spot: Callable[[str], float] | None = None,
             keep: Iterable[Mapping[str, str]] = ()) -> Iterator[dict[str, str]]:
    """Yield `rows` Zerodha instrument rows (all of the fixed part and as many options as fit).

    Each option chain is centred on `spot(underlying)` (the simulated price at the day's open, as
    master_contract passes it; default: the underlying's base price) with room for ATM +/- ATM_REACH
    through the day's moves. Indices, equities, futures and commodities come first; then chains, as many
    stock expiries as fit (up to 3), widened until the contract reaches `rows`. `rows=None` yields the
    smallest such contract (one stock expiry: minimum_rows()); a smaller `rows` cuts it short (tests'
    small contracts).

    `keep` is the contract listed until now, in these columns: each of its derivatives that expires on
    `today` or later is listed again unchanged, wherever the chains are now centred, and no new row takes
    its token. Kept rows count in `rows` (chains widen less), but never give way: when they, the fixed
    part and the chains' cores (ATM +/- half, as far as `rows` reaches them) exceed `rows`, the contract
    is larger by that much and gets no wider strikes.
    """
    today = today or dt.date.today()
    centres: dict[str, float] = {}

    def centre(name: str) -> float:
        if name not in centres:
            centres[name] = float(spot(name)) if spot is not None else _underlyings()[name]
        return centres[name]

    kept = _Kept(keep, today)
    tokens = _Tokens(kept.tokens)

    def listed(exchange: str, ts: str, name: str, expiry: dt.date, strike: float, tick: str, lot: int, itype: str,
               segment: str, freeze: int | None) -> dict[str, str]:
        """The kept row of this derivative, else a new one (a kept one takes no token)."""
        row = kept.rows.get((exchange, ts))
        if row is not None:
            return row
        return _row(tokens.make(exchange), ts, name, expiry, strike, tick, lot, itype, segment, exchange, freeze)

    fixed: list[dict[str, str]] = []
    for ts, exch, et, _ in INDICES:
        fixed.append(_row(tokens.make("INDICES", et), ts, ts, None, 0, "0", 0, "EQ", "INDICES", exch))
    for sym, name, _, _ in STOCKS:
        fixed.append(_row(tokens.make("NSE"), sym, name, None, 0, "0.05", 1, "EQ", "NSE", "NSE"))
    for sym, name, _, _ in STOCKS:
        fixed.append(_row(tokens.make("BSE"), sym, name, None, 0, "0.05", 1, "EQ", "BSE", "BSE"))
    nse_months = monthly_expiries(today, 3, 3)
    bse_months = monthly_expiries(today, 1, 3)
    for name, _, exch, _, lot, _ in INDEX_DERIVATIVES:
        for e in nse_months if exch == "NFO" else bse_months:
            ts = f"{name}{e.year % 100:02d}{MONTHS[e.month - 1]}FUT"
            fixed.append(listed(exch, ts, name, e, 0, "0.05", lot, "FUT", f"{exch}-FUT", INDEX_FREEZE_QTY.get(name)))
    for sym, _, price, lot in STOCKS:
        if lot:
            for e in nse_months:
                ts = f"{sym}{e.year % 100:02d}{MONTHS[e.month - 1]}FUT"
                fixed.append(listed("NFO", ts, sym, e, 0, "0.05", lot, "FUT", "NFO-FUT", stock_freeze_qty(price, lot)))
    for name, _, lot, tick, day in COMMODITIES:
        for y, m in _months(today, 4):
            e = dt.date(y, m, min(day, calendar.monthrange(y, m)[1]))
            while e.weekday() >= 5:
                e -= dt.timedelta(days=1)
            if e < today:
                continue
            ts = f"{name}{y % 100:02d}{MONTHS[m - 1]}FUT"
            fixed.append(listed("MCX", ts, name, e, 0, tick, lot, "FUT", "MCX-FUT", None))
    for pair, _ in CURRENCIES:
        for y, m in _months(today, 3):
            e = _last_weekday(y, m, 4) - dt.timedelta(days=2)  # two days before the month's last Friday
            if e < today:
                continue
            ts = f"{pair}{y % 100:02d}{MONTHS[m - 1]}FUT"
            fixed.append(listed("CDS", ts, pair, e, 0, "0.0025", 1, "FUT", "CDS-FUT", None))

    futures_on_top = len(kept.rows) - kept.options - sum(1 for r in fixed if _is_kept(kept, r))
    budget = None if rows is None else max(rows - len(fixed) - futures_on_top, 0)
    chains, extra = _fit(today, centre, budget, kept)

    def options() -> Iterator[dict[str, str]]:
        # Every chain's core (ATM +/- `half`) first, then the wider strikes: cutting the contract at `rows`
        # takes outer strikes, never the core, once the core fits.
        for core in (True, False):
            for c in chains:
                e = c.expiry
                if c.monthly:
                    prefix = f"{c.name}{e.year % 100:02d}{MONTHS[e.month - 1]}"
                else:
                    prefix = f"{c.name}{e.year % 100:02d}{WEEKLY_MONTH_CODES[e.month - 1]}{e.day:02d}"
                inner = set(c.strikes())
                for strike in c.strikes() if core else [s for s in c.strikes(extra) if s not in inner]:
                    for kind in ("CE", "PE"):
                        yield listed(c.exchange, f"{prefix}{_strike_text(strike)}{kind}", c.name, e, strike, "0.05",
                                     c.lot, kind, f"{c.exchange}-OPT", c.freeze)

    candidates = itertools.chain(fixed, options())
    if not kept.rows:
        yield from candidates if rows is None else itertools.islice(candidates, rows)
        return
    # Kept rows are all listed; the fixed part and the cores come next, as far as the first `rows` rows reach
    # (as without kept rows); wider strikes fill what is left of `rows`.
    cores = len(fixed) + sum(2 * c.count() for c in chains)
    mandatory = cores if rows is None else min(cores, rows)
    done: set[tuple[str, str]] = set()
    new = 0
    for i, row in enumerate(candidates):
        if _is_kept(kept, row):
            done.add((row["exchange"], row["tradingsymbol"]))
            yield row
        elif i < mandatory or (rows is not None and len(kept.rows) + new < rows):
            new += 1
            yield row
        else:  # the cores are listed and `rows` is spent: no later new row is listed either
            break
    for key, row in kept.rows.items():
        if key not in done:
            yield row


def _is_kept(kept: _Kept, row: Mapping[str, str]) -> bool:
    return kept.rows.get((row["exchange"], row["tradingsymbol"])) is row


# --------------------------------------------------------------------------------------------
# Prices the simulator starts from

_UNDERLYING: dict[str, float] = {}


def _underlyings() -> dict[str, float]:
    if not _UNDERLYING:
        for sym, _, price, _ in STOCKS:
            _UNDERLYING[sym] = price
        for name, index_ts, *_ in INDEX_DERIVATIVES:
            _UNDERLYING[name] = _index_spot(index_ts)
        for ts, _, _, spot in INDICES:
            _UNDERLYING.setdefault(ts.replace(" ", ""), spot)
        for name, price, *_ in COMMODITIES:
            _UNDERLYING[name] = price
        for pair, price in CURRENCIES:
            _UNDERLYING[pair] = price
        _UNDERLYING.update(NIFTYNXT50=62000, INDIAVIX=14)
    return _UNDERLYING


def base_price(underlying: str) -> Decimal | None:
    """The spot the sample contract centres an underlying on (None when it is not in the sample)."""
    price = _underlyings().get(underlying.replace(" ", "").upper())
    return None if price is None else Decimal(str(price))


def fallback_price(key: str) -> Decimal:
    """A stable, plausible price for an instrument outside the sample (10 to ~5,000)."""

    h = zlib.crc32(key.encode())
    return Decimal(str(round(10 * math.exp((h % 10_000) / 10_000 * math.log(500)), 2)))
