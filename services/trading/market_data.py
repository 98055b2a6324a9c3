"""Market data and margins through the call's venue: many quotes at once, depth, the master contract's rows,
and the margin of a basket, in the data shapes of docs/api.md.

Analyze mode answers from the simulator and the SPAN approximation of services.trading.paper.span; live mode
asks the broker (one call for many quotes; its basket margin API).
"""

from __future__ import annotations

import csv
import io

from services.market import quotes, symbol_index
from services.market.symbol_index import SymbolInfo
from services.trading.errors import OrderError
from services.trading.journal import OrderInput
from services.trading.orders import through
from services.trading.venues import Venue

# The `instruments` rows: the `search` fields but freeze_qty (OpenAlgo's instruments answer has none).
INSTRUMENT_FIELDS = ("symbol", "brsymbol", "name", "exchange", "brexchange", "token", "expiry", "strike", "lotsize",
                     "instrumenttype", "tick_size")


def multiquotes(venue: Venue, pairs: list[tuple[str, str]]) -> tuple[list[dict], list[dict]]:
    """(results, invalid): a result per asked pair in request order, `{symbol, exchange, data}` or
    `{symbol, exchange, error}`; `invalid` lists the pairs that are not in the master contract."""
    infos = symbol_index.get_symbol_info_bulk(pairs)
    known = list({(i.symbol, i.exchange): i for i in infos.values() if i is not None}.values())
    found = through(venue).quotes_many(venue, known) if known else {}
    results, invalid = [], []
    for symbol, exchange in pairs:
        info = infos.get((symbol, exchange))
        if info is None:
            invalid.append({"symbol": symbol, "exchange": exchange})
            results.append({"symbol": symbol, "exchange": exchange,
                            "error": f"Symbol {symbol} not found in exchange {exchange}"})
            continue
        quote = found.get((info.symbol, info.exchange))
        if quote is None:
            results.append({"symbol": symbol, "exchange": exchange, "error": f"No quote for {symbol} on {exchange}"})
        else:
            results.append({"symbol": symbol, "exchange": exchange, "data": quote.to_dict()})
    return results, invalid


def depth(venue: Venue, symbol: str, exchange: str) -> dict:
    """`depth`'s data: the quote's fields, the last trade's quantity, the totals and five levels a side."""
    info = symbol_index.get_symbol_info(symbol, exchange)
    if info is None:
        raise quotes.UnknownSymbolError(f"Symbol {symbol} not found in exchange {exchange}")
    d = through(venue).depth(venue, info)
    q = d.quote

    def side(levels: tuple) -> list[dict]:
        out = [{"price": float(lv.price), "quantity": int(lv.quantity)} for lv in levels[:5]]
        return out + [{"price": 0.0, "quantity": 0}] * (5 - len(out))  # five a side, as OpenAlgo sends

    return {"open": float(q.open), "high": float(q.high), "low": float(q.low), "ltp": float(q.ltp), "ltq": d.ltq,
            "prev_close": float(q.prev_close), "volume": int(q.volume), "oi": int(q.oi),
            "totalbuyqty": d.total_buy_qty, "totalsellqty": d.total_sell_qty, "bids": side(d.bids),
            "asks": side(d.asks)}


def instruments(exchange: str) -> list[dict]:
    """The master contract's rows of one exchange, in the symbol index's order."""
    rows = []
    for info in symbol_index.index().records:
        if info.exchange == exchange:
            d = info.to_dict()
            rows.append({k: d[k] for k in INSTRUMENT_FIELDS})
    return rows


def instruments_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=INSTRUMENT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def margin(venue: Venue, legs: list[OrderInput]) -> dict:
    """The margin of a basket of positions; 404 names the first symbol not in the master contract."""
    infos: list[tuple[SymbolInfo, OrderInput]] = []
    for inp in legs:
        info = symbol_index.get_symbol_info(inp.symbol, inp.exchange)
        if info is None:
            raise OrderError(f"Symbol {inp.symbol} not found in exchange {inp.exchange}", 404)
        infos.append((info, inp))
    return through(venue).margin(venue, infos)
