"""Options on the master contract: pure look-ups on the symbol index, no quotes and no venue.

This module owns the option book of a symbol-index snapshot: every option chain (an underlying's calls and
puts of one expiry on one exchange, strikes ascending) and every underlying's futures, grouped once per
snapshot (held beside it, dropped with it) so that a chain or an expiry list is a dictionary read, not a
scan of the contract's rows. On it: an underlying's expiries, the listed strikes of an expiry, the
instrument whose last price sets ATM, ATM / ITMn / OTMn resolution and the chain's labels (docs/api.md,
Options), and the request formats (DDMMMYY expiries, `NIFTY28NOV24FUT` underlyings, offsets).

An underlying is named as the contract names its derivatives (Zerodha's `name` without spaces: NIFTY,
BANKNIFTY, SENSEX, RELIANCE, CRUDEOIL); its index on NSE_INDEX / BSE_INDEX carries the same symbol (the
master contract maps "NIFTY 50" to NIFTY, "NIFTY BANK" to BANKNIFTY).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from services.market import symbol_index
from services.market.symbol_index import SymbolIndex, SymbolInfo
from vocabulary import DERIVATIVE_EXCHANGES

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
FNO_EXCHANGES: tuple[str, ...] = tuple(e.value for e in DERIVATIVE_EXCHANGES)
# Where the options of an underlying quoted on a cash or index exchange are listed; an F&O exchange lists its own.
OPTION_EXCHANGE = {"NSE": "NFO", "NSE_INDEX": "NFO", "BSE": "BFO", "BSE_INDEX": "BFO"}
# Where an equity-derivative underlying's price is: its index first, else the stock. The other F&O exchanges
# have no spot instrument: their chains are priced against the nearest future.
SPOT_EXCHANGES = {"NFO": ("NSE_INDEX", "NSE"), "BFO": ("BSE_INDEX", "BSE")}
MAX_OFFSET = 50
KINDS = ("futures", "options")

_EXPIRY = re.compile(rf"^(\d{{2}})-?({'|'.join(MONTHS)})-?(\d{{2}})$")
_FUTURE = re.compile(rf"^(.+?)(\d{{2}})({'|'.join(MONTHS)})(\d{{2}})FUT$")
_OFFSET = re.compile(r"^(ATM)$|^(ITM|OTM)([1-9][0-9]?)$")


class OptionLookupError(LookupError):
    """A look-up that found nothing to answer with: `message` in words, `status` the HTTP status (400/404)."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# -- request formats -------------------------------------------------------------------------------------
def parse_expiry(text: str) -> dt.date:
    """`28NOV24` (or `28-NOV-24`, the expiry endpoint's form) as a date; ValueError otherwise."""
    m = _EXPIRY.match(text.strip().upper()) if isinstance(text, str) else None
    if m is None:
        raise ValueError("must be a date written DDMMMYY, e.g. 28NOV24")
    try:
        return dt.date(2000 + int(m[3]), MONTHS.index(m[2]) + 1, int(m[1]))
    except ValueError:
        raise ValueError(f"{text.strip()} is not a date") from None


def split_underlying(underlying: str) -> tuple[str, dt.date | None]:
    """(name, expiry named inside it): `NIFTY28NOV24FUT` -> (NIFTY, 2024-11-28); `NIFTY` -> (NIFTY, None)."""
    text = underlying.strip().upper()
    m = _FUTURE.match(text)
    if m is None:
        return text, None
    try:
        return m[1], dt.date(2000 + int(m[4]), MONTHS.index(m[3]) + 1, int(m[2]))
    except ValueError:
        return text, None


def parse_offset(offset: str) -> int:
    """ATM -> 0, ITMn -> -n, OTMn -> +n (n from 1 to MAX_OFFSET); ValueError otherwise. The sign is the
    moneyness side; which way that is along the strikes depends on the option type (`strike_step`)."""
    m = _OFFSET.match(offset.strip().upper()) if isinstance(offset, str) else None
    if m is None or (m[3] and not 1 <= int(m[3]) <= MAX_OFFSET):
        raise ValueError(f"must be ATM, ITM1 to ITM{MAX_OFFSET} or OTM1 to OTM{MAX_OFFSET}")
    return 0 if m[1] else (-1 if m[2] == "ITM" else 1) * int(m[3])


