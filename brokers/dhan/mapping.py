"""DhanHQ v2 codes and records, mapped to ours.

Field names and values are those of the DhanHQ v2 documentation (orders, portfolio, funds, market
quote, historical data, margin calculator, annexure, instrument list). Dhan addresses every
instrument by its `securityId` within an `exchangeSegment` (NSE_EQ, NSE_FNO, IDX_I, ...); its books
name instruments by the exchange trading symbol of the compact instrument list
(SEM_TRADING_SYMBOL), which is therefore the broker symbol of our master contract. Times without a
zone are Dhan's: IST (`DHAN_TZ`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from brokers.base import (
    BrokerCandle,
    BrokerError,
    BrokerFunds,
    BrokerHolding,
    BrokerOrder,
    BrokerPosition,
    BrokerQuote,
    BrokerTrade,
    ErrorKind,
    exchange_time,
    to_decimal,
)
from brokers.common import kite_shaped_quote, to_int
from vocabulary import OrderStatus, PriceType, Product

log = logging.getLogger("algobridge.broker")

# Dhan documents its times (order, trade and quote times, token validity) in Indian Standard Time.
DHAN_TZ = ZoneInfo("Asia/Kolkata")
VALIDITY = "DAY"

# Our exchange (the master contract's brexchange) <-> Dhan's exchange segment (annexure).
SEGMENTS: dict[str, str] = {
    "NSE": "NSE_EQ",
    "BSE": "BSE_EQ",
    "NFO": "NSE_FNO",
    "BFO": "BSE_FNO",
    "MCX": "MCX_COMM",
    "CDS": "NSE_CURRENCY",
    "BCD": "BSE_CURRENCY",
}
EXCHANGES: dict[str, str] = {segment: exchange for exchange, segment in SEGMENTS.items()}
INDEX_SEGMENT = "IDX_I"
# An index's master-contract token: Dhan numbers indices in their own segment (IDX_I), whose ids overlap
# the equities' (IDX_I 13 is NIFTY, NSE_EQ 13 a company), and our contract stores an index under its
# exchange (NSE/BSE) like an equity. The token says which segment the id belongs to.
INDEX_TOKEN_PREFIX = "IDX_I:"  # noqa: S105 - a segment name, not a secret

# Our codes <-> Dhan's. Dhan's MTF is a delivery position; CO and BO are intraday (annexure).
PRODUCTS: dict[str, str] = {Product.CNC: "CNC", Product.MIS: "INTRADAY", Product.NRML: "MARGIN"}
_OUR_PRODUCTS: dict[str, str] = {"CNC": "CNC", "INTRADAY": "MIS", "MARGIN": "NRML", "MTF": "CNC", "CO": "MIS",
                                 "BO": "MIS"}
ORDER_TYPES: dict[str, str] = {PriceType.MARKET: "MARKET", PriceType.LIMIT: "LIMIT", PriceType.SL: "STOP_LOSS",
                               PriceType.SL_M: "STOP_LOSS_MARKET"}
_OUR_ORDER_TYPES: dict[str, str] = {value: key for key, value in ORDER_TYPES.items()}

# Dhan's order status (annexure) -> ours. TRANSIT (on its way to the exchange), PENDING and PART_TRADED
# are live orders; CLOSED and TRIGGERED belong to super orders, whose legs live on.
_STATUSES: dict[str, OrderStatus] = {
    "TRANSIT": OrderStatus.OPEN,
    "PENDING": OrderStatus.OPEN,
    "PART_TRADED": OrderStatus.OPEN,
    "CLOSED": OrderStatus.OPEN,
    "TRIGGERED": OrderStatus.OPEN,
    "TRADED": OrderStatus.COMPLETE,
    "CANCELLED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
}

# The index underlyings of NSE and BSE derivatives: Dhan's history requests name the instrument kind
# (FUTIDX vs FUTSTK, OPTIDX vs OPTSTK).
INDEX_UNDERLYINGS = frozenset({"NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50", "SENSEX", "BANKEX",
                               "SENSEX50"})


def segment(exchange: str, token: str = "") -> str:
    """Dhan's exchange segment of an instrument (our exchange, its master-contract token)."""
    if str(token).startswith(INDEX_TOKEN_PREFIX):
        return INDEX_SEGMENT
    try:
        return SEGMENTS[str(exchange).upper()]
    except KeyError:
        raise BrokerError(f"Dhan does not trade on {exchange!r}", status=400, kind=ErrorKind.INPUT) from None


