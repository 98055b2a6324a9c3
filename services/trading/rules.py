"""The exchange's order rules: what an exchange would refuse, refused here first (issue #13).

Checked for every order in both modes before the venue sees it (services.trading.orders `_tradable`),
so a live order that breaks one never reaches the broker and an analyze-mode order is refused as the
exchange would refuse it. Each refusal is an OrderError 400 whose message names the rule and the
allowed value.

- Lots: on the derivative exchanges (vocabulary.DERIVATIVE_EXCHANGES: F&O, currency, commodity) a
  quantity is a whole number of the contract's lots (`SymbolInfo.lotsize`).
- Freeze quantity: an order above the contract's freeze quantity (`SymbolInfo.freeze_qty`) is refused
  with a pointer to splitorder; a split's splitsize above it is refused too. A contract without one
  (NULL: its source does not publish it, e.g. a Zerodha import) is not checked.
- Prices: a LIMIT or SL price, and an SL or SL-M trigger price, are above zero and on the contract's
  tick (`SymbolInfo.tick_size`), in Decimal arithmetic.
- Stop-loss sides: a BUY SL triggers at or below its limit price (trigger_price <= price), a SELL SL
  at or above it (trigger_price >= price); against the last traded price a BUY stop (SL, SL-M)
  triggers above the market (trigger_price > ltp) and a SELL stop below it (trigger_price < ltp). The
  market rule needs a quote: in analyze mode the one the analyze-mode exchange fills against
  (services.market.quotes.get_quote); in live mode the broker applies its own, so none is fetched.

Everything above `enforce()` is pure: OrderInput + SymbolInfo (+ a last traded price) in, an
OrderError or nothing out.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext
from typing import TYPE_CHECKING

from services.market import quotes
from services.market.symbol_index import SymbolInfo
from services.trading.errors import OrderError
from services.trading.journal import OrderInput
from vocabulary import DERIVATIVE_EXCHANGES, Action, needs_price, needs_trigger

if TYPE_CHECKING:
    from services.trading.venues import Venue

__all__ = ["check", "enforce", "freeze", "lots", "on_tick", "positive", "stop_against_market", "stop_sides"]

_PREC = 200  # digits for the tick arithmetic: exact for any price the API accepts


# -- formatting ------------------------------------------------------------------------------------------
def _dec(v: object) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v))


def _plain(d: Decimal) -> str:
    """A number as written, without an exponent: 1000.03, 0.05, 1E-30 -> 0.000...1."""
    return format(d, "f")


def _tick_text(tick: Decimal) -> str:
    return format(tick.normalize(), "f")


def _on_tick_text(d: Decimal, tick: Decimal) -> str:
    """A price on the tick, with the tick's decimals: 1000 on 0.05 -> 1000.00."""
    exp = min(tick.normalize().as_tuple().exponent, 0)
    with localcontext() as ctx:
        ctx.prec = _PREC
        return format(d.quantize(Decimal(1).scaleb(exp)), "f")


# -- the rules -----------------------------------------------------------------------------------------
def lots(info: SymbolInfo, quantity: int, field: str = "quantity") -> None:
    """A derivative's quantity (or position_size, splitsize) is a whole number of its lots."""
    lot = int(info.lotsize or 1)
    if info.exchange not in DERIVATIVE_EXCHANGES or lot <= 1 or quantity % lot == 0:
        return
    size = abs(int(quantity))
    below = size // lot * lot
    examples = (below, below + lot) if below else (lot, 2 * lot)
    raise OrderError(f"{field} {quantity} is not a whole number of lots: {info.symbol} trades in lots of {lot} "
                     f"(e.g. {examples[0]} or {examples[1]})", 400)


def freeze(info: SymbolInfo, quantity: int, freeze_qty: int | None = None, field: str = "quantity") -> None:
    """The exchange's freeze quantity: an order (or a split's splitsize) above it is refused, pointing to
    splitorder. Nothing is checked without one (`freeze_qty` None: not known)."""
    if freeze_qty is None or freeze_qty <= 0 or abs(quantity) <= freeze_qty:
        return
    if field == "splitsize":
        raise OrderError(f"splitsize {quantity} is above the freeze quantity of {info.symbol}: at most {freeze_qty} "
                         f"in one order; use a splitsize of at most {freeze_qty}", 400)
    raise OrderError(f"{field} {quantity} is above the freeze quantity of {info.symbol}: at most {freeze_qty} "
                     f"in one order; use splitorder with a splitsize of at most {freeze_qty}", 400)


def positive(inp: OrderInput) -> None:
    """A LIMIT or SL order's price, and an SL or SL-M order's trigger price, are above zero."""
    for field, value, needed in (("price", inp.price, needs_price(inp.pricetype)),
                                 ("trigger_price", inp.trigger_price, needs_trigger(inp.pricetype))):
        value = _dec(value)
        if needed and not (value.is_finite() and value > 0):
            raise OrderError(f"{field} {_plain(value)} of a {inp.pricetype} order must be above zero", 400)