def strike_step(offset: int, option_type: str) -> int:
    """Strikes to move up from ATM: ITM is below ATM for CE and above it for PE; OTM the other way."""
    return offset if option_type.upper() == "CE" else -offset


def expiry_code(d: dt.date) -> str:
    """DDMMMYY, the symbols' and the requests' form: 28NOV24."""
    return f"{d.day:02d}{MONTHS[d.month - 1]}{d.year % 100:02d}"


def expiry_label(d: dt.date) -> str:
    """DD-MMM-YY, the expiry endpoint's and the master contract's form: 28-NOV-24."""
    return f"{d.day:02d}-{MONTHS[d.month - 1]}-{d.year % 100:02d}"


def option_exchange(exchange: str) -> str:
    """The exchange an underlying's options are listed on: NSE/NSE_INDEX -> NFO, BSE/BSE_INDEX -> BFO."""
    ex = exchange.upper()
    return OPTION_EXCHANGE.get(ex, ex)


def base_name(info: SymbolInfo) -> str:
    """The underlying a derivative belongs to, as requests name it."""
    return (info.name or info.symbol).replace(" ", "").upper()


# -- the option book of one index snapshot -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Chain:
    """One expiry of an underlying's options on one exchange."""

    name: str
    exchange: str
    expiry: dt.date
    strikes: tuple[Decimal, ...]  # ascending: every strike listed with a call, a put or both
    calls: Mapping[Decimal, SymbolInfo]
    puts: Mapping[Decimal, SymbolInfo]

    def leg(self, strike: Decimal, option_type: str) -> SymbolInfo | None:
        return (self.calls if option_type.upper() == "CE" else self.puts).get(strike)

    def atm_index(self, ltp: Decimal) -> int:
        """The listed strike nearest the last price, the lower one on a tie."""
        strikes = self.strikes
        return min(range(len(strikes)), key=lambda i: (abs(strikes[i] - ltp), strikes[i]))

    def labels(self, atm: int, count: int | None = None) -> list[tuple[Decimal, str, str]]:
        """(strike, CE label, PE label) of the strikes `count` either side of strikes[atm] (all when None):
        below ATM a call is ITMn and a put OTMn, above it the other way round."""
        lo, hi = (0, len(self.strikes)) if count is None else (max(atm - count, 0), atm + count + 1)
        out = []
        for i in range(lo, min(hi, len(self.strikes))):
            n = abs(i - atm)
            below, above = (f"ITM{n}", f"OTM{n}") if i < atm else (f"OTM{n}", f"ITM{n}")
            out.append((self.strikes[i], *(("ATM", "ATM") if n == 0 else (below, above))))
        return out


class _Book:
    """Every chain and future of a contract, grouped by (exchange, underlying) in one pass over its rows."""

    def __init__(self, records: Iterable[SymbolInfo]) -> None:
        options: dict[tuple[str, str], dict[dt.date, tuple[dict, dict]]] = {}
        futures: dict[tuple[str, str], list[SymbolInfo]] = {}
        fno = frozenset(FNO_EXCHANGES)
        for r in records:
            kind = r.instrumenttype
            if r.exchange not in fno or r.expiry is None or kind not in ("CE", "PE", "FUT"):
                continue
            key = (r.exchange, base_name(r))
            if kind == "FUT":
                futures.setdefault(key, []).append(r)
            elif r.strike is not None and r.strike > 0:
                calls, puts = options.setdefault(key, {}).setdefault(r.expiry, ({}, {}))
                (calls if kind == "CE" else puts)[r.strike] = r
        self.chains = {key: {e: Chain(key[1], key[0], e, tuple(sorted(c.keys() | p.keys())), c, p)
                             for e, (c, p) in sorted(by_expiry.items())}
                       for key, by_expiry in options.items()}
        self.futures = {key: sorted(rows, key=lambda r: r.expiry) for key, rows in futures.items()}


_books: weakref.WeakKeyDictionary[SymbolIndex, _Book] = weakref.WeakKeyDictionary()
_books_lock = threading.Lock()