def security_id(token: str) -> str:
    """The securityId inside a master-contract token (see INDEX_TOKEN_PREFIX); digits only, or an INPUT error."""
    value = str(token or "").strip()
    if value.startswith(INDEX_TOKEN_PREFIX):
        value = value[len(INDEX_TOKEN_PREFIX):]
    if not value.isdigit() or len(value) > 20:
        raise BrokerError("No Dhan security id for this instrument (load the Dhan master contract)", status=400,
                          kind=ErrorKind.INPUT)
    return value


def exchange_of(dhan_segment: str | None) -> str:
    value = str(dhan_segment or "").upper()
    if value == INDEX_SEGMENT:
        return "NSE"
    return EXCHANGES.get(value, value)


def order_status(dhan_status: str | None) -> OrderStatus:
    status = (dhan_status or "").strip().upper()
    if status in _STATUSES:
        return _STATUSES[status]
    # Treated as live: the safe side (it can still be cancelled), and visible in the log.
    log.warning("Unknown Dhan order status %r, treated as open", dhan_status)
    return OrderStatus.OPEN


def product(dhan_product: str | None) -> str:
    value = (dhan_product or "").upper()
    return _OUR_PRODUCTS.get(value, value)


def pricetype(dhan_order_type: str | None) -> str:
    value = (dhan_order_type or "").upper()
    return _OUR_ORDER_TYPES.get(value, value)


def _time(value: Any) -> dt.datetime | None:
    # One odd timestamp must not sink a whole book; Dhan sends "1980-01-01 00:00:00" for "none" too.
    try:
        moment = exchange_time(value, DHAN_TZ)
    except ValueError:
        log.debug("Unreadable Dhan timestamp %r ignored", value)
        return None
    if moment is not None and moment.year <= 1980:
        return None
    return moment


def to_order(row: Mapping[str, Any]) -> BrokerOrder:
    return BrokerOrder(
        orderid=str(row["orderId"]),
        symbol=str(row.get("tradingSymbol") or ""),
        exchange=exchange_of(row.get("exchangeSegment")),
        action=str(row.get("transactionType") or "").upper(),
        quantity=to_int(row.get("quantity")),
        filled_quantity=to_int(row.get("filledQty")),
        price=to_decimal(row.get("price")),
        average_price=to_decimal(row.get("averageTradedPrice")),
        trigger_price=to_decimal(row.get("triggerPrice")),
        pricetype=pricetype(row.get("orderType")),
        product=product(row.get("productType")),
        status=order_status(row.get("orderStatus")),
        status_message=row.get("omsErrorDescription") or None,
        timestamp=_time(row.get("updateTime")) or _time(row.get("createTime")),
        broker_status=str(row.get("orderStatus") or ""),
        tag=row.get("correlationId") or None,
    )


def to_trade(row: Mapping[str, Any]) -> BrokerTrade:
    return BrokerTrade(
        tradeid=str(row.get("exchangeTradeId") or row.get("orderId")),
        orderid=str(row["orderId"]),
        symbol=str(row.get("tradingSymbol") or ""),
        exchange=exchange_of(row.get("exchangeSegment")),
        action=str(row.get("transactionType") or "").upper(),
        quantity=to_int(row.get("tradedQuantity")),
        average_price=to_decimal(row.get("tradedPrice")),
        product=product(row.get("productType")),
        timestamp=_time(row.get("exchangeTime")) or _time(row.get("createTime")),
    )


def to_position(row: Mapping[str, Any]) -> BrokerPosition:
    """Dhan's positions carry no last price: it follows from the unrealised profit (per unit of the net
    quantity, times the contract's multiplier) on top of the average of the open side."""
    quantity = to_int(row.get("netQty"))
    if quantity > 0:
        average = to_decimal(row.get("buyAvg"))
    elif quantity < 0:
        average = to_decimal(row.get("sellAvg"))
    else:
        average = Decimal(0)
    # (+ 0: Dhan's -0.0 shown as 0)
    realised = to_decimal(row.get("realizedProfit")) + 0
    unrealised = to_decimal(row.get("unrealizedProfit")) + 0
    multiplier = to_decimal(row.get("multiplier"), Decimal(1)) or Decimal(1)
    ltp = (average + unrealised / (quantity * multiplier)).quantize(Decimal("0.01")) if quantity else Decimal(0)
    return BrokerPosition(
        symbol=str(row.get("tradingSymbol") or ""),
        exchange=exchange_of(row.get("exchangeSegment")),
        product=product(row.get("productType")),
        quantity=quantity,
        average_price=average,
        ltp=ltp,
        pnl=realised + unrealised,
        realised_pnl=realised,
        unrealised_pnl=unrealised,
    )