def _off_tick(value: Decimal, tick: Decimal) -> bool:
    with localcontext() as ctx:
        ctx.prec = _PREC
        try:
            return value % tick != 0
        except InvalidOperation:
            return True


def on_tick(inp: OrderInput, info: SymbolInfo) -> None:
    """The prices the order uses (price of LIMIT/SL, trigger_price of SL/SL-M) are multiples of the tick."""
    tick = _dec(info.tick_size) if info.tick_size is not None else Decimal(0)
    if not (tick.is_finite() and tick > 0):
        return  # a contract without a tick: nothing to check against
    for field, value, used in (("price", inp.price, needs_price(inp.pricetype)),
                               ("trigger_price", inp.trigger_price, needs_trigger(inp.pricetype))):
        value = _dec(value)
        if not used or not _off_tick(value, tick):
            continue
        with localcontext() as ctx:
            ctx.prec = _PREC
            below = value // tick * tick
            above = below + tick
        use = (f"{_on_tick_text(below, tick)} or {_on_tick_text(above, tick)}" if below > 0
               else _on_tick_text(above, tick))
        raise OrderError(f"{field} {_plain(value)} is not on the tick of {_tick_text(tick)}: use {use}", 400)


def stop_sides(inp: OrderInput) -> None:
    """An SL order's trigger against its own limit price: BUY trigger_price <= price, SELL trigger_price >= price."""
    if not (needs_price(inp.pricetype) and needs_trigger(inp.pricetype)):
        return
    price, trigger = _dec(inp.price), _dec(inp.trigger_price)
    if inp.action == Action.BUY and trigger > price:
        raise OrderError(f"trigger_price {_plain(trigger)} is above the price {_plain(price)} of a BUY {inp.pricetype} "
                         f"order: a BUY stop-loss triggers at or below its limit price "
                         f"(trigger_price <= {_plain(price)})", 400)
    if inp.action == Action.SELL and trigger < price:
        raise OrderError(f"trigger_price {_plain(trigger)} is below the price {_plain(price)} of a SELL "
                         f"{inp.pricetype} order: a SELL stop-loss triggers at or above its limit price "
                         f"(trigger_price >= {_plain(price)})", 400)


def stop_against_market(inp: OrderInput, ltp: Decimal | None) -> None:
    """A stop (SL, SL-M) against the last traded price: a BUY triggers above it, a SELL below it (a stop on
    the wrong side would trigger at once). Nothing to check without a price."""
    if ltp is None or not needs_trigger(inp.pricetype):
        return
    ltp, trigger = _dec(ltp).normalize(), _dec(inp.trigger_price)  # a stored quote's 1500.0000 reads 1500
    limited = needs_price(inp.pricetype)
    price = _plain(_dec(inp.price))
    if inp.action == Action.BUY and trigger <= ltp:
        allowed = f"{_plain(ltp)} < trigger_price <= {price}" if limited else f"trigger_price > {_plain(ltp)}"
        raise OrderError(f"trigger_price {_plain(trigger)} of a BUY {inp.pricetype} order must be above the last "
                         f"traded price {_plain(ltp)}: a BUY stop triggers above the market (allowed: {allowed})", 400)
    if inp.action == Action.SELL and trigger >= ltp:
        allowed = f"{price} <= trigger_price < {_plain(ltp)}" if limited else f"trigger_price < {_plain(ltp)}"
        raise OrderError(f"trigger_price {_plain(trigger)} of a SELL {inp.pricetype} order must be below the last "
                         f"traded price {_plain(ltp)}: a SELL stop triggers below the market (allowed: {allowed})",
                         400)


def check(inp: OrderInput, info: SymbolInfo, *, ltp: Decimal | None = None, freeze_qty: int | None = None,
          sided: bool = True) -> None:
    """Every rule, in order: lots, freeze quantity, prices above zero, on the tick, stop-loss sides, and the
    stop against `ltp` when one is given. `sided=False` leaves out the rules that depend on the order's side
    (a smart order's side is known only once the position is read)."""
    lots(info, inp.quantity)
    freeze(info, inp.quantity, freeze_qty)
    positive(inp)
    on_tick(inp, info)
    if sided:
        stop_sides(inp)
        stop_against_market(inp, ltp)


# -- at the venue --------------------------------------------------------------------------------------------
def enforce(venue: Venue | None, inp: OrderInput, info: SymbolInfo, *, sided: bool = True,
            whole: bool = True) -> None:
    """check() for an order at `venue`, against the contract's freeze quantity. In analyze mode a stop is also
    checked against the last traded price of the quote the analyze-mode exchange uses; in live mode the broker
    applies that rule itself (no quote is fetched: nothing reaches the broker before the order does).
    `whole=False` for a split's total, which no single order carries: its splitsize is checked instead."""
    check(inp, info, sided=sided, freeze_qty=info.freeze_qty if whole else None)
    if sided and venue is not None and venue.is_analyze and needs_trigger(inp.pricetype):
        stop_against_market(inp, quotes.get_quote(info.symbol, info.exchange).ltp)