def _book() -> _Book:
    """The option book of the current index snapshot, built once per snapshot (that is, per contract
    generation) by the first caller, the others waiting for it rather than building their own."""
    index = symbol_index.index()
    book = _books.get(index)
    if book is None:
        with _books_lock:
            book = _books.get(index)
            if book is None:
                book = _books[index] = _Book(index.records)
    return book


# -- look-ups --------------------------------------------------------------------------------------------
def expiries(name: str, exchange: str, kind: str, today: dt.date) -> list[dt.date]:
    """The expiries of `name`'s futures or options (`kind`) on F&O `exchange`, from `today` on, nearest first."""
    book, key = _book(), (exchange.upper(), name.upper())
    if kind == "futures":
        dates = {r.expiry for r in book.futures.get(key, ())}
    else:
        dates = set(book.chains.get(key, {}))
    return sorted(d for d in dates if d >= today)


def chain(name: str, exchange: str, expiry: dt.date) -> Chain | None:
    """The listed options of `name` expiring on `expiry` on F&O `exchange`, or None."""
    return _book().chains.get((exchange.upper(), name.upper()), {}).get(expiry)


def underlyings(exchange: str) -> list[str]:
    """The underlyings with listed options on F&O `exchange`, alphabetically."""
    ex = exchange.upper()
    return sorted(name for (e, name) in _book().chains if e == ex)


def nearest_future(name: str, exchange: str, today: dt.date) -> SymbolInfo | None:
    return next((r for r in _book().futures.get((exchange.upper(), name.upper()), ()) if r.expiry >= today), None)


def underlying_instrument(name: str, exchange: str, today: dt.date) -> SymbolInfo | None:
    """The instrument whose last price sets ATM for `name` asked on `exchange`: on a cash or index exchange
    the instrument itself; on NFO/BFO the index, else the stock (else the nearest future); on MCX, CDS, BCD
    and NCDEX, which list no spot, the nearest future."""
    ex = exchange.upper()
    if ex not in FNO_EXCHANGES:
        return symbol_index.get_symbol_info(name, ex)
    for place in SPOT_EXCHANGES.get(ex, ()):
        info = symbol_index.get_symbol_info(name, place)
        if info is not None:
            return info
    return nearest_future(name, ex, today)


def resolve(chain_: Chain, ltp: Decimal, offset: int, option_type: str,
            strike_int: Decimal | None = None) -> SymbolInfo:
    """The contract `offset` strikes from ATM (docs/api.md, Options). Without `strike_int`, ATM is the listed
    strike nearest `ltp` and offsets count listed strikes; with it, ATM is round(ltp / strike_int) x
    strike_int and offsets step by it. Beyond the listed strikes: 400; a strike in range that is not listed: 404."""
    step = strike_step(offset, option_type)
    kind = option_type.upper()
    strikes = chain_.strikes
    if strike_int is None:
        i = chain_.atm_index(ltp) + step
        if not 0 <= i < len(strikes):
            raise _beyond(chain_, offset, kind, strikes[chain_.atm_index(ltp)])
        strike = strikes[i]
    else:
        atm = (ltp / strike_int).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * strike_int
        strike = atm + step * strike_int
        if not strikes[0] <= strike <= strikes[-1]:
            raise _beyond(chain_, offset, kind, atm)
    info = chain_.leg(strike, kind)
    if info is None:
        raise OptionLookupError(f"Symbol {chain_.name}{expiry_code(chain_.expiry)}{_strike_text(strike)}{kind} not "
                                f"found in exchange {chain_.exchange}", 404)
    return info


def _beyond(chain_: Chain, offset: int, kind: str, atm: Decimal) -> OptionLookupError:
    name = "ATM" if offset == 0 else f"{'ITM' if offset < 0 else 'OTM'}{abs(offset)}"
    return OptionLookupError(
        f"{name} {kind} is beyond the listed strikes of {chain_.name} {expiry_code(chain_.expiry)} on "
        f"{chain_.exchange} (ATM {_strike_text(atm)}; listed {_strike_text(chain_.strikes[0])} to "
        f"{_strike_text(chain_.strikes[-1])})", 400)


def _strike_text(strike: Decimal) -> str:
    return str(int(strike)) if strike == strike.to_integral_value() else format(strike.normalize(), "f")
