"""The paper broker's arithmetic: when an order fills and at what price, the margin a product blocks,
and what a fill does to a position and its P&L. Pure code on Decimals: no database, no clock, no
configuration (the service hands in the quote and the leverage, and persists what comes back).

Fill rules (the quote is the latest ltp with bid/ask when known):
- MARKET fills at once at the ask (BUY) or the bid (SELL), or at the ltp when that side is 0.
- LIMIT fills when the price crosses (BUY: ltp <= price; SELL: ltp >= price), at the limit price or
  the market price if that is better; otherwise it stays open.
- SL waits (trigger pending) until the ltp crosses the trigger (BUY: ltp >= trigger; SELL:
  ltp <= trigger), then is a LIMIT at its price. SL-M, once triggered, fills at market.

Margin is blocked per position, on its value at the average price: CNC the full value, MIS value /
MIS leverage, NRML value / NRML leverage. Funds available = opening balance + realized P&L - margin
in use; reducing a position releases its margin and books the realized P&L.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal

from vocabulary import Action, OrderStatus, PriceType, Product, needs_trigger

ZERO = Decimal(0)
PRICE_STEP = Decimal("0.0001")  # the journal's precision (Numeric(18, 4))


def q4(value: Decimal) -> Decimal:
    return value.quantize(PRICE_STEP, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Quote:
    ltp: Decimal
    bid: Decimal = ZERO
    ask: Decimal = ZERO

    def market_price(self, action: str) -> Decimal:
        """What a market order pays: the ask to buy, the bid to sell, the ltp when that side is empty."""
        side = self.ask if action == Action.BUY else self.bid
        return side if side > 0 else self.ltp


@dataclass(frozen=True, slots=True)
class Decision:
    status: OrderStatus  # complete | open | trigger pending
    price: Decimal | None = None  # the fill price when complete


def decide(action: str, pricetype: str, price: Decimal, trigger_price: Decimal, quote: Quote, *,
           triggered: bool = False) -> Decision:
    """What happens to an order against `quote` now. `triggered`: an SL/SL-M already triggered earlier."""
    ltp = quote.ltp
    buy = action == Action.BUY
    if needs_trigger(pricetype) and not triggered:
        triggered = ltp >= trigger_price if buy else ltp <= trigger_price
        if not triggered:
            return Decision(OrderStatus.TRIGGER_PENDING)
    if pricetype in (PriceType.MARKET, PriceType.SL_M):
        return Decision(OrderStatus.COMPLETE, quote.market_price(action))
    # LIMIT, or a triggered SL: a limit order at `price`.
    crossed = ltp <= price if buy else ltp >= price
    if not crossed:
        return Decision(OrderStatus.OPEN)
    market = quote.market_price(action)
    return Decision(OrderStatus.COMPLETE, min(price, market) if buy else max(price, market))


@dataclass(frozen=True, slots=True)
class Leverage:
    mis: Decimal = Decimal(5)
    nrml: Decimal = Decimal(1)

    def margin(self, product: str, value: Decimal) -> Decimal:
        """Margin blocked for a position worth `value` (its absolute value) in `product`."""
        value = abs(value)
        if product == Product.MIS:
            return q4(value / self.mis)
        if product == Product.NRML:
            return q4(value / self.nrml)
        return q4(value)  # CNC: delivery, paid in full


@dataclass(frozen=True, slots=True)
class PositionState:
    quantity: Decimal = ZERO  # signed net: negative is short
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    buy_quantity: Decimal = ZERO
    buy_value: Decimal = ZERO
    sell_quantity: Decimal = ZERO
    sell_value: Decimal = ZERO
    charges: Decimal = ZERO  # of every fill of the position (services.trading.paper.charges)

    def unrealized(self, ltp: Decimal) -> Decimal:
        """Mark-to-market of the open quantity (negative quantity: gains when the price falls)."""
        if not self.quantity:
            return ZERO
        return q4((ltp - self.average_price) * self.quantity)

    def margin(self, product: str, leverage: Leverage) -> Decimal:
        return leverage.margin(product, self.quantity * self.average_price)


def apply_fill(pos: PositionState, action: str, quantity: Decimal, price: Decimal) -> tuple[PositionState, Decimal]:
    """The position after a fill, and the P&L the fill realized.

    Adding to a position (or opening one) moves the average price; reducing it realizes
    (price - average) per unit closed (sign-adjusted for shorts) and keeps the average; going through
    zero closes the old side and opens the rest at the fill price.
    """
    quantity = Decimal(quantity)
    if quantity <= 0:
        raise ValueError("fill quantity must be positive")
    signed = quantity if action == Action.BUY else -quantity
    q, avg = pos.quantity, pos.average_price
    realized = ZERO
    if q == 0 or (q > 0) == (signed > 0):
        new_q = q + signed
        new_avg = q4((abs(q) * avg + quantity * price) / abs(new_q))
    else:
        closed = min(abs(q), quantity)
        direction = 1 if q > 0 else -1
        realized = q4(closed * (price - avg) * direction)
        new_q = q + signed
        if new_q == 0:
            new_avg = ZERO
        elif (new_q > 0) == (q > 0):
            new_avg = avg
        else:  # reversed through zero: the remainder is a new position at the fill price
            new_avg = price
    value = q4(quantity * price)
    if action == Action.BUY:
        flows = {"buy_quantity": pos.buy_quantity + quantity, "buy_value": pos.buy_value + value}
    else:
        flows = {"sell_quantity": pos.sell_quantity + quantity, "sell_value": pos.sell_value + value}
    return replace(pos, quantity=new_q, average_price=new_avg, realized_pnl=pos.realized_pnl + realized,
                   **flows), realized


@dataclass(frozen=True, slots=True)
class FundsState:
    opening_balance: Decimal
    realized_pnl: Decimal = ZERO
    used_margin: Decimal = ZERO

    @property
    def available(self) -> Decimal:
        return self.opening_balance + self.realized_pnl - self.used_margin


@dataclass(frozen=True, slots=True)
class FillResult:
    position: PositionState
    funds: FundsState
    realized: Decimal
    margin_change: Decimal  # > 0 blocked, < 0 released


class InsufficientFunds(Exception):
    def __init__(self, required: Decimal, available: Decimal):
        super().__init__(f"Insufficient funds: margin required {required:.2f}, available {available:.2f}")
        self.required = required
        self.available = available


class CannotSell(Exception):
    """A CNC sell of more than the long position (no short selling for delivery)."""


def margin_required(pos: PositionState, product: str, action: str, quantity: Decimal, price: Decimal,
                    leverage: Leverage) -> Decimal:
    """Extra margin a fill would block (negative when it releases margin)."""
    after, _ = apply_fill(pos, action, quantity, price)
    return after.margin(product, leverage) - pos.margin(product, leverage)


def check_order(pos: PositionState, funds: FundsState, product: str, action: str, quantity: Decimal,
                price: Decimal, leverage: Leverage, charges: Decimal = ZERO) -> None:
    """Raise when the order could not fill: CNC short sale, or not enough funds for its margin (and its
    charges, when it blocks margin)."""
    if product == Product.CNC and action == Action.SELL and quantity > max(pos.quantity, ZERO):
        raise CannotSell(f"CNC sell of {quantity} exceeds the long CNC position of {max(pos.quantity, ZERO)}")
    required = margin_required(pos, product, action, quantity, price, leverage)
    if required > 0 and required + charges > funds.available:
        raise InsufficientFunds(required + charges, funds.available)


def fill(pos: PositionState, funds: FundsState, product: str, action: str, quantity: Decimal, price: Decimal,
         leverage: Leverage, charges: Decimal = ZERO) -> FillResult:
    """Apply a fill to a position and the funds (checks first: raises InsufficientFunds/CannotSell).

    `charges` (the fill's brokerage, taxes and fees) are added to the position's and taken from the
    account's realized P&L: funds are net of charges; the position keeps its gross realized P&L and its
    charges apart."""
    check_order(pos, funds, product, action, quantity, price, leverage, charges)
    after, realized = apply_fill(pos, action, quantity, price)
    if charges:
        after = replace(after, charges=after.charges + charges)
    change = after.margin(product, leverage) - pos.margin(product, leverage)
    new_funds = replace(funds, realized_pnl=funds.realized_pnl + realized - charges,
                        used_margin=funds.used_margin + change)
    return FillResult(after, new_funds, realized, change)
