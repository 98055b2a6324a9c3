"""Angel One SmartAPI codes and records, mapped to ours.

Field names and values are those of the SmartAPI documentation (orders, portfolio, user/RMS, market
data quote, historical candles, margin calculator, instrument master). SmartAPI sends its times
without a zone, as Indian Standard Time (`ANGEL_TZ`): order times "20-Oct-2020 13:10:59", candle
times "2021-02-08T09:15:00+05:30".
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from brokers.base import (
    BrokerCandle,
    BrokerFunds,
    BrokerHolding,
    BrokerMargin,
    BrokerOrder,
    BrokerPosition,
    BrokerProfile,
    BrokerQuote,
    BrokerTrade,
    MarginOrder,
    OrderRequest,
    to_decimal,
)
from brokers.common import circuit_limit, depth_levels, to_int
from vocabulary import OrderStatus, PriceType, Product

log = logging.getLogger("algobridge.broker")

# SmartAPI's times, and its daily session end, are Indian Standard Time: a fact of the broker.
ANGEL_TZ = ZoneInfo("Asia/Kolkata")
# "The session established via SmartAPI remains active till 12 midnight, unless the user chooses to log
# out" (SmartAPI documentation, User: Authentication with Angel): the session flush is 00:00 IST.
SESSION_FLUSH = dt.time(0, 0)

DURATION = "DAY"
ORDER_TIME_FORMAT = "%d-%b-%Y %H:%M:%S"  # "20-Oct-2020 13:10:59"
HISTORY_TIME_FORMAT = "%Y-%m-%d %H:%M"  # getCandleData's fromdate/todate

# Our product <-> SmartAPI's producttype.
PRODUCTS_OUT = {Product.CNC: "DELIVERY", Product.MIS: "INTRADAY", Product.NRML: "CARRYFORWARD"}
_PRODUCTS_IN = {
    "DELIVERY": Product.CNC.value,
    "INTRADAY": Product.MIS.value,
    "CARRYFORWARD": Product.NRML.value,
    "MARGIN": Product.NRML.value,  # margin trading: carried like a derivative position
    "BO": Product.MIS.value,  # bracket and cover orders are intraday
    "CO": Product.MIS.value,
}
# Our price type <-> SmartAPI's ordertype, and the variety an order of that type is placed with.
PRICE_TYPES_OUT = {
    PriceType.MARKET: "MARKET",
    PriceType.LIMIT: "LIMIT",
    PriceType.SL: "STOPLOSS_LIMIT",
    PriceType.SL_M: "STOPLOSS_MARKET",
}
_PRICE_TYPES_IN = {value: key.value for key, value in PRICE_TYPES_OUT.items()}
VARIETIES = {
    PriceType.MARKET: "NORMAL",
    PriceType.LIMIT: "NORMAL",
    PriceType.SL: "STOPLOSS",
    PriceType.SL_M: "STOPLOSS",
}

# SmartAPI's orderstatus (lower case in its answers) -> ours. The interim states of an order on its way
# to the exchange, or while it is modified or cancelled, are live orders: "open".
_FINAL_STATUSES = {
    "open": OrderStatus.OPEN,
    "complete": OrderStatus.COMPLETE,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "trigger pending": OrderStatus.TRIGGER_PENDING,
}
INTERIM_STATUSES = frozenset(
    {
        "open pending",
        "validation pending",
        "put order req received",
        "modify validation pending",
        "modify pending",
        "modify order req received",
        "modified",
        "not modified",
        "cancel pending",
        "cancel order req received",
        "not cancelled",
        "after market order req received",
        "amo req received",
        "trigger pending modify",
    }
)


def order_status(status: str | None) -> OrderStatus:
    value = (status or "").strip().lower()
    if value in _FINAL_STATUSES:
        return _FINAL_STATUSES[value]
    if value not in INTERIM_STATUSES:
        # Treated as live: the safe side (it can still be cancelled), and visible in the log.
        log.warning("Unknown Angel One order status %r, treated as open", status)
    return OrderStatus.OPEN


def product(value: str | None) -> str:
    text = (value or "").strip().upper()
    return _PRODUCTS_IN.get(text, text)


def price_type(value: str | None) -> str:
    text = (value or "").strip().upper()
    return _PRICE_TYPES_IN.get(text, text)


def order_time(value: Any) -> dt.datetime | None:
    """ "20-Oct-2020 13:10:59" (IST) as an aware datetime; None for empty or unreadable values (a time
    is informative only: one odd value must not sink a whole book)."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, ORDER_TIME_FORMAT).replace(tzinfo=ANGEL_TZ)
    except ValueError:
        log.debug("Unreadable Angel One timestamp %r ignored", value)
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# -- orders ----------------------------------------------------------------------------------------


