"""A fake DhanHQ v2 server: a small WSGI app with its state in memory, for driving the real Dhan
adapter over real HTTP.

It speaks the documented API: every call authenticated by the `access-token` and `client-id` headers;
the profile (with the token's validity), the fund limit, orders (place, modify, cancel, one, list),
trades, positions, holdings (without prices, exchange "ALL", DH-1111 when there are none), the market
quote with five levels of depth (POST /marketfeed/quote, segments -> security ids, at most 1000) and
last prices (POST /marketfeed/ltp), daily and intraday candles (columnar, epoch seconds, Dhan's
non-inclusive daily `toDate` and its 90-day intraday cap), the margin calculators (single and multi-order,
with a hedge benefit), and the compact
instrument list (served from tests/fakes/dhan_scrip_master.csv, shaped like Dhan's file). Trading
errors come in Dhan's shape `{"errorType", "errorCode", "errorMessage"}` with the annexure's codes
(DH-901 with HTTP 401 for a bad or expired token, DH-905 input, DH-906 order, DH-904 with 429), data
errors as `{"data": {"806": "..."}, "status": "failed"}`. Where Dhan's exact message is not documented
the fake's own words are used; tests assert on kinds. `calls` counts the requests per path.

Use `running_dhan()` (a context manager) to serve it on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import itertools
import json
import math
import os
import secrets
import threading
from collections import Counter, deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.fakes.kite_server import minute_price
from tests.fakes.serving import RunningFake, running

IST = ZoneInfo("Asia/Kolkata")
CLIENT_ID = "1000000009"
SCRIP_MASTER = os.path.join(os.path.dirname(__file__), "dhan_scrip_master.csv")
INSTRUMENTS_PATH = "/api-data/api-scrip-master.csv"

# The fake's last prices by (segment, security id); instruments not listed trade at 100.
PRICES = {
    ("NSE_EQ", "1594"): 1500.5,
    ("NSE_EQ", "3045"): 800.0,
    ("NSE_EQ", "13"): 5400.0,
    ("BSE_EQ", "500325"): 2900.1,
    ("IDX_I", "13"): 24000.0,
    ("IDX_I", "25"): 52000.0,
    ("IDX_I", "51"): 80000.0,
    ("NSE_FNO", "35001"): 24100.0,
    ("NSE_FNO", "35002"): 150.25,
    ("NSE_FNO", "35003"): 120.5,
    ("NSE_FNO", "35004"): 1510.0,
    ("BSE_FNO", "1120001"): 300.0,
    ("MCX_COMM", "440001"): 6900.0,
    ("NSE_CURRENCY", "8001"): 84.1,
}
_SEGMENT_OF = {("NSE", "E"): "NSE_EQ", ("BSE", "E"): "BSE_EQ", ("NSE", "I"): "IDX_I", ("BSE", "I"): "IDX_I",
               ("NSE", "D"): "NSE_FNO", ("BSE", "D"): "BSE_FNO", ("MCX", "M"): "MCX_COMM",
               ("NSE", "C"): "NSE_CURRENCY", ("BSE", "C"): "BSE_CURRENCY"}
_TRANSACTION_TYPES = {"BUY", "SELL"}
_ORDER_TYPES = {"MARKET", "LIMIT", "STOP_LOSS", "STOP_LOSS_MARKET"}
_PRODUCTS = {"CNC", "INTRADAY", "MARGIN", "MTF", "CO", "BO"}
_LIVE = {"TRANSIT", "PENDING", "PART_TRADED"}
INTRADAY_INTERVALS = {"1", "5", "15", "25", "60"}
INTRADAY_MAX_DAYS = 90
SESSION = (dt.time(9, 15), dt.time(15, 30))


def read_scrip_master(path: str = SCRIP_MASTER) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class DhanError(Exception):
    def __init__(self, status: int, code: str, message: str, error_type: str = ""):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.error_type = error_type or {"DH-901": "Invalid_Authentication", "DH-904": "Rate_Limit",
                                         "DH-905": "Input_Exception", "DH-906": "Order_Error",
                                         "DH-907": "Data_Error"}.get(code, "Others")


def _invalid_token() -> DhanError:
    return DhanError(401, "DH-901", "Client ID or user generated access token is invalid or expired.")


@dataclass
class Fault:
    """A canned answer for the next request(s) whose path starts with `path`."""

    status: int
    code: str = "DH-908"
    message: str = "Something went wrong"
    path: str = "/"
    times: int = 1
    body: bytes | None = None  # a raw body instead of Dhan's JSON error
    content_type: str = "application/json"


@dataclass
class FakeDhan:
    """Dhan's state for one account, and the WSGI app serving it."""

    client_id: str = CLIENT_ID
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(IST))
    data_enabled: bool = True  # False: the account has no data-API subscription (806)
    holdings_rows: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[str, dt.datetime] = {}  # access token -> expiry
        self.instruments = read_scrip_master()
        self.by_key = {(_SEGMENT_OF[(r["SEM_EXM_EXCH_ID"], r["SEM_SEGMENT"])], r["SEM_SMST_SECURITY_ID"]): r
                       for r in self.instruments if (r["SEM_EXM_EXCH_ID"], r["SEM_SEGMENT"]) in _SEGMENT_OF}
        self.orders: dict[str, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.faults: deque[Fault] = deque()
        self.calls: Counter[str] = Counter()
        self.bodies: list[tuple[str, str, Any]] = []  # (method, path, JSON body) as received
        self.headers_seen: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self.available = 100000.0
        if self.holdings_rows is None:
            self.holdings_rows = [{"exchange": "ALL", "tradingSymbol": "INFY", "securityId": "1594",
                                   "isin": "INE009A01021", "totalQty": 10, "dpQty": 10, "t1Qty": 0,
                                   "availableQty": 10, "collateralQty": 0, "avgCostPrice": 1400.0}]
        self.url_map = Map([
            Rule("/profile", methods=["GET"], endpoint="profile"),
            Rule("/fundlimit", methods=["GET"], endpoint="fundlimit"),
            Rule("/orders", methods=["POST"], endpoint="place"),
            Rule("/orders", methods=["GET"], endpoint="orders"),
            Rule("/orders/<order_id>", methods=["GET"], endpoint="order"),
            Rule("/orders/<order_id>", methods=["PUT"], endpoint="modify"),
            Rule("/orders/<order_id>", methods=["DELETE"], endpoint="cancel"),
            Rule("/trades", methods=["GET"], endpoint="trades"),
            Rule("/positions", methods=["GET"], endpoint="positions"),
            Rule("/holdings", methods=["GET"], endpoint="holdings"),
            Rule("/marketfeed/quote", methods=["POST"], endpoint="quote"),
            Rule("/marketfeed/ltp", methods=["POST"], endpoint="ltp"),
            Rule("/charts/historical", methods=["POST"], endpoint="daily"),
            Rule("/charts/intraday", methods=["POST"], endpoint="intraday"),
            Rule("/margincalculator", methods=["POST"], endpoint="margin"),
            Rule("/margincalculator/multi", methods=["POST"], endpoint="multi_margin"),
            Rule(INSTRUMENTS_PATH, methods=["GET"], endpoint="scrip_master"),
        ])

    # -- helpers for tests -------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.clock().astimezone(IST)

    def issue_token(self, valid_for: dt.timedelta = dt.timedelta(hours=24)) -> str:
        """What web.dhan.co does when the user generates an access token (a JWT-looking string)."""
        token = "eyJ" + secrets.token_urlsafe(24) + "." + secrets.token_urlsafe(32) + "." + secrets.token_urlsafe(16)
        with self.lock:
            self.tokens[token] = self.now() + valid_for
        return token

    def expire_all(self) -> None:
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = self.now() - dt.timedelta(seconds=1)

    def fail_next(self, status: int, code: str = "DH-908", message: str = "", **kw: Any) -> None:
        self.faults.append(Fault(status, code, message or "Something went wrong", **kw))

    def calls_to(self, prefix: str) -> int:
        with self.lock:
            return sum(n for path, n in self.calls.items() if path.startswith(prefix))

    def set_status(self, order_id: str, status: str, message: str = "") -> None:
        with self.lock:
            self.orders[order_id].update(orderStatus=status, omsErrorDescription=message, updateTime=self.stamp())

    def fill(self, order_id: str, price: float | None = None) -> None:
        with self.lock:
            order = self.orders[order_id]
            self._fill(order, price if price is not None else order["price"])

    def stamp(self) -> str:
        return self.now().strftime("%Y-%m-%d %H:%M:%S")

    # -- WSGI --------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self._dispatch(Request(environ))(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        body = request.get_json(silent=True) if request.data else None
        with self.lock:
            self.calls[request.path] += 1
            self.bodies.append((request.method, request.path, body))
            self.headers_seen.append(dict(request.headers))
            fault = self._take_fault(request.path)
        if fault is not None:
            if fault.body is not None:
                return Response(fault.body, status=fault.status, content_type=fault.content_type)
            return self._error(DhanError(fault.status, fault.code, fault.message))
        try:
            endpoint, args = self.url_map.bind_to_environ(request.environ).match()
            if endpoint != "scrip_master":
                self._authorise(request)
            return getattr(self, f"_ep_{endpoint}")(request, body, **args)
        except DhanError as exc:
            return self._error(exc)
        except HTTPException as exc:
            return self._error(DhanError(exc.code or 500, "DH-910", exc.name))

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if path.startswith(fault.path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _json(data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data), status=status, content_type="application/json")

    @staticmethod
    def _error(exc: DhanError) -> Response:
        if exc.code.isdigit():  # a data-API error
            body: dict[str, Any] = {"data": {exc.code: exc.message}, "status": "failed"}
        else:
            body = {"errorType": exc.error_type, "errorCode": exc.code, "errorMessage": exc.message}
        return Response(json.dumps(body), status=exc.status, content_type="application/json")

    def _authorise(self, request: Request) -> None:
        token = request.headers.get("access-token", "")
        if request.headers.get("client-id") != self.client_id:
            raise _invalid_token()
        with self.lock:
            expiry = self.tokens.get(token)
            if expiry is None or expiry <= self.now():
                raise _invalid_token()

    def _data_api(self) -> None:
        if not self.data_enabled:
            raise DhanError(400, "806", "Data APIs not Subscribed")

    # -- account -----------------------------------------------------------------------------------

    def _ep_profile(self, request: Request, body: Any) -> Response:
        expiry = self.tokens[request.headers["access-token"]]
        return self._json({"dhanClientId": self.client_id, "tokenValidity": expiry.strftime("%d/%m/%Y %H:%M"),
                           "activeSegment": "Equity, Derivative, Currency, Commodity", "ddpi": "Active",
                           "mtf": "Active", "dataPlan": "Active" if self.data_enabled else "Inactive",
                           "dataValidity": "2030-12-31 00:00:00.0"})

    def _ep_fundlimit(self, request: Request, body: Any) -> Response:
        return self._json({"dhanClientId": self.client_id, "availabelBalance": self.available, "sodLimit": 113642,
                           "collateralAmount": 5000.0, "receiveableAmount": 0.0, "utilizedAmount": 15202.0,
                           "blockedPayoutAmount": 0.0, "withdrawableBalance": 98310.0})

    # -- orders ------------------------------------------------------------------------------------

    def _instrument(self, segment: str, security_id: Any) -> dict[str, str]:
        row = self.by_key.get((str(segment), str(security_id)))
        if row is None:
            raise DhanError(400, "DH-905", "Invalid securityId or exchangeSegment.")
        return row

    @staticmethod
    def _number(body: dict, name: str, *, integer: bool = False) -> Any:
        value = body.get(name)
        if value in (None, ""):
            return 0
        try:
            number = int(value) if integer else float(value)
        except (TypeError, ValueError):
            raise DhanError(400, "DH-905", f"Invalid {name}.") from None
        if number < 0 or (isinstance(number, float) and not math.isfinite(number)):
            raise DhanError(400, "DH-905", f"Invalid {name}.")
        return number

    def _prices(self, order_type: str, body: dict) -> tuple[float, float]:
        price, trigger = self._number(body, "price"), self._number(body, "triggerPrice")
        if order_type in ("LIMIT", "STOP_LOSS") and price <= 0:
            raise DhanError(400, "DH-905", "Invalid price.")
        if order_type in ("STOP_LOSS", "STOP_LOSS_MARKET") and trigger <= 0:
            raise DhanError(400, "DH-905", "Invalid triggerPrice.")
        return price, trigger

    def _ep_place(self, request: Request, body: Any) -> Response:
        if not isinstance(body, dict):
            raise DhanError(400, "DH-905", "Invalid request body.")
        for name in ("dhanClientId", "transactionType", "exchangeSegment", "productType", "orderType", "validity",
                     "securityId", "quantity"):
            if body.get(name) in (None, ""):
                raise DhanError(400, "DH-905", f"Missing {name}.")
        if body["dhanClientId"] != self.client_id:
            raise DhanError(400, "DH-905", "Invalid dhanClientId.")
        if not isinstance(body["securityId"], str):
            raise DhanError(400, "DH-905", "securityId must be a string.")
        row = self._instrument(body["exchangeSegment"], body["securityId"])
        if body["exchangeSegment"] == "IDX_I":
            raise DhanError(400, "DH-905", "Orders are not allowed on indices.")
        if (body["transactionType"] not in _TRANSACTION_TYPES or body["orderType"] not in _ORDER_TYPES
                or body["productType"] not in _PRODUCTS or body["validity"] not in ("DAY", "IOC")):
            raise DhanError(400, "DH-905", "Invalid transactionType, orderType, productType or validity.")
        quantity = self._number(body, "quantity", integer=True)
        lot = int(float(row["SEM_LOT_UNITS"]))
        if quantity <= 0 or quantity % lot:
            raise DhanError(400, "DH-905", "Invalid quantity.")
        price, trigger = self._prices(body["orderType"], body)
        ltp = PRICES.get((body["exchangeSegment"], body["securityId"]), 100.0)
        with self.lock:
            order_id = f"{52 + next(self._ids):012d}"
            order = {
                "dhanClientId": self.client_id, "orderId": order_id, "correlationId": body.get("correlationId") or "",
                "orderStatus": "TRANSIT", "transactionType": body["transactionType"],
                "exchangeSegment": body["exchangeSegment"], "productType": body["productType"],
                "orderType": body["orderType"], "validity": body["validity"],
                "tradingSymbol": row["SEM_TRADING_SYMBOL"], "securityId": body["securityId"], "quantity": quantity,
                "disclosedQuantity": self._number(body, "disclosedQuantity", integer=True), "price": price,
                "triggerPrice": trigger, "afterMarketOrder": False, "boProfitValue": 0, "boStopLossValue": 0,
                "legName": "", "createTime": self.stamp(), "updateTime": self.stamp(),
                "exchangeTime": "1980-01-01 00:00:00", "drvExpiryDate": row["SEM_EXPIRY_DATE"] or None,
                "drvOptionType": row["SEM_OPTION_TYPE"] if row["SEM_OPTION_TYPE"] in ("CE", "PE") else None,
                "drvStrikePrice": 0.0, "omsErrorCode": None, "omsErrorDescription": None, "algoId": "0",
                "remainingQuantity": quantity, "averageTradedPrice": 0, "filledQty": 0,
            }
            self.orders[order_id] = order
            required = quantity * (price or ltp)
            if body["transactionType"] == "BUY" and required > self.available:
                order.update(orderStatus="REJECTED", remainingQuantity=0,
                             omsErrorDescription=f"RMS:Margin Exceeds, Required:{required:.2f}, "
                                                 f"Available:{self.available:.2f}")
            elif body["orderType"] == "MARKET":
                order.update(orderStatus="PENDING", exchangeTime=self.stamp())
                self._fill(order, ltp)
            else:
                order.update(orderStatus="PENDING", exchangeTime=self.stamp())
        return self._json({"orderId": order_id, "orderStatus": order["orderStatus"]})

    def _fill(self, order: dict[str, Any], price: float) -> None:
        order.update(orderStatus="TRADED", filledQty=order["quantity"], remainingQuantity=0,
                     averageTradedPrice=price, updateTime=self.stamp())
        self.trades.append({
            "dhanClientId": self.client_id, "orderId": order["orderId"],
            "exchangeOrderId": f"1{order['orderId']}", "exchangeTradeId": f"{len(self.trades) + 1:08d}",
            "transactionType": order["transactionType"], "exchangeSegment": order["exchangeSegment"],
            "productType": order["productType"], "orderType": order["orderType"],
            "tradingSymbol": order["tradingSymbol"], "customSymbol": order["tradingSymbol"],
            "securityId": order["securityId"], "tradedQuantity": order["quantity"], "tradedPrice": price,
            "createTime": self.stamp(), "updateTime": self.stamp(), "exchangeTime": self.stamp(),
            "drvExpiryDate": None, "drvOptionType": None, "drvStrikePrice": 0.0})

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise DhanError(400, "DH-907", "No order found for the given order id.")
        return order

    def _ep_orders(self, request: Request, body: Any) -> Response:
        with self.lock:
            return self._json(copy.deepcopy(list(self.orders.values())))

    def _ep_order(self, request: Request, body: Any, order_id: str) -> Response:
        with self.lock:
            return self._json(copy.deepcopy(self._order(order_id)))

    def _ep_modify(self, request: Request, body: Any, order_id: str) -> Response:
        if not isinstance(body, dict) or body.get("orderId") != order_id or body.get("dhanClientId") != self.client_id:
            raise DhanError(400, "DH-905", "Invalid orderId or dhanClientId.")
        with self.lock:
            order = self._order(order_id)
            if order["orderStatus"] not in _LIVE:
                raise DhanError(400, "DH-906", f"Order is {order['orderStatus']}: it cannot be modified.")
            order_type = body.get("orderType") or order["orderType"]
            if order_type not in _ORDER_TYPES:
                raise DhanError(400, "DH-905", "Invalid orderType.")
            price, trigger = self._prices(order_type, body)
            quantity = self._number(body, "quantity", integer=True) or order["quantity"]
            order.update(orderType=order_type, price=price, triggerPrice=trigger, quantity=quantity,
                         remainingQuantity=quantity - order["filledQty"], updateTime=self.stamp())
        return self._json({"orderId": order_id, "orderStatus": order["orderStatus"]})

    def _ep_cancel(self, request: Request, body: Any, order_id: str) -> Response:
        with self.lock:
            order = self._order(order_id)
            if order["orderStatus"] not in _LIVE:
                raise DhanError(400, "DH-906", f"Order is {order['orderStatus']}: it cannot be cancelled.")
            order.update(orderStatus="CANCELLED", updateTime=self.stamp())
        return self._json({"orderId": order_id, "orderStatus": "CANCELLED"})

    def _ep_trades(self, request: Request, body: Any) -> Response:
        with self.lock:
            return self._json(copy.deepcopy(self.trades))

    def _ep_positions(self, request: Request, body: Any) -> Response:
        with self.lock:
            book: dict[tuple[str, str, str], dict[str, Any]] = {}
            for trade in self.trades:
                key = (trade["exchangeSegment"], trade["securityId"], trade["productType"])
                entry = book.setdefault(key, {"trade": trade, "buy_q": 0, "buy_v": 0.0, "sell_q": 0, "sell_v": 0.0})
                side = "buy" if trade["transactionType"] == "BUY" else "sell"
                entry[f"{side}_q"] += trade["tradedQuantity"]
                entry[f"{side}_v"] += trade["tradedQuantity"] * trade["tradedPrice"]
            rows = []
            for (segment, security, product), e in book.items():
                net = e["buy_q"] - e["sell_q"]
                buy_avg = e["buy_v"] / e["buy_q"] if e["buy_q"] else 0.0
                sell_avg = e["sell_v"] / e["sell_q"] if e["sell_q"] else 0.0
                ltp = PRICES.get((segment, security), 100.0)
                closed = min(e["buy_q"], e["sell_q"])
                realized = round((sell_avg - buy_avg) * closed, 2)
                unrealized = round((ltp - buy_avg) * net if net > 0 else (sell_avg - ltp) * -net, 2)
                rows.append({
                    "dhanClientId": self.client_id, "tradingSymbol": e["trade"]["tradingSymbol"],
                    "securityId": security, "positionType": "LONG" if net > 0 else "SHORT" if net < 0 else "CLOSED",
                    "exchangeSegment": segment, "productType": product, "buyAvg": round(buy_avg, 2),
                    "costPrice": round(buy_avg, 2), "buyQty": e["buy_q"], "sellAvg": round(sell_avg, 2),
                    "sellQty": e["sell_q"], "netQty": net, "realizedProfit": realized,
                    "unrealizedProfit": unrealized, "rbiReferenceRate": 1.0, "multiplier": 1,
                    "carryForwardBuyQty": 0, "carryForwardSellQty": 0, "carryForwardBuyValue": 0,
                    "carryForwardSellValue": 0, "dayBuyQty": e["buy_q"], "daySellQty": e["sell_q"],
                    "dayBuyValue": round(e["buy_v"], 2), "daySellValue": round(e["sell_v"], 2),
                    "drvExpiryDate": None, "drvOptionType": None, "drvStrikePrice": 0.0, "crossCurrency": False})
        return self._json(rows)

    def _ep_holdings(self, request: Request, body: Any) -> Response:
        if not self.holdings_rows:
            raise DhanError(400, "DH-1111", "No holdings available", error_type="Holding_Error")
        return self._json(copy.deepcopy(self.holdings_rows))

    # -- market data -------------------------------------------------------------------------------

    def _quote(self, segment: str, security: str) -> dict[str, Any]:
        ltp = PRICES.get((segment, security), 100.0)
        row = self.by_key[(segment, security)]
        tick = float(row["SEM_TICK_SIZE"] or 0) / 100 or 0.05
        index = segment == "IDX_I"
        buy = [{"quantity": 0 if index else 100 * n, "orders": 0 if index else 2 + n,
                "price": 0 if index else round(ltp - tick * n, 2)} for n in range(1, 6)]
        sell = [{"quantity": 0 if index else 80 * n, "orders": 0 if index else 1 + n,
                 "price": 0 if index else round(ltp + tick * n, 2)} for n in range(1, 6)]
        derivative = segment.endswith("FNO") or segment == "MCX_COMM"
        return {
            "average_price": ltp, "buy_quantity": 0 if index else 4000, "depth": {"buy": buy, "sell": sell},
            "last_price": ltp, "last_quantity": 0 if index else 5,
            "last_trade_time": self.now().strftime("%d/%m/%Y %H:%M:%S"),
            "lower_circuit_limit": 0 if index else round(ltp * 0.8, 2), "net_change": 5.0,
            "ohlc": {"open": ltp - 10, "close": ltp - 5, "high": ltp + 20, "low": ltp - 30},
            "oi": 4500 if derivative else 0, "oi_day_high": 0, "oi_day_low": 0,
            "sell_quantity": 0 if index else 3200, "upper_circuit_limit": 0 if index else round(ltp * 1.2, 2),
            "volume": 0 if index else 123456,
        }

    def _ep_quote(self, request: Request, body: Any) -> Response:
        self._data_api()
        if not isinstance(body, dict) or not body:
            raise DhanError(400, "814", "Invalid Request")
        if sum(len(ids) for ids in body.values() if isinstance(ids, list)) > 1000:
            raise DhanError(400, "804", "Requested number of instruments exceeds limit")
        data: dict[str, dict[str, Any]] = {}
        for segment, ids in body.items():
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise DhanError(400, "814", "Invalid Request")
            for security in ids:
                if (segment, str(security)) in self.by_key:
                    data.setdefault(segment, {})[str(security)] = self._quote(segment, str(security))
        return self._json({"data": data, "status": "success"})

    def _ep_ltp(self, request: Request, body: Any) -> Response:
        quotes = json.loads(self._ep_quote(request, body).get_data())
        data = {segment: {security: {"last_price": quote["last_price"]} for security, quote in rows.items()}
                for segment, rows in quotes["data"].items()}
        return self._json({"data": data, "status": "success"})

    def _series_request(self, body: Any) -> tuple[dict[str, str], str]:
        self._data_api()
        if not isinstance(body, dict):
            raise DhanError(400, "814", "Invalid Request")
        for name in ("securityId", "exchangeSegment", "instrument", "fromDate", "toDate"):
            if not body.get(name):
                raise DhanError(400, "814", f"Missing {name}")
        row = self.by_key.get((body["exchangeSegment"], str(body["securityId"])))
        if row is None:
            raise DhanError(400, "813", "Invalid SecurityId")
        if body["instrument"] != row["SEM_INSTRUMENT_NAME"]:
            raise DhanError(400, "814", "Invalid Request: instrument does not match the security")
        return row, body["exchangeSegment"]

    def _ep_daily(self, request: Request, body: Any) -> Response:
        row, segment = self._series_request(body)
        try:
            first, stop = dt.date.fromisoformat(body["fromDate"]), dt.date.fromisoformat(body["toDate"])
        except ValueError:
            raise DhanError(400, "812", "Invalid Date Format") from None
        return self._json(candle_series(row, segment, None, dt.datetime.combine(first, dt.time(0), IST),
                                        dt.datetime.combine(stop, dt.time(0), IST) - dt.timedelta(seconds=1),
                                        self.now(), bool(body.get("oi"))))

    def _ep_intraday(self, request: Request, body: Any) -> Response:
        row, segment = self._series_request(body)
        if str(body.get("interval")) not in INTRADAY_INTERVALS:
            raise DhanError(400, "814", "Invalid interval")
        try:
            first = dt.datetime.strptime(body["fromDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
            last = dt.datetime.strptime(body["toDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
        except ValueError:
            raise DhanError(400, "812", "Invalid Date Format") from None
        if last - first > dt.timedelta(days=INTRADAY_MAX_DAYS):
            raise DhanError(400, "814", "Invalid Request: at most 90 days of intraday data per request")
        return self._json(candle_series(row, segment, int(body["interval"]), first, last, self.now(),
                                        bool(body.get("oi"))))

    # -- margin ------------------------------------------------------------------------------------

    def _leg_margin(self, leg: Any) -> tuple[dict[str, float], str, str]:
        """One order's margin by the fake's rules (not SPAN): equity CNC the full value, intraday a fifth;
        futures 10 % SPAN and 3 % exposure on the value; a bought option its premium; a sold option 10 %
        SPAN and 2 % exposure on the strike's notional. Also the underlying and the side."""
        if not isinstance(leg, dict):
            raise DhanError(400, "DH-905", "Invalid request body.")
        for name in ("exchangeSegment", "transactionType", "quantity", "productType", "securityId"):
            if leg.get(name) in (None, ""):
                raise DhanError(400, "DH-905", f"Missing {name}.")
        row = self._instrument(leg["exchangeSegment"], leg["securityId"])
        if leg["productType"] not in _PRODUCTS or leg["transactionType"] not in _TRANSACTION_TYPES:
            raise DhanError(400, "DH-905", "Invalid productType or transactionType.")
        quantity = self._number(leg, "quantity", integer=True)
        price = self._number(leg, "price") or PRICES.get((leg["exchangeSegment"], leg["securityId"]), 100.0)
        value = quantity * price
        instrument = row["SEM_INSTRUMENT_NAME"]
        span = exposure = var = 0.0
        if instrument.startswith("FUT"):
            span, exposure = value * 0.10, value * 0.03
        elif instrument.startswith("OPT") and leg["transactionType"] == "SELL":
            notional = quantity * float(row["SEM_STRIKE_PRICE"])
            span, exposure = notional * 0.10, notional * 0.02
        elif instrument.startswith("OPT"):
            var = value
        else:
            var = value if leg["productType"] in ("CNC", "MTF") else value / 5
        margin = {"span": round(span, 2), "exposure": round(exposure, 2), "var": round(var, 2),
                  "total": round(span + exposure + var, 2)}
        underlying = row["SEM_TRADING_SYMBOL"].split("-")[0] if instrument != "EQUITY" else ""
        return margin, underlying, leg["transactionType"]

    def _ep_margin(self, request: Request, body: Any) -> Response:
        if not isinstance(body, dict) or body.get("dhanClientId") != self.client_id:
            raise DhanError(400, "DH-905", "Invalid dhanClientId.")
        margin, _underlying, _side = self._leg_margin(body)
        total = margin["total"]
        return self._json({"totalMargin": total, "spanMargin": margin["span"], "exposureMargin": margin["exposure"],
                           "availableBalance": self.available, "variableMargin": margin["var"],
                           "insufficientBalance": max(round(total - self.available, 2), 0), "brokerage": 20.0,
                           "leverage": "1.00"})

    def _ep_multi_margin(self, request: Request, body: Any) -> Response:
        """The legs priced together: derivatives of one underlying bought and sold in the same request
        need 30 % of their SPAN (the fake's hedge benefit). Amounts come as strings, snake_case."""
        if not isinstance(body, dict) or not isinstance(body.get("scripList"), list) or not body["scripList"]:
            raise DhanError(400, "DH-905", "Invalid scripList.")
        legs = [self._leg_margin(leg) for leg in body["scripList"]]
        sides: dict[str, set[str]] = {}
        for _margin, underlying, side in legs:
            if underlying:
                sides.setdefault(underlying, set()).add(side)
        hedged = {name for name, seen in sides.items() if len(seen) == 2}
        benefit = round(sum(m["span"] * 0.7 for m, underlying, _ in legs if underlying in hedged), 2)
        span = round(sum(m["span"] for m, _, _ in legs) - benefit, 2)
        exposure = round(sum(m["exposure"] for m, _, _ in legs), 2)
        total = round(sum(m["total"] for m, _, _ in legs) - benefit, 2)
        return self._json({"total_margin": f"{total:.2f}", "span_margin": f"{span:.2f}",
                           "exposure_margin": f"{exposure:.2f}", "equity_margin": "0.00", "fo_margin": f"{total:.2f}",
                           "commodity_margin": "0.00", "currency": "0.00", "hedge_benefit": f"{benefit:.2f}"})

    def _ep_scrip_master(self, request: Request, body: Any) -> Response:
        with open(SCRIP_MASTER, "rb") as fh:
            return Response(fh.read(), content_type="text/csv")


def candle_series(row: dict[str, str], segment: str, minutes: int | None, start: dt.datetime, end: dt.datetime,
                  now: dt.datetime, with_oi: bool) -> dict[str, list[Any]]:
    """The fake's candles of one instrument starting within [start, end] (IST) and not after `now`, in
    Dhan's columnar shape: weekdays, 09:15-15:30, intraday candles aligned to the session's open; a day
    candle is stamped at the day's midnight (IST)."""
    seed = int(row["SEM_SMST_SECURITY_ID"])
    base = PRICES.get((segment, row["SEM_SMST_SECURITY_ID"]), 100.0)
    tick = float(row["SEM_TICK_SIZE"] or 0) / 100 or 0.05
    opens_at, closes_at = SESSION
    session = (closes_at.hour * 60 + closes_at.minute) - (opens_at.hour * 60 + opens_at.minute)
    out: dict[str, list[Any]] = {k: [] for k in ("open", "high", "low", "close", "volume", "timestamp")}
    if with_oi:
        out["open_interest"] = []
    end = min(end, now)

    def price(day: dt.date, minute: int) -> float:
        return round(round(minute_price(seed, base, day, minute) / tick) * tick, 2)

    day = start.astimezone(IST).date()
    while day <= end.astimezone(IST).date():
        if day.weekday() < 5:
            if minutes is None:
                moment = dt.datetime.combine(day, dt.time(0), IST)
                first, last = price(day, -1), price(day, session - 1)
                candle = (first, round(max(first, last) * 1.006, 2), round(min(first, last) * 0.994, 2), last,
                          300000 + (seed * 7 + day.toordinal() * 131) % 200000, moment)
                _append(out, candle, with_oi, seed)
            else:
                session_open = dt.datetime.combine(day, opens_at, IST)
                for offset in range(0, session, minutes):
                    moment = session_open + dt.timedelta(minutes=offset)
                    if moment < start or moment > end:
                        continue
                    steps = range(offset, min(offset + minutes, session))
                    closes = [price(day, k) for k in steps]
                    candle_open = price(day, offset - 1)
                    candle = (candle_open, round(max(candle_open, *closes) + tick, 2),
                              round(min(candle_open, *closes) - tick, 2), closes[-1],
                              sum(500 + (seed * 3 + k * 31) % 2000 for k in steps), moment)
                    _append(out, candle, with_oi, seed)
        day += dt.timedelta(days=1)
    return out


def _append(out: dict[str, list[Any]], candle: tuple, with_oi: bool, seed: int) -> None:
    for key, value in zip(("open", "high", "low", "close", "volume"), candle[:5], strict=True):
        out[key].append(value)
    out["timestamp"].append(int(candle[5].timestamp()))
    if with_oi:
        out["open_interest"].append(1000000 + seed % 300000)


class RunningDhan(RunningFake):
    """A FakeDhan served on 127.0.0.1 on a free port, in a background thread."""

    fake: FakeDhan

    def __init__(self, fake: FakeDhan):
        super().__init__(fake)
        self.instruments_url = self.url + INSTRUMENTS_PATH


def running_dhan(**settings: Any) -> AbstractContextManager[RunningDhan]:
    """Serve a fresh FakeDhan(**settings) for the duration of the block."""
    return running(RunningDhan(FakeDhan(**settings)))
