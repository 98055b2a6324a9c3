"""Fast symbol and token lookups, and symbol search, over the master contract (`sym_tokens`).

This module owns an in-memory index of the contract, per application (app.extensions), built in one
piece from one SELECT and swapped in as a single reference: a lookup or a search holds one index for
its whole run, so it answers either from the previous contract or from the new one, never a mix, and
never from a half-built index. `init_db()` subscribes it to the "symbols" cache namespace; the index
is built on first use in the process that uses it (or by the start-up warm-up of services.runtime.startup
once the process has served its first page), never in a pre-forking server's master. An
invalidation (services.market.master_contract after an import, from any process) marks it stale, and the
next lookup rebuilds it off to the side while concurrent lookups keep answering from the old one.

Lookups are dictionary reads (`get_token`, `get_symbol`, `get_br_symbol`, `get_oa_symbol`,
`get_brexchange`, `get_symbol_info` and their `*_bulk` variants) in the exchanges' search tables;
while the process's first index is being built they are indexed queries of `sym_tokens` instead,
with the same answers, and so is a miss in an index that cannot be trusted to know every symbol: one
built from an empty contract, or one gone stale (a new contract is committed, its rebuild pending).
`get_symbol_info_waiting()` (orders) also knows when the contract is still on its way (an import
running, or none loaded yet while the offline sample contract is due): it waits for a running import
to finish, and raises ContractLoading rather than answer "not found" for a symbol being loaded.
`search()` waits for the index. It matches every word of
the query against symbol, broker symbol, name (and its words), token and strike, ranked exact >
prefix > substring, then by instrument (index, equity, future, option), exchange and nearest expiry.

Code that writes `sym_tokens` other than through services.market.master_contract calls `invalidate()`.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import gc
import logging
import operator
import os
import threading
import time
import weakref
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import exists, select, text

from database import cache, db
from database.enums import ImportState
from database.symbol import MasterContractStatus, SymToken
from database.types import utcnow

log = logging.getLogger("algobridge.symbols")

EXTENSION_KEY = "algobridge.token_db"
NAMESPACE = "symbols"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

# Rank of instrument types and exchanges among results of equal match quality.
_TYPE_RANK = {"INDEX": 0, "EQ": 1, "FUT": 2, "CE": 3, "PE": 3}
_EXCHANGE_RANK = {"NSE_INDEX": 0, "NSE": 1, "BSE_INDEX": 2, "BSE": 3, "NFO": 4, "BFO": 5, "MCX": 6, "CDS": 7,
                  "BCD": 8, "NCDEX": 9}
# Match tiers: exact on symbol/broker symbol/token, exact on name/strike, then the same for prefix,
# then substring anywhere.
EXACT, EXACT_WEAK, PREFIX, PREFIX_WEAK, SUBSTRING = range(5)
SCAN_BUDGET = 500
_SEP = "\x1f"  # between the fields of one record's haystack; never in a query word
_REC = "\x1e"  # between records in an exchange's haystack string


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    symbol: str
    brsymbol: str
    name: str | None
    exchange: str
    brexchange: str
    token: str
    expiry: dt.date | None
    strike: Decimal | None
    lotsize: int
    instrumenttype: str
    tick_size: Decimal
    # Last, with defaults, so that the positional constructions of the eleven fields above still work.
    freeze_qty: int | None = None  # the most one order may carry; None: not known (not checked)
    id: int | None = None  # the sym_tokens row

    def to_dict(self) -> dict[str, Any]:
        """The `search` / `symbol` shape of docs/api.md (OpenAlgo's): expiry DD-MMM-YY, numbers as JSON numbers;
        `freeze_qty` 1 when not known, as OpenAlgo sends for an instrument without a freeze quantity."""
        e = self.expiry
        return {
            "id": self.id,
            "symbol": self.symbol,
            "brsymbol": self.brsymbol,
            "name": self.name or "",
            "exchange": self.exchange,
            "brexchange": self.brexchange,
            "token": self.token,
            "expiry": f"{e.day:02d}-{_MONTHS[e.month - 1]}-{e.year % 100:02d}" if e else "",
            "strike": float(self.strike) if self.strike is not None else 0.0,
            "lotsize": self.lotsize,
            "instrumenttype": self.instrumenttype,
            "tick_size": float(self.tick_size),
            "freeze_qty": self.freeze_qty if self.freeze_qty is not None else 1,
        }


def _strike_text(strike: Decimal) -> str:
    if strike == strike.to_integral_value():
        return str(int(strike))
    return format(strike.normalize(), "f")


def _add(table: dict[str, Any], term: str, rid: int) -> None:
    # Postings are an int for a term of one record (most symbols and tokens), else a list of rids
    # in rank order: 150,000 one-element lists would cost tens of megabytes.
    cur = table.get(term)
    if cur is None:
        table[term] = rid
    elif isinstance(cur, int):
        if cur != rid:
            table[term] = [cur, rid]
    elif cur[-1] != rid:
        cur.append(rid)


def _postings(table: dict[str, Any], term: str) -> Any:
    cur = table.get(term)
    if cur is None:
        return ()
    return (cur,) if isinstance(cur, int) else cur


def _is_number(word: str) -> bool:
    return word.replace(".", "", 1).isdigit()


class _ExchangeSearch:
    """The search structures of one exchange's records (rids in rank order).

    exact / exact_weak: term -> postings, for symbol, broker symbol, token (strong) and name, name
    words, strike (weak). by_len / by_len_weak: the same terms, sorted, bucketed by length (shortest
    first), so that a prefix is found by bisection and its shortest completions come first; terms /
    terms_weak: all of them sorted, to count a prefix's completions with two bisections. text: the symbols and
    names of the exchange's records joined in rank order, for the substring tier (str.find runs in C).
    """

    __slots__ = ("exact", "exact_weak", "by_len", "by_len_weak", "terms", "terms_weak", "text", "starts", "rids",
                 "block_starts", "grams")

    def __init__(self, index: SymbolIndex, rids: list[int]) -> None:
        exact: dict[str, Any] = {}
        weak: dict[str, Any] = {}
        scan: list[str] = []
        recs = index.records
        # A contract repeats names (an underlying names all its derivatives) and strikes: their
        # upper-case forms, words and texts are worked out once per distinct value.
        names: dict[str | None, tuple[str, tuple[list[int], ...], str]] = {}
        strikes: dict[Decimal | None, tuple[str, list[int] | None]] = {None: ("", None)}
        # Weak terms are shared by many records: their postings are built as lists, held by the
        # memos above so that a record appends without a lookup, and turned to ints where single.
        weak_lists: dict[str, list[int]] = {}
        # The fast path of _add: setdefault() answers in one call whether the term is new (or this
        # record's already); only a term shared with another record goes through _add.
        put = exact.setdefault
        for rid in rids:
            r = recs[rid]
            nm = names.get(r.name)
            if nm is None:
                name = (r.name or "").upper()
                words = (name, *dict.fromkeys(name.split())) if " " in name else (name,) if name else ()
                nm = names[r.name] = (name, tuple(weak_lists.setdefault(w, []) for w in words),
                                      name.replace(" ", ""))
                index.name_hay.setdefault(r.name, name.replace(" ", _SEP))
            name, name_lists, name_joined = nm
            st = strikes.get(r.strike)
            if st is None:
                text = _strike_text(r.strike)
                st = strikes[r.strike] = (text, weak_lists.setdefault(text, []))
                index.strike_text.setdefault(r.strike, text)
            strike_list = st[1]
            # str.upper() always makes a copy: keep the record's own string when it is upper case
            # already (nearly always), so that the index shares it instead of holding a second one.
            sym, brs, token = r.symbol.upper(), r.brsymbol.upper(), r.token
            if sym == r.symbol:
                sym = r.symbol
            if brs == r.brsymbol:
                brs = r.brsymbol
            if put(sym, rid) != rid:
                _add(exact, sym, rid)
            if put(brs, rid) != rid:
                _add(exact, brs, rid)
            if put(token, rid) != rid:
                _add(exact, token, rid)
            for lst in name_lists:  # the name, then its words
                lst.append(rid)
            if strike_list is not None and (not strike_list or strike_list[-1] != rid):  # "50" a word too
                strike_list.append(rid)
            # The substring tier scans symbols, and names that the symbol does not already spell
            # (a derivative's name is its underlying, the start of its symbol).
            scan.append(sym if not name or sym.startswith(name_joined) else f"{sym}{_SEP}{name}")
        for term, lst in weak_lists.items():
            weak[term] = lst[0] if len(lst) == 1 else lst
        self.exact = exact
        self.exact_weak = weak
        self.terms, self.by_len = _by_length(exact)
        self.terms_weak, self.by_len_weak = _by_length(weak)
        # Machine integers rather than lists of int objects: a third of the memory.
        self.rids = array("l", rids)
        starts, pos = array("l"), 0
        for s in scan:
            starts.append(pos)
            pos += len(s) + 1
        self.starts = starts
        self.text = _REC.join(scan)
        self.block_starts, self.grams = _gram_blocks(scan)

    def estimate(self, word: str) -> int:
        """How many records an exact or prefix match of `word` could yield (an upper bound, cheap)."""
        n = len(_postings(self.exact, word)) + len(_postings(self.exact_weak, word))
        hi = word + "\uffff"
        for terms, table in ((self.terms, self.exact), (self.terms_weak, self.exact_weak)):
            # The terms in [word, hi) are the word itself and its longer completions.
            n += bisect.bisect_left(terms, hi) - bisect.bisect_left(terms, word) - (word in table)
        return n

    def indexed(self, primary: str, accept: Any) -> None:
        """Feed exact then prefix matches of `primary` to `accept(rid, tier, sub)` until it says stop."""
        for tier, table in ((EXACT, self.exact), (EXACT_WEAK, self.exact_weak)):
            for rid in _postings(table, primary):
                if accept(rid, tier, 0):
                    return
        # Prefix: shortest completions first (INFY before INFY24APR...), alphabetical within a length.
        hi = primary + "\uffff"
        tiers = ((PREFIX, self.by_len, self.exact), (PREFIX_WEAK, self.by_len_weak, self.exact_weak))
        for tier, by_len, table in tiers:
            for length, terms in by_len.items():  # ascending lengths
                if length <= len(primary):
                    continue
                i = bisect.bisect_left(terms, primary)
                j = bisect.bisect_left(terms, hi, i)
                for term in terms[i:j]:
                    for rid in _postings(table, term):
                        if accept(rid, tier, length):
                            return

    def substring(self, primary: str, accept: Any) -> None:
        """Feed the records whose scan text contains `primary` to `accept`, in rank order, until it says
        stop. Only the blocks whose n-grams include all of the word's are searched: the same records,
        in the same order, as a find() over the whole text, without reading megabytes for a rare word."""
        text, starts, rids = self.text, self.starts, self.rids
        last = len(starts) - 1
        for k0, k1 in self._candidate_blocks(primary):
            end = starts[k1 + 1] - 1 if k1 < last else len(text)
            pos = text.find(primary, starts[k0], end)
            while pos >= 0:
                k = bisect.bisect_right(starts, pos, k0, k1 + 1) - 1
                if accept(rids[k], SUBSTRING, 0) or k >= last:
                    return
                pos = text.find(primary, starts[k + 1], end) if k < k1 else -1

    def _candidate_blocks(self, word: str) -> Iterable[tuple[int, int]]:
        """(first, last) record positions of the blocks that may contain `word`, in order."""
        block_starts, n = self.block_starts, len(self.starts)
        if len(word) < 2:  # no n-gram to go by (and a single character is everywhere anyway)
            yield 0, n - 1
            return
        size = min(len(word), _GRAM)
        lists = []
        for i in range(len(word) - size + 1):
            blocks = self.grams.get(word[i : i + size])
            if blocks is None:
                return  # an n-gram that no record has: no record contains the word
            lists.append(blocks)
        lists.sort(key=len)
        driver, others = lists[0], lists[1:]
        for b in driver:
            for lst in others:
                i = bisect.bisect_left(lst, b)
                if i == len(lst) or lst[i] != b:
                    break
            else:
                yield block_starts[b], (block_starts[b + 1] if b + 1 < len(block_starts) else n) - 1


# The substring tier's prefilter: an exchange's records (in rank order) are cut into blocks of
# consecutive records, and every 2- and 3-gram of the block's scan strings maps to the sorted list of
# blocks that hold it. A word can only occur in the blocks that hold all its 3-grams (its 2-gram if it
# is two characters long). Blocks rather than records keep the index small and quick to build: a
# block is a run of records sharing a long prefix (an option chain: NIFTY28MAR24 + strike + CE/PE),
# so its n-grams are the prefix's plus those of short tails ("24" + "22000CE") that recur across
# chains and are computed once.
_GRAM = 3
_MIN_PREFIX = 4  # a shorter common prefix makes a block of one record
_BLOCK_WINDOWS = (63, 15, 3)  # how far ahead to look for records sharing the block's prefix


def _ngrams(s: str, canon: dict[str, str]) -> tuple[str, ...]:
    """The distinct 2- and 3-grams of `s`, each the one string object `canon` holds for it: the
    memo of _gram_blocks keeps thousands of these, and frozensets of fresh slices made it several
    times the size of the index they serve while it was being built."""
    share = canon.setdefault
    grams = {s[i : i + 3] for i in range(len(s) - 2)}
    grams.update([s[i : i + 2] for i in range(len(s) - 1)])
    return tuple([share(g, g) for g in grams])


def _common_prefix(a: str, b: str) -> str:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return a[:i]


def _gram_blocks(scan: list[str]) -> tuple[list[int], dict[str, list[int]]]:
    block_starts: list[int] = []
    grams: dict[str, list[int]] = {}
    tails: dict[str, tuple[str, ...]] = {}
    canon: dict[str, str] = {}
    n = len(scan)
    i = 0
    while i < n:
        s = scan[i]
        prefix = ""
        for window in _BLOCK_WINDOWS:
            if i + window < n:
                prefix = _common_prefix(s, scan[i + window])
                if len(prefix) >= _MIN_PREFIX:
                    break
        b = len(block_starts)
        block_starts.append(i)
        if len(prefix) < _MIN_PREFIX:
            found = _ngrams(s, canon)
            i += 1
        else:
            # s = prefix + tail: the n-grams of s are the prefix's and those of the prefix's last two
            # characters + tail (every n-gram that reaches into the tail starts there at the earliest).
            j = i + 1
            while j < n and scan[j].startswith(prefix):
                j += 1
            # The same split once more: edge + tail = head + its last two characters, whose n-grams are
            # head's and those of its last four characters; heads ("24" + strike) and ends ("00CE")
            # repeat within a chain and across chains, and each distinct one is computed once.
            cut = len(prefix) - 2
            keys = {t[cut:-2] for t in scan[i:j]} | {t[-4:] for t in scan[i:j]}
            for key in keys - tails.keys():
                tails[key] = _ngrams(key, canon)
            found = set(_ngrams(prefix, canon))
            found.update(*map(tails.__getitem__, keys))
            i = j
        for gram in found:
            lst = grams.get(gram)
            if lst is None:
                grams[gram] = [b]
            else:
                lst.append(b)
    return block_starts, grams


def _by_length(terms: dict[str, Any]) -> tuple[list[str], dict[int, list[str]]]:
    ordered = sorted(terms)
    out: dict[int, list[str]] = {}
    for term in ordered:  # alphabetical within each length, as they come
        lst = out.get(len(term))
        if lst is None:
            lst = out[len(term)] = []
        lst.append(term)
    return ordered, dict(sorted(out.items()))


class SymbolIndex:
    """An immutable snapshot of the contract: lookup maps and per-exchange search structures."""

    def __init__(self, records: list[SymbolInfo], generation: int = 0) -> None:
        records.sort(key=_rank_key)
        self.records = records
        self.generation = generation
        self.built_at = time.time()
        per_exchange: dict[str, list[int]] = {}
        brexchanges: dict[str, set[str]] = {}
        for rid, r in enumerate(records):
            ex = r.exchange
            rids = per_exchange.get(ex)
            if rids is None:
                rids = per_exchange[ex] = []
                brexchanges[ex] = set()
            rids.append(rid)
            brexchanges[ex].add(r.brexchange)
        # The name and strike of a record as they appear in its haystack (see _hay).
        self.name_hay: dict[str | None, str] = {None: ""}
        self.strike_text: dict[Decimal | None, str] = {None: ""}
        self.exchanges = {ex: _ExchangeSearch(self, rids) for ex, rids in per_exchange.items()}
        # Lookups use the exchanges' exact tables (symbol, broker symbol and token are all terms
        # there), not maps of their own: three more dicts of every key would add a seventh to the
        # index. A broker exchange -> our exchanges whose records name it (NSE -> NSE, NSE_INDEX).
        self.by_brexchange: dict[str, list[_ExchangeSearch]] = {}
        for ex, brs in brexchanges.items():
            for brex in sorted(brs):
                self.by_brexchange.setdefault(brex, []).append(self.exchanges[ex])

    def _hay(self, rid: int) -> str:
        """A record's fields and name words between separators, so that "is this word in the
        record" and "is it a whole field" are each one substring test. Made when a search asks
        (a candidate at a time): kept for every record it would cost a fifth of the index."""
        r = self.records[rid]
        return (f"{_SEP}{r.symbol.upper()}{_SEP}{r.brsymbol.upper()}{_SEP}{self.name_hay[r.name]}{_SEP}{r.token}"
                f"{_SEP}{self.strike_text[r.strike]}{_SEP}")

    def find(self, field: str, exchange: str, key: str) -> SymbolInfo | None:
        """The record whose `field` ("symbol", "brsymbol" or "token") is `key` (else its upper
        case) on `exchange`: ours, or for a broker symbol or token the broker's exchange too (ours
        wins; among the broker's, the first in rank order)."""
        ex = str(exchange).upper()
        info = self._find(field, ex, key)
        if info is None and not key.isupper():
            upper = key.upper()
            if upper != key:
                info = self._find(field, ex, upper)
        return info

    def _find(self, field: str, ex: str, key: str) -> SymbolInfo | None:
        # Symbol and broker symbol are upper-cased terms of the exact table, tokens are as they are.
        term = key if field == "token" else key.upper()
        value_of = _FIELDS[field]
        recs = self.records
        scope = self.exchanges.get(ex)
        if scope is not None:
            found = None
            for rid in _postings(scope.exact, term):
                if value_of(recs[rid]) == key:
                    found = recs[rid]  # the last in rank order, as a map filled in that order keeps
            if found is not None or field == "symbol":
                return found
        best = -1
        for scope in self.by_brexchange.get(ex, ()):
            for rid in _postings(scope.exact, term):  # ascending rids: rank order
                r = recs[rid]
                if r.brexchange == ex and value_of(r) == key:
                    if best < 0 or rid < best:
                        best = rid
                    break
        return recs[best] if best >= 0 else None

    def __len__(self) -> int:
        return len(self.records)

    def search(self, query: str, exchange: str | None = None, limit: int = DEFAULT_LIMIT) -> list[SymbolInfo]:
        words = list(dict.fromkeys(query.upper().split()))
        if not words or limit <= 0:
            return []
        if exchange is not None:
            scopes = [self.exchanges[exchange]] if exchange in self.exchanges else []
        else:
            scopes = list(self.exchanges.values())
        hits: list[tuple[int, int, int]] = []
        seen: set[int] = set()
        hay = self._hay

        plans = []
        for scope in scopes:
            # Drive the search with the most selective word the indexes know; the others filter
            # its candidates (a substring test on each record). Only when no word is known does a
            # scan drive. A number that is not a token or strike here rules the exchange out.
            est = {w: scope.estimate(w) for w in words}
            unknown = [w for w in words if not est[w]]
            if any(_is_number(w) for w in unknown):
                continue
            known = [w for w in words if est[w]]
            if known:
                primary = min(known, key=lambda w: (est[w], -len(w)))
            else:
                primary = max(unknown, key=len)
            plans.append((scope, primary, [w for w in words if w != primary]))

        for scope, primary, others in plans:
            found = 0

            def accept(rid: int, tier: int, sub: int, others: list[str] = others) -> bool:
                nonlocal found
                if rid in seen:
                    return False
                seen.add(rid)
                if others:
                    h = hay(rid)
                    for w in others:
                        if w not in h:
                            return False
                    # Among equals, records where the other words are whole fields ("NIFTY" the
                    # name) come before those where they are fragments ("NIFTY" in BANKNIFTY).
                    sub += 1000 * sum(1 for w in others if f"{_SEP}{w}{_SEP}" not in h)
                hits.append((tier, sub, rid))
                found += 1
                return found >= limit

            scope.indexed(primary, accept)

        # The substring tier can only add results ranked below every indexed one, so it runs only
        # when those did not fill the page, and not when the word named a symbol or token exactly, or
        # when several words already matched through the indexes (the user knows what they want;
        # fragments of other symbols would be noise). Numbers match tokens and strikes exactly or by prefix;
        # a digit run inside a symbol is a date or strike fragment, not worth a scan.
        exact_hit = any(tier == EXACT for tier, _, _ in hits)
        if len(words) == 1:
            scan = len(hits) < limit and not exact_hit
        else:
            scan = not hits  # several words that the indexes matched: fragments elsewhere are noise
        if scan:
            wanted = limit - len(hits)
            # The scan is driven by the longest word (the rarest, as a rule), the others filter.
            scan_word = max((w for w in words if not _is_number(w)), key=len, default=None)
            scan_others = [w for w in words if w != scan_word]
            # A multi-word scan is bounded: it examines at most SCAN_BUDGET candidates of the scan
            # word ("NIFTY 11350 CE" would otherwise test every NIFTY contract), so the lowest tier
            # may be incomplete for such queries; the indexed tiers above never are.
            budget = SCAN_BUDGET
            for scope, _primary, _others in plans:
                if scan_word is None or budget <= 0:
                    break
                others = scan_others
                sub_found = 0

                def accept_sub(rid: int, tier: int, sub: int, others: list[str] = others) -> bool:
                    nonlocal sub_found, budget
                    if rid in seen:
                        return False
                    seen.add(rid)
                    if others:
                        budget -= 1
                        if budget <= 0:
                            return True
                        h = hay(rid)
                        for w in others:
                            if w not in h:
                                return False
                    hits.append((tier, sub, rid))
                    sub_found += 1
                    return sub_found >= wanted

                scope.substring(scan_word, accept_sub)
        hits.sort()
        recs = self.records
        return [recs[rid] for _, _, rid in hits[:limit]]


def build_index(records: list[SymbolInfo], generation: int = 0) -> SymbolIndex:
    with _gc_paused():
        return SymbolIndex(records, generation)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while loading and building: they allocate about a million
    acyclic objects, and letting the collector walk them repeatedly triples the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_FIELDS = {name: operator.attrgetter(name) for name in ("symbol", "brsymbol", "token")}


def _rank_key(r: SymbolInfo) -> tuple[Any, ...]:
    return (
        _TYPE_RANK.get(r.instrumenttype, 9),
        _EXCHANGE_RANK.get(r.exchange, 99),
        r.expiry or dt.date.min,
        r.name or "",
        r.strike if r.strike is not None else Decimal(0),
        r.symbol,
    )


# --------------------------------------------------------------------------------------------
# Loading

# What a SymbolInfo is made of, in its fields' order (_make_records): the load and the lookups by query.
_COLUMNS = ("symbol, brsymbol, name, exchange, brexchange, token, expiry, strike, lotsize, instrumenttype, "
            "tick_size, freeze_qty, id")


def _load_records() -> list[SymbolInfo]:
    """All rows of sym_tokens in one SELECT (one snapshot), through the driver for speed."""
    dates: dict[Any, dt.date | None] = {None: None}
    decimals: dict[Any, Decimal | None] = {None: None}
    # One object per distinct name, exchange, instrument type and lot size (the driver makes a new
    # one per row: an underlying's name repeated over its 10,000 derivatives), and the symbol itself
    # for a broker symbol that spells it.
    shared: dict[Any, Any] = {}
    share = shared.setdefault
    out: list[SymbolInfo] = []
    sql = f"SELECT {_COLUMNS} FROM sym_tokens"  # noqa: S608
    with db.engine.connect() as conn:
        # Rows in batches rather than fetchall(): one statement (one snapshot) without a list of
        # every row held beside the records made from them.
        for rows in conn.exec_driver_sql(sql).partitions(2000):
            _make_records(rows, out, dates, decimals, share)
    return out


def _make_records(rows: Any, out: list[SymbolInfo], dates: dict[Any, dt.date | None],
                  decimals: dict[Any, Decimal | None], share: Any) -> None:
    for sym, brs, name, ex, brex, tok, exp, strike, lot, itype, tick, freeze, rid in rows:
        try:
            d = dates[exp]
        except KeyError:
            d = dates[exp] = exp if isinstance(exp, dt.date) else dt.date.fromisoformat(str(exp)[:10])
        try:
            s = decimals[strike]
        except KeyError:
            s = decimals[strike] = _decimal(strike)
        try:
            t = decimals[tick]
        except KeyError:
            t = decimals[tick] = _decimal(tick)
        out.append(SymbolInfo(sym, sym if brs == sym else brs, share(name, name) if name is not None else None,
                              share(ex, ex), share(brex, brex), str(tok), d, s, share(int(lot or 1), int(lot or 1)),
                              share(itype, itype),
                              t if t is not None else Decimal("0.05"),
                              share(freeze, freeze) if freeze is not None else None, rid))


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value.normalize() if value == value.to_integral_value() else value
    # SQLite hands NUMERIC back as int or float; repr() of a float is its shortest exact text.
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


class _State:
    """The index of one application, and what it takes to rebuild it safely."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.index: SymbolIndex | None = None
        self.generation = 0  # bumped by every invalidation
        self.lock = threading.Lock()
        _all_states.add(self)

    def invalidate(self, _key: str | None = None) -> None:
        # Lazy: the next lookup rebuilds while the others keep answering from the old snapshot.
        # No background thread: it would outlive its app (tests, shutdown) holding a connection.
        self.generation += 1

    def current(self) -> SymbolIndex:
        index = self.index
        if index is not None and index.generation == self.generation:
            return index
        if index is None:
            with self.lock:  # first build: everyone waits for it
                if self.index is None:
                    self.rebuild(locked=True)
                return self.index  # type: ignore[return-value]
        # Stale: one caller rebuilds, the rest keep using the old snapshot meanwhile.
        if self.lock.acquire(blocking=False):
            try:
                if self.index is not None and self.index.generation != self.generation:
                    self.rebuild(locked=True)
            finally:
                self.lock.release()
        return self.index  # type: ignore[return-value]

    def ready(self) -> SymbolIndex | None:
        """For point lookups: the index; None while another thread builds the first one (the
        start-up warm-up), so that the caller asks the database instead of waiting for it."""
        if self.index is None and self.lock.locked():
            return None
        return self.current()

    def rebuild(self, locked: bool = False) -> SymbolIndex:
        if not locked:
            with self.lock:
                return self.rebuild(locked=True)
        generation = self.generation
        if self.index is not None and self.index.generation == generation:
            return self.index
        t0 = time.perf_counter()
        _touch_namespace()
        with _gc_paused():
            index = build_index(_load_records(), generation)
        self.index = index  # the swap: one reference assignment
        log.info("symbol index: %d symbols in %.2f s", len(index), time.perf_counter() - t0)
        return index


def _touch_namespace() -> None:
    # The cache notifies subscribers of namespaces it holds locally (e.g. on clear()); reading a key
    # makes "symbols" one of them.
    try:
        cache.get(NAMESPACE, "index")
    except Exception:  # noqa: S110 - no cache configured (bare scripts, benchmarks): nothing to touch
        pass


_states_lock = threading.Lock()
_all_states: weakref.WeakSet[_State] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time (a build in the parent) would never be released
    # in the child; the child builds its own index when it needs one.
    global _states_lock
    _states_lock = threading.Lock()
    for state in list(_all_states):
        if state.lock.locked():
            state.lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _state(app: Any = None) -> _State:
    if app is None:
        app = current_app._get_current_object()
    state = app.extensions.get(EXTENSION_KEY)
    if state is None:
        with _states_lock:
            state = app.extensions.get(EXTENSION_KEY)
            if state is None:
                state = app.extensions[EXTENSION_KEY] = _State(app)
                try:
                    cache.current().subscribe(NAMESPACE, state.invalidate)
                except Exception:  # noqa: BLE001 - no cache: invalidation reaches this process only
                    log.debug("symbol index without cache subscription")
    return state


def init_db() -> None:
    """Subscribe the current application's index to "symbols" invalidations. The index itself is
    built on first use, in the process that uses it (not in a server's master process), or by the
    start-up warm-up (services.runtime.startup) once the first page is served."""
    _state()


def index() -> SymbolIndex:
    """The current index snapshot (hold it to answer several questions from one contract); builds
    it, or waits for the build under way, when there is none yet."""
    return _state().current()


def is_built() -> bool:
    """Whether this process holds an index (current or being replaced)."""
    return _state().index is not None


def invalidate() -> None:
    """Mark this process's index stale (the cache's invalidation does it in every process)."""
    _state().invalidate()


def reload() -> SymbolIndex:
    """Rebuild now, synchronously (tests, CLI)."""
    state = _state()
    index = state.index
    if index is not None and index.generation == state.generation:
        state.generation += 1  # not stale yet: force one; if stale, the pending rebuild is this one
    return state.rebuild()


# --------------------------------------------------------------------------------------------
# Lookups. `exchange` is our exchange (NSE, NFO, NSE_INDEX, ...); for broker symbols and tokens the
# broker's exchange is accepted as well. A key is matched as given, else in upper case. While the
# first index of the process is being built, lookups ask the database (same answers, indexed
# queries) rather than wait; search() waits for the index.

_DB_QUERIES = {
    # uq_sym_tokens_exchange_symbol; ix_sym_tokens_brexchange_brsymbol / _token (and the exchange)
    "symbol": f"SELECT {_COLUMNS} FROM sym_tokens WHERE exchange = :ex AND symbol IN (:k, :ku)",  # noqa: S608
    "brsymbol": f"SELECT {_COLUMNS} FROM sym_tokens WHERE (brexchange = :ex OR exchange = :ex) "  # noqa: S608
                "AND brsymbol IN (:k, :ku)",
    "token": f"SELECT {_COLUMNS} FROM sym_tokens WHERE (brexchange = :ex OR exchange = :ex) "  # noqa: S608
             "AND token IN (:k, :ku)",
}


def _db_find(field: str, exchange: str, key: str) -> SymbolInfo | None:
    """What SymbolIndex.find answers, from the table."""

    ex = str(exchange).upper()
    rows = db.session.execute(text(_DB_QUERIES[field]), {"ex": ex, "k": key, "ku": key.upper()}).all()
    if not rows:
        return None
    recs: list[SymbolInfo] = []
    shared: dict[Any, Any] = {}
    _make_records(rows, recs, {None: None}, {None: None}, shared.setdefault)
    value_of = _FIELDS[field]
    keys = [key] if key.isupper() or key.upper() == key else [key, key.upper()]
    for k in keys:
        matches = [r for r in recs if value_of(r) == k]
        ours = [r for r in matches if r.exchange == ex]
        if ours:
            return max(ours, key=_rank_key)
        theirs = [r for r in matches if r.brexchange == ex]
        if theirs:
            return min(theirs, key=_rank_key)
    return None


def _finder() -> Any:
    """find(field, exchange, key) over one snapshot: the index's, or the database's. An index built
    from an empty contract (a fresh install while its contract loads) or gone stale (another process
    committed a new contract; the rebuild is pending) answers what it knows, and the table what it
    does not: a symbol just loaded is never "not found" for that while."""
    state = _state()
    index = state.ready()
    if index is None:
        return _db_find
    if len(index) and index.generation == state.generation:
        return index.find

    def find(field: str, exchange: str, key: str) -> SymbolInfo | None:
        return index.find(field, exchange, key) or _db_find(field, exchange, key)

    return find


def _find(field: str, exchange: str, key: str) -> SymbolInfo | None:
    return _finder()(field, exchange, key)


def get_symbol_info(symbol: str, exchange: str) -> SymbolInfo | None:
    return _find("symbol", exchange, symbol)


def get_token(symbol: str, exchange: str) -> str | None:
    info = get_symbol_info(symbol, exchange)
    return info.token if info else None


def get_br_symbol(symbol: str, exchange: str) -> str | None:
    info = get_symbol_info(symbol, exchange)
    return info.brsymbol if info else None


def get_brexchange(symbol: str, exchange: str) -> str | None:
    info = get_symbol_info(symbol, exchange)
    return info.brexchange if info else None


def get_symbol(token: str, exchange: str) -> str | None:
    """Our symbol for a broker token."""
    info = _find("token", exchange, str(token))
    return info.symbol if info else None


def get_oa_symbol(brsymbol: str, exchange: str) -> str | None:
    """Our symbol for a broker symbol."""
    info = _find("brsymbol", exchange, brsymbol)
    return info.symbol if info else None


def get_symbol_info_by_token(token: str, exchange: str) -> SymbolInfo | None:
    return _find("token", exchange, str(token))


def get_symbol_info_bulk(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SymbolInfo | None]:
    """{(symbol, exchange): info or None}, all from one index snapshot."""
    find = _finder()
    return {(s, e): find("symbol", e, s) for s, e in pairs}


def get_tokens_bulk(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    return {k: (v.token if v else None) for k, v in get_symbol_info_bulk(pairs).items()}


def get_br_symbols_bulk(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    return {k: (v.brsymbol if v else None) for k, v in get_symbol_info_bulk(pairs).items()}


def get_symbols_bulk(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """{(token, exchange): our symbol or None}."""
    find = _finder()
    out = {}
    for token, exchange in pairs:
        info = find("token", exchange, str(token))
        out[(token, exchange)] = info.symbol if info else None
    return out


def get_oa_symbols_bulk(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """{(brsymbol, exchange): our symbol or None}."""
    find = _finder()
    out = {}
    for brsymbol, exchange in pairs:
        info = find("brsymbol", exchange, brsymbol)
        out[(brsymbol, exchange)] = info.symbol if info else None
    return out


def search(query: str, exchange: str | None = None, limit: int = DEFAULT_LIMIT) -> list[SymbolInfo]:
    """Symbols matching every word of `query`, best first, at most `limit` (capped at MAX_LIMIT)."""
    return index().search(query, str(exchange).upper() if exchange else None, min(max(limit, 0), MAX_LIMIT))


def count() -> int:
    """Symbols in the contract (from the database while the first index is being built, or while it is
    empty or stale)."""
    state = _state()
    index = state.ready()
    if index is None or not len(index) or index.generation != state.generation:
        return db.session.execute(text("SELECT count(*) FROM sym_tokens")).scalar_one()
    return len(index)


# --------------------------------------------------------------------------------------------
# A contract on its way

# How long an order waits for a running import before it is answered "loading, retry": the sample
# contract loads in about a second; a broker's full contract may take longer than a caller should wait.
LOADING_WAIT = 5.0
_LOADING_POLL = 0.1
# A "running" import status older than this is a crashed import (as services.market.master_contract says).
_STALE_IMPORT = dt.timedelta(hours=1)


class ContractLoading(LookupError):
    """The master contract is being loaded (or is due): a symbol not found may be in it. Retry shortly."""

    def __init__(self) -> None:
        super().__init__("master contract loading, retry")


def loading(now: dt.datetime | None = None) -> str | None:
    """Whether a master contract is on its way: "running" while an import runs in any process,
    "due" while none is loaded, none has been tried yet and the offline sample contract is on
    (SAMPLE_CONTRACT: the first page a process serves starts it); else None."""
    now = now or utcnow()
    statuses = db.session.execute(select(MasterContractStatus.state, MasterContractStatus.started_at)).all()
    if any(state == ImportState.RUNNING and started is not None and now - started < _STALE_IMPORT
           for state, started in statuses):
        return "running"
    if not current_app.config.get("SAMPLE_CONTRACT"):
        return None
    if any(state in (ImportState.DONE, ImportState.FAILED) for state, _started in statuses):
        return None  # one was loaded (or the sample failed: its error is logged), and is what there is
    return None if db.session.execute(select(exists().select_from(SymToken))).scalar() else "due"


def get_symbol_info_waiting(symbol: str, exchange: str, wait: float = LOADING_WAIT) -> SymbolInfo | None:
    """get_symbol_info(), for a caller that must not answer "not found" for a symbol being loaded:
    while an import runs, a symbol not found is looked for again until it ends (at most `wait`
    seconds); a symbol still not found while the contract is on its way (the import runs on, or
    none is loaded yet) raises ContractLoading. None: not in the loaded contract."""
    info = get_symbol_info(symbol, exchange)
    if info is not None:
        return info
    give_up = time.monotonic() + wait
    while (state := loading()) == "running" and time.monotonic() < give_up and not _holds_sqlite_write():
        time.sleep(_LOADING_POLL)
        if (info := _db_find("symbol", exchange, symbol)) is not None:
            return info
    if state is not None:
        raise ContractLoading()
    return _db_find("symbol", exchange, symbol)  # it may have been loaded since the last look


def _holds_sqlite_write() -> bool:
    """Whether this session holds SQLite's write lock, which the import waits for: then do not wait."""
    connection = db.session.connection()
    return connection.dialect.name == "sqlite" and connection.connection.driver_connection.in_transaction