def order_params(order: OrderRequest) -> dict[str, str]:
    """The body of placeOrder for `order` (SmartAPI takes every value as a string)."""
    params = {
        "variety": VARIETIES[PriceType(order.pricetype)],
        "tradingsymbol": order.symbol,
        "symboltoken": order.token,
        "transactiontype": order.action,
        "exchange": order.exchange,
        "ordertype": PRICE_TYPES_OUT[PriceType(order.pricetype)],
        "producttype": PRODUCTS_OUT[Product(order.product)],
        "duration": DURATION,
        "price": _price(order.price) if order.pricetype in (PriceType.LIMIT, PriceType.SL) else "0",
        "triggerprice": _price(order.trigger_price) if order.pricetype in (PriceType.SL, PriceType.SL_M) else "0",
        "squareoff": "0",
        "stoploss": "0",
        "quantity": str(order.quantity),
    }
    if order.disclosed_quantity:
        params["disclosedquantity"] = str(order.disclosed_quantity)
    if order.tag:
        params["ordertag"] = order.tag[:19]  # SmartAPI refuses tags of 20 characters or more (AB4008)
    return params


def _price(value: Decimal) -> str:
    return format(value, "f")


def to_order(row: Mapping[str, Any]) -> BrokerOrder:
    status = row.get("orderstatus") or row.get("status")
    return BrokerOrder(
        orderid=str(row["orderid"]),
        symbol=str(row["tradingsymbol"]),
        exchange=str(row["exchange"]),
        action=str(row["transactiontype"]).upper(),
        quantity=to_int(row.get("quantity")),
        filled_quantity=to_int(row.get("filledshares")),
        price=to_decimal(row.get("price")),
        average_price=to_decimal(row.get("averageprice")),
        trigger_price=to_decimal(row.get("triggerprice")),
        pricetype=price_type(row.get("ordertype")),
        product=product(row.get("producttype")),
        status=order_status(status),
        status_message=_text(row.get("text")) or None,
        timestamp=order_time(row.get("updatetime") or row.get("exchtime")),
        broker_status=_text(status),
        tag=_text(row.get("ordertag")) or None,
    )


def to_trade(row: Mapping[str, Any], today: dt.date) -> BrokerTrade:
    """A getTradeBook row. Its `filltime` is a bare time of day ("13:27:53") of `today`'s book."""
    moment = None
    fill = _text(row.get("filltime")).strip()
    if fill:
        try:
            moment = dt.datetime.combine(today, dt.time.fromisoformat(fill), tzinfo=ANGEL_TZ)
        except ValueError:
            moment = order_time(fill)
    return BrokerTrade(
        tradeid=str(row.get("fillid") or ""),
        orderid=str(row["orderid"]),
        symbol=str(row["tradingsymbol"]),
        exchange=str(row["exchange"]),
        action=str(row["transactiontype"]).upper(),
        quantity=to_int(row.get("fillsize")),
        average_price=to_decimal(row.get("fillprice")),
        product=product(row.get("producttype")),
        timestamp=moment,
    )


def to_position(row: Mapping[str, Any]) -> BrokerPosition:
    """A getPosition row. SmartAPI's documented row has the traded amounts but no P&L: where the broker
    sends none, it is what was sold less what was bought, plus the open quantity at the last price."""
    quantity = to_int(row.get("netqty"))
    ltp = to_decimal(row.get("ltp"))
    realised, unrealised = to_decimal(row.get("realised")), to_decimal(row.get("unrealised"))
    if row.get("pnl") not in (None, ""):
        pnl = to_decimal(row.get("pnl"))
    elif row.get("realised") not in (None, "") or row.get("unrealised") not in (None, ""):
        pnl = realised + unrealised
    else:
        bought = to_decimal(row.get("totalbuyvalue") or row.get("buyamount"))
        sold = to_decimal(row.get("totalsellvalue") or row.get("sellamount"))
        pnl = sold - bought + quantity * ltp if ltp else Decimal(0)
    return BrokerPosition(
        symbol=str(row["tradingsymbol"]),
        exchange=str(row["exchange"]),
        product=product(row.get("producttype")),
        quantity=quantity,
        average_price=to_decimal(row.get("avgnetprice") or row.get("netprice")),
        ltp=ltp,
        pnl=pnl,
        realised_pnl=realised,
        unrealised_pnl=unrealised,
    )


def to_holding(row: Mapping[str, Any]) -> BrokerHolding:
    return BrokerHolding(
        symbol=str(row["tradingsymbol"]),
        exchange=str(row["exchange"]),
        product=product(row.get("product") or "DELIVERY"),
        quantity=to_int(row.get("quantity")),
        average_price=to_decimal(row.get("averageprice")),
        ltp=to_decimal(row.get("ltp")),
        pnl=to_decimal(row.get("profitandloss")),
    )


