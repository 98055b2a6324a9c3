"""The trading vocabulary: exchanges, actions, price types, products, order statuses, modes, limits.

The lowest layer: it imports nothing from the project, and everything may import it (the API schemas,
the services, the brokers, the database enums, the templates). Each vocabulary is an `enum.StrEnum`
whose values are the OpenAlgo spellings: what the REST API accepts, what the database stores (as
strings with a CHECK constraint, see `database.enums.str_enum`) and what the pages show. A member
compares equal to its value (`Action.BUY == "BUY"`), so code that holds plain strings keeps working.
The groups (INDEX_EXCHANGES, OPEN_STATUSES, ...) are tuples of members: ordered, so SQL `IN` lists and
messages come out the same every run, and `"open" in OPEN_STATUSES` works on plain strings.

Changing a value here changes stored data and the wire format: it needs a migration and an API note.
"""

from __future__ import annotations

import enum
from decimal import Decimal

__all__ = [
    "ACTIONS",
    "CASH_EXCHANGES",
    "DEFAULT_EXCHANGE_TIMEZONE",
    "DERIVATIVE_EXCHANGES",
    "EXCHANGES",
    "INDEX_EXCHANGES",
    "MAX_BASKET",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "MAX_SPLIT_ORDERS",
    "MODES",
    "OPEN_STATUSES",
    "ORDER_STATUSES",
    "PRICED_TYPES",
    "PRICE_TYPES",
    "PRODUCTS",
    "TRADABLE_EXCHANGES",
    "TRIGGERED_TYPES",
    "Action",
    "Exchange",
    "Mode",
    "OrderStatus",
    "PriceType",
    "Product",
    "StrEnum",
    "needs_price",
    "needs_trigger",
]


class StrEnum(enum.StrEnum):
    """A `str` enum whose members are their values; `values()` lists them in declaration order."""

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


# -- exchanges -----------------------------------------------------------------------------------------
class Exchange(StrEnum):
    NSE = "NSE"  # NSE equity (cash)
    BSE = "BSE"  # BSE equity (cash)
    NFO = "NFO"  # NSE futures and options
    BFO = "BFO"  # BSE futures and options
    CDS = "CDS"  # NSE currency derivatives
    BCD = "BCD"  # BSE currency derivatives
    MCX = "MCX"  # commodity derivatives
    NCDEX = "NCDEX"  # agricultural commodity derivatives
    NSE_INDEX = "NSE_INDEX"  # NSE indices: quotes only, not tradable
    BSE_INDEX = "BSE_INDEX"  # BSE indices: quotes only, not tradable


EXCHANGES: tuple[str, ...] = tuple(Exchange.values())
# Index "exchanges" carry index values for quotes and option underlyings; no order can be placed on them.
INDEX_EXCHANGES: tuple[Exchange, ...] = (Exchange.NSE_INDEX, Exchange.BSE_INDEX)
# The exchanges an order can be placed on, in declaration order.
TRADABLE_EXCHANGES: tuple[str, ...] = tuple(e.value for e in Exchange if e not in INDEX_EXCHANGES)
# Cash segments: equity delivery (CNC) and intraday (MIS).
CASH_EXCHANGES: tuple[Exchange, ...] = (Exchange.NSE, Exchange.BSE)
# Derivative segments: contracts with an expiry (futures, options), carried overnight as NRML.
DERIVATIVE_EXCHANGES: tuple[Exchange, ...] = (
    Exchange.NFO, Exchange.BFO, Exchange.CDS, Exchange.BCD, Exchange.MCX, Exchange.NCDEX,
)


# -- orders --------------------------------------------------------------------------------------------
class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


ACTIONS: tuple[str, ...] = tuple(Action.values())


class PriceType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"  # stop-loss limit: a trigger, then a limit order at `price`
    SL_M = "SL-M"  # stop-loss market: a trigger, then a market order


PRICE_TYPES: tuple[str, ...] = tuple(PriceType.values())
# Price types whose order carries a limit price (> 0).
PRICED_TYPES: tuple[PriceType, ...] = (PriceType.LIMIT, PriceType.SL)
# Price types whose order waits for a trigger price (> 0) before it becomes live.
TRIGGERED_TYPES: tuple[PriceType, ...] = (PriceType.SL, PriceType.SL_M)


def needs_price(pricetype: str) -> bool:
    """True when an order of `pricetype` needs a limit price."""
    return pricetype in PRICED_TYPES


def needs_trigger(pricetype: str) -> bool:
    """True when an order of `pricetype` needs a trigger price."""
    return pricetype in TRIGGERED_TYPES


class Product(StrEnum):
    MIS = "MIS"  # intraday, squared off by the session's end
    NRML = "NRML"  # derivatives carried overnight
    CNC = "CNC"  # cash and carry: equity delivery


PRODUCTS: tuple[str, ...] = tuple(Product.values())


class OrderStatus(StrEnum):
    OPEN = "open"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    TRIGGER_PENDING = "trigger pending"


ORDER_STATUSES: tuple[str, ...] = tuple(OrderStatus.values())
# Statuses of an order still working at the exchange: it can be modified or cancelled.
OPEN_STATUSES: tuple[OrderStatus, ...] = (OrderStatus.OPEN, OrderStatus.TRIGGER_PENDING)


# -- modes ---------------------------------------------------------------------------------------------
class Mode(StrEnum):
    LIVE = "live"  # orders go to the user's broker
    ANALYZE = "analyze"  # orders go to the analyze-mode (paper) exchange


MODES: tuple[str, ...] = tuple(Mode.values())


# -- limits shared by the REST API and the services ------------------------------------------------------
MAX_QUANTITY = 1_000_000_000  # shares/units in one order
MAX_PRICE = Decimal(10) ** 12  # a price or trigger price
MAX_BASKET = 100  # orders in one basketorder call
MAX_SPLIT_ORDERS = 100  # orders one splitorder call may make

# The exchanges' time zone; the `EXCHANGE_TIMEZONE` setting's default (config.py). Services read the
# setting (config.exchange_tz), never this constant.
DEFAULT_EXCHANGE_TIMEZONE = "Asia/Kolkata"