def to_holding(row: Mapping[str, Any]) -> BrokerHolding:
    """Dhan lists a holding once for the account (`exchange` "ALL"); we show it on NSE unless it is BSE's."""
    exchange = str(row.get("exchange") or "").upper()
    quantity = to_int(row.get("totalQty"))
    average = to_decimal(row.get("avgCostPrice"))
    ltp = to_decimal(row.get("lastTradedPrice"))
    return BrokerHolding(
        symbol=str(row.get("tradingSymbol") or ""),
        exchange="BSE" if exchange == "BSE" else "NSE",
        product="CNC",
        quantity=quantity,
        average_price=average,
        ltp=ltp,
        pnl=((ltp - average) * quantity) if ltp else Decimal(0),
    )


def to_funds(data: Mapping[str, Any]) -> BrokerFunds:
    # "availabelBalance" is Dhan's documented spelling (v2 fund limit).
    available = data.get("availabelBalance", data.get("availableBalance"))
    return BrokerFunds(
        availablecash=to_decimal(available),
        collateral=to_decimal(data.get("collateralAmount")),
        m2mrealized=Decimal(0),
        m2munrealized=Decimal(0),
        utiliseddebits=to_decimal(data.get("utilizedAmount")),
    )


def _quote_time(value: Any) -> dt.datetime | None:
    # The quote's last_trade_time is "dd/mm/yyyy HH:MM:SS" (IST).
    if not value:
        return None
    try:
        moment = dt.datetime.strptime(str(value).strip(), "%d/%m/%Y %H:%M:%S").replace(tzinfo=DHAN_TZ)
    except ValueError:
        return _time(value)
    return None if moment.year <= 1980 else moment


def to_quote(data: Mapping[str, Any]) -> BrokerQuote:
    return kite_shaped_quote(data, _quote_time(data.get("last_trade_time")))


# -- history ---------------------------------------------------------------------------------------

# Our interval code -> Dhan's intraday interval (minutes). Dhan also has 25 minutes, which is not one of
# ours; day candles come from /charts/historical.
INTRADAY_INTERVALS: dict[str, str] = {"1m": "1", "5m": "5", "15m": "15", "1h": "60"}
DAY_INTERVAL = "D"
# Dhan serves at most 90 days of intraday candles per request; day candles have no documented cap
# (since the instrument's inception), asked here a year at a time.
INTRADAY_SPAN = dt.timedelta(days=90)
DAILY_SPAN = dt.timedelta(days=365)


def instrument_kind(exchange: str, symbol: str, token: str) -> str:
    """The `instrument` of a history request (annexure), from what the master contract stores."""
    if str(token).startswith(INDEX_TOKEN_PREFIX):
        return "INDEX"
    exchange = exchange.upper()
    if exchange in ("NSE", "BSE"):
        return "EQUITY"
    parts = symbol.upper().split("-")
    option = parts[-1] in ("CE", "PE")
    if exchange == "MCX":
        return "OPTFUT" if option else "FUTCOM"
    if exchange in ("CDS", "BCD"):
        return "OPTCUR" if option else "FUTCUR"
    index = parts[0] in INDEX_UNDERLYINGS
    if option:
        return "OPTIDX" if index else "OPTSTK"
    return "FUTIDX" if index else "FUTSTK"


def to_candles(data: Mapping[str, Any]) -> list[BrokerCandle]:
    """Dhan's columnar answer (open, high, low, close, volume, timestamp in epoch seconds, open_interest)."""
    stamps = data.get("timestamp") or []
    opens, highs, lows, closes = data["open"], data["high"], data["low"], data["close"]
    volumes = data.get("volume") or [0] * len(stamps)
    ois = data.get("open_interest") or [0] * len(stamps)
    candles = []
    for n, stamp in enumerate(stamps):
        moment = dt.datetime.fromtimestamp(float(stamp), DHAN_TZ)
        candles.append(BrokerCandle(timestamp=moment, open=to_decimal(opens[n]), high=to_decimal(highs[n]),
                                    low=to_decimal(lows[n]), close=to_decimal(closes[n]), volume=to_int(volumes[n]),
                                    oi=to_int(ois[n]) if n < len(ois) else 0))
    return candles