def to_funds(data: Mapping[str, Any]) -> BrokerFunds:
    """getRMS: one balance for the account (SmartAPI sends the numbers as strings)."""
    return BrokerFunds(
        availablecash=to_decimal(data.get("availablecash")),
        collateral=to_decimal(data.get("collateral")),
        m2mrealized=to_decimal(data.get("m2mrealized")),
        m2munrealized=to_decimal(data.get("m2munrealized")),
        utiliseddebits=to_decimal(data.get("utiliseddebits")),
    )


def to_profile(data: Mapping[str, Any]) -> BrokerProfile:
    extra_keys = ("exchanges", "products", "lastlogintime", "brokerid")
    client = str(data["clientcode"])
    return BrokerProfile(
        broker_user_id=client,
        user_name=str(data.get("name") or client).strip() or client,
        email=data.get("email") or None,
        extra={key: data[key] for key in extra_keys if key in data},
    )


# -- market data -----------------------------------------------------------------------------------


def to_quote(data: Mapping[str, Any]) -> BrokerQuote:
    """One `fetched` entry of the FULL mode market quote."""
    depth = data.get("depth") or {}
    bids, asks = depth_levels(depth.get("buy")), depth_levels(depth.get("sell"))
    return BrokerQuote(
        open=to_decimal(data.get("open")),
        high=to_decimal(data.get("high")),
        low=to_decimal(data.get("low")),
        ltp=to_decimal(data.get("ltp")),
        ask=asks[0].price if asks else Decimal(0),
        bid=bids[0].price if bids else Decimal(0),
        prev_close=to_decimal(data.get("close")),
        volume=to_int(data.get("tradeVolume")),
        oi=to_int(data.get("opnInterest")),
        timestamp=order_time(data.get("exchFeedTime")),
        ltq=to_int(data.get("lastTradeQty")),
        total_buy_quantity=to_int(data.get("totBuyQuan")),
        total_sell_quantity=to_int(data.get("totSellQuan")),
        bids=bids,
        asks=asks,
        upper_circuit=circuit_limit(data.get("upperCircuit")),
        lower_circuit=circuit_limit(data.get("lowerCircuit")),
    )


# Our interval code -> SmartAPI's, and the most days one getCandleData request may span for it
# (SmartAPI historical API: ONE_MINUTE 30, THREE_MINUTE 60, FIVE_MINUTE and TEN_MINUTE 100, FIFTEEN_MINUTE
# and THIRTY_MINUTE 200, ONE_HOUR 400, ONE_DAY 2000).
INTERVALS: dict[str, tuple[str, int]] = {
    "1m": ("ONE_MINUTE", 30),
    "3m": ("THREE_MINUTE", 60),
    "5m": ("FIVE_MINUTE", 100),
    "10m": ("TEN_MINUTE", 100),
    "15m": ("FIFTEEN_MINUTE", 200),
    "30m": ("THIRTY_MINUTE", 200),
    "1h": ("ONE_HOUR", 400),
    "D": ("ONE_DAY", 2000),
}
# The exchanges getCandleData serves (SmartAPI historical API: exchange constants).
HISTORY_EXCHANGES = frozenset({"NSE", "NFO", "BSE", "BFO", "MCX"})


def history_time(moment: dt.datetime) -> str:
    """An aware moment (the adapter checked) as getCandleData's fromdate/todate, IST wall time."""
    return moment.astimezone(ANGEL_TZ).strftime(HISTORY_TIME_FORMAT)


def candle_time(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(str(value).strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ANGEL_TZ)
    return moment.astimezone(ANGEL_TZ)


def to_candle(record: Any) -> BrokerCandle:
    """[timestamp, open, high, low, close, volume], as getCandleData sends each candle (no open
    interest: the adapter adds getOIData's)."""
    moment, first, high, low, last, volume = record[:6]
    return BrokerCandle(
        timestamp=candle_time(moment),
        open=to_decimal(first),
        high=to_decimal(high),
        low=to_decimal(low),
        close=to_decimal(last),
        volume=to_int(volume),
    )


# -- margin ----------------------------------------------------------------------------------------


def margin_position(order: MarginOrder) -> dict[str, Any]:
    """One entry of the margin calculator's `positions`."""
    return {
        "exchange": order.exchange,
        "qty": order.quantity,
        "price": float(order.price),
        "productType": PRODUCTS_OUT[Product(order.product)],
        "token": order.token,
        "tradeType": order.action,
        "orderType": PRICE_TYPES_OUT[PriceType(order.pricetype)],
    }


def to_margin(data: Mapping[str, Any]) -> BrokerMargin:
    """The margin calculator's answer: `totalMarginRequired` after the hedge benefit, and its parts.
    SmartAPI does not report the exposure margin apart: it is what the total holds beyond SPAN and the
    option premium."""
    parts = data.get("marginComponents") or {}
    total = to_decimal(data["totalMarginRequired"])
    span = to_decimal(parts.get("spanMargin"))
    premium = to_decimal(parts.get("totOptionsPremium"))
    return BrokerMargin(
        total=total,
        span=span,
        exposure=max(total - span - premium, Decimal(0)) if span else Decimal(0),
        option_premium=premium,
        benefit=max(to_decimal(parts.get("marginBenefit")), Decimal(0)),
    )


# -- the instrument master -------------------------------------------------------------------------

_MONTHS = {
    m: i
    for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)
}
_FUTURES = frozenset({"FUTIDX", "FUTSTK", "FUTCOM", "FUTCUR", "FUTIRC", "FUTIRT", "FUTBAS", "FUTENR"})
_OPTIONS = frozenset({"OPTIDX", "OPTSTK", "OPTFUT", "OPTCUR", "OPTIRC", "OPTCOM", "OPTBLN", "OPTENR"})
INDEX_TYPE = "AMXIDX"
# exch_seg values that are exchanges we trade on (NCDEX's rows say "NCDEX"), and the segment codes the
# documentation's sample row spells them with ("nse_cm").
EXCHANGES = frozenset({"NSE", "BSE", "NFO", "BFO", "MCX", "CDS", "NCDEX"})
_SEGMENT_CODES = {
    "NSE_CM": "NSE",
    "BSE_CM": "BSE",
    "NSE_FO": "NFO",
    "BSE_FO": "BFO",
    "MCX_FO": "MCX",
    "CDE_FO": "CDS",
    "NCX_FO": "NCDEX",
}


class SkipRow(Exception):  # noqa: N818 - control flow for one row of the master
    pass


def expiry_date(value: str) -> str:
    """ "26DEC2024" -> "2024-12-26" (the canonical row's format)."""
    text = value.strip().upper()
    try:
        return dt.date(int(text[5:]), _MONTHS[text[2:5]], int(text[:2])).isoformat()
    except (KeyError, ValueError) as exc:
        raise SkipRow(f"bad expiry {value!r}") from exc


def _paise(value: Any) -> str:
    """A price of the scrip master (strike, tick_size: in paise) in rupees, as text."""
    try:
        number = Decimal(str(value).strip() or "0") / 100
    except InvalidOperation as exc:
        raise SkipRow(f"bad number {value!r}") from exc
    if not number.is_finite():
        raise SkipRow(f"bad number {value!r}")
    return format(number.normalize(), "f") if number else "0"


def canonical_row(row: Mapping[str, Any]) -> dict[str, str] | None:
    """One scrip master entry as the canonical (Kite column) row the master-contract import maps, or
    None for an entry that is not a tradable instrument of ours (other exchanges, bonds and other
    NSE series without an equity suffix are kept as they are: the import decides)."""
    exchange = _text(row.get("exch_seg")).strip().upper()
    exchange = _SEGMENT_CODES.get(exchange, exchange)
    if exchange not in EXCHANGES:
        return None
    itype = _text(row.get("instrumenttype")).strip().upper()
    symbol = _text(row.get("symbol")).strip()
    token = _text(row.get("token")).strip()
    if not symbol or not token:
        return None
    name = _text(row.get("name")).strip()
    out = {
        "instrument_token": token,
        "exchange_token": token,
        "tradingsymbol": symbol,
        "name": name,
        "last_price": "0",
        "expiry": "",
        "strike": "0",
        "tick_size": _paise(row.get("tick_size")),
        "lot_size": _text(row.get("lotsize")).strip() or "1",
        "exchange": exchange,
    }
    if itype == INDEX_TYPE:
        out.update(instrument_type="EQ", segment="INDICES")
        return out
    if itype == "":
        if exchange not in ("NSE", "BSE"):
            return None
        out.update(instrument_type="EQ", segment=exchange)
        return out
    if itype in _FUTURES:
        out.update(instrument_type="FUT", segment=f"{exchange}-FUT", expiry=expiry_date(_text(row.get("expiry"))))
        return out
    if itype in _OPTIONS:
        kind = symbol[-2:].upper()
        if kind not in ("CE", "PE"):
            raise SkipRow("option without CE/PE")
        out.update(
            instrument_type=kind,
            segment=f"{exchange}-OPT",
            expiry=expiry_date(_text(row.get("expiry"))),
            strike=_paise(row.get("strike")),
        )
        return out
    return None