# -- instruments -----------------------------------------------------------------------------------

# Rows of the compact instrument list (DhanHQ v2): the detailed list has no exchange trading symbol
# (SEM_TRADING_SYMBOL "removed"), which Dhan's books name instruments by.
# (SEM_EXM_EXCH_ID, derivative class) -> our exchange. Futures and options by SEM_INSTRUMENT_NAME.
_DERIVATIVE_EXCHANGES = {
    ("NSE", "FNO"): "NFO",
    ("BSE", "FNO"): "BFO",
    ("NSE", "CUR"): "CDS",
    ("BSE", "CUR"): "BCD",
    ("MCX", "COM"): "MCX",
}
_INSTRUMENT_CLASS = {
    "FUTIDX": "FNO",
    "FUTSTK": "FNO",
    "OPTIDX": "FNO",
    "OPTSTK": "FNO",
    "FUTCUR": "CUR",
    "OPTCUR": "CUR",
    "FUTCOM": "COM",
    "OPTFUT": "COM",
}


def _number_text(value: str) -> str:
    # "75.0" -> "75", "24000.00000" -> "24000", "0.05000" -> "0.05"
    number = Decimal(value.strip() or "0")
    text = format(number.normalize(), "f")
    return text


def canonical_row(row: Mapping[str, str]) -> dict[str, str] | None:
    """One compact instrument-list row in the canonical (Kite-shaped) row the master-contract import
    maps, or None for a row we do not carry (other instruments, exchanges or series)."""
    exchange_id = (row.get("SEM_EXM_EXCH_ID") or "").strip().upper()
    instrument = (row.get("SEM_INSTRUMENT_NAME") or "").strip().upper()
    security = (row.get("SEM_SMST_SECURITY_ID") or "").strip()
    symbol = (row.get("SEM_TRADING_SYMBOL") or "").strip()
    if not security or not symbol:
        return None
    # Dhan's tick size is in paise ("5.0000" is 0.05 rupees).
    tick = _number_text(str(Decimal((row.get("SEM_TICK_SIZE") or "0").strip() or "0") / 100))
    lot = _number_text(row.get("SEM_LOT_UNITS") or "1")
    name = (row.get("SM_SYMBOL_NAME") or "").strip()
    common = {"exchange_token": security, "tradingsymbol": symbol, "last_price": "0", "tick_size": tick,
              "lot_size": lot}
    if instrument == "INDEX":
        if exchange_id not in ("NSE", "BSE"):
            return None
        return {**common, "instrument_token": INDEX_TOKEN_PREFIX + security, "name": name or symbol, "expiry": "",
                "strike": "0", "instrument_type": "EQ", "segment": "INDICES", "exchange": exchange_id}
    if instrument == "EQUITY":
        if exchange_id not in ("NSE", "BSE"):
            return None
        return {**common, "instrument_token": security, "name": name or symbol, "expiry": "", "strike": "0",
                "instrument_type": "EQ", "segment": exchange_id, "exchange": exchange_id}
    exchange = _DERIVATIVE_EXCHANGES.get((exchange_id, _INSTRUMENT_CLASS.get(instrument, "")))
    if exchange is None:
        return None
    expiry = (row.get("SEM_EXPIRY_DATE") or "").strip()[:10]
    option = instrument.startswith("OPT")
    kind = (row.get("SEM_OPTION_TYPE") or "").strip().upper() if option else "FUT"
    if kind not in ("FUT", "CE", "PE"):
        return None
    # The underlying: the trading symbol's first part ("NIFTY-Dec2026-24000-CE"); SM_SYMBOL_NAME is a
    # contract mnemonic or empty on derivative rows.
    underlying = symbol.split("-")[0].strip() or name
    return {**common, "instrument_token": security, "name": underlying, "expiry": expiry,
            "strike": _number_text(row.get("SEM_STRIKE_PRICE") or "0") if option else "0",
            "instrument_type": kind, "segment": f"{exchange}-{'OPT' if option else 'FUT'}", "exchange": exchange}
