"""A fake Angel One SmartAPI server: a small WSGI app with its state in memory, for driving the real
Angel One adapter over real HTTP.

It speaks the documented REST API: loginByPassword (client code, PIN, TOTP checked as RFC 6238 codes of
the account's secret), logout, getProfile, getRMS, placeOrder/modifyOrder/cancelOrder, getOrderBook,
getTradeBook, getPosition, getHolding, the FULL mode market quote (by exchange and token, five levels of
depth), getCandleData and getOIData (deterministic candles, SmartAPI's day limits per interval), the
margin calculator (batch) and the JSON scrip master. Every secure call must carry X-PrivateKey (the app's
API key), X-UserType, X-SourceID and `Authorization: Bearer <jwtToken>`. Answers come in SmartAPI's
envelope `{"status", "message", "errorcode", "data"}`, refusals with its codes (AB1050 wrong TOTP,
AB1000 wrong PIN, AB1009 unknown symbol, AB1013 unknown order...), mostly with HTTP 200 as SmartAPI
does; an expired or unknown token gets the gateway's `{"success": false, "message": "Invalid Token",
"errorCode": "AG8001", "data": ""}` with HTTP 401. Where SmartAPI's exact words are not documented the
fake's own are used; tests assert on kinds, not on those. `calls` counts the requests per path.

Use `running_angel()` (a context manager) to serve it on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import copy
import datetime as dt
import hmac
import itertools
import json
import secrets
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from services.accounts.two_factor import code_at
from tests.fakes.serving import RunningFake, running

IST = ZoneInfo("Asia/Kolkata")
API_KEY = "angelfakekey"
CLIENT_CODE = "A123456"
PIN = "4321"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # base32 (160 bits), as Angel's "enable TOTP" page shows it
INSTRUMENTS_PATH = "/OpenAPI_File/files/OpenAPIScripMaster.json"
INSTRUMENTS = json.loads((Path(__file__).with_name("angelone_instruments.json")).read_text())

_SECURE = "/rest/secure/angelbroking"
# Each instrument's last price in the fake (by token); others quote at 100.
LTP = {
    "1594": 1500.5,
    "3045": 800.0,
    "2885": 2900.1,
    "99926000": 22000.0,
    "99926009": 48000.0,
    "99919000": 72000.0,
    "500112": 800.5,
    "35001": 22100.0,
    "35002": 150.25,
    "35003": 120.75,
}
# SmartAPI's candle intervals: minutes per candle (0: a day), and the most days one request may span.
INTERVALS = {
    "ONE_MINUTE": (1, 30),
    "THREE_MINUTE": (3, 60),
    "FIVE_MINUTE": (5, 100),
    "TEN_MINUTE": (10, 100),
    "FIFTEEN_MINUTE": (15, 200),
    "THIRTY_MINUTE": (30, 200),
    "ONE_HOUR": (60, 400),
    "ONE_DAY": (0, 2000),
}
_ORDER_TYPES = {"MARKET", "LIMIT", "STOPLOSS_LIMIT", "STOPLOSS_MARKET"}
_PRODUCTS = {"DELIVERY", "INTRADAY", "CARRYFORWARD", "MARGIN", "BO", "CO"}
_VARIETIES = {"NORMAL", "STOPLOSS", "AMO", "ROBO"}
_LIVE = {"open", "trigger pending"}
ORDER_TIME = "%d-%b-%Y %H:%M:%S"


class AngelError(Exception):
    def __init__(self, code: str, message: str, status: int = 200):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Fault:
    """A canned answer for the next request(s) whose path starts with `path`."""

    path: str
    status: int = 200
    code: str = "AB1004"
    message: str = "Something Went Wrong, Please Try After Sometime"
    body: bytes | None = None  # a raw body instead of SmartAPI's envelope
    content_type: str = "application/json"
    times: int = 1


def _next_midnight(moment: dt.datetime) -> dt.datetime:
    """A session "remains active till 12 midnight" (SmartAPI documentation)."""
    return dt.datetime.combine(moment.astimezone(IST).date() + dt.timedelta(days=1), dt.time(0, 0), tzinfo=IST)


@dataclass
class FakeAngel:
    """SmartAPI's state for one account, and the WSGI app serving it."""

    api_key: str = API_KEY
    client_code: str = CLIENT_CODE
    pin: str = PIN
    totp_secret: str = TOTP_SECRET
    user_name: str = "Angel Tester"
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(IST))
    instruments: list[dict[str, str]] = field(default_factory=lambda: copy.deepcopy(INSTRUMENTS))

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: dict[str, dt.datetime] = {}  # jwtToken -> expiry
        self.orders: dict[str, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.faults: deque[Fault] = deque()
        self.calls: Counter[str] = Counter()
        self.bodies: list[tuple[str, Any]] = []  # (path, JSON body) of every POST
        self.request_headers: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self.holdings = [
            {"tradingsymbol": "INFY-EQ", "exchange": "NSE", "isin": "INE009A01021", "t1quantity": 0,
             "realisedquantity": 10, "quantity": 10, "authorisedquantity": 0, "product": "DELIVERY",
             "collateralquantity": None, "collateraltype": None, "haircut": 0, "averageprice": 1400.0,
             "ltp": 1500.5, "symboltoken": "1594", "close": 1490.0, "profitandloss": 1005, "pnlpercentage": 7.18},
        ]
        self.rms = {
            "net": "99725.05", "availablecash": "99725.05", "availableintradaypayin": "0",
            "availablelimitmargin": "0", "collateral": "5000.00", "m2munrealized": "-120.50",
            "m2mrealized": "761.70", "utiliseddebits": "145706.55", "utilisedspan": "0",
            "utilisedoptionpremium": "0", "utilisedholdingsales": "0", "utilisedexposure": "0",
            "utilisedturnover": "0", "utilisedpayout": "0",
        }
        auth, secure = "/rest/auth/angelbroking", _SECURE
        self.url_map = Map([
            Rule(f"{auth}/user/v1/loginByPassword", methods=["POST"], endpoint="login"),
            Rule(f"{secure}/user/v1/logout", methods=["POST"], endpoint="logout"),
            Rule(f"{secure}/user/v1/getProfile", methods=["GET"], endpoint="profile"),
            Rule(f"{secure}/user/v1/getRMS", methods=["GET"], endpoint="rms"),
            Rule(f"{secure}/order/v1/placeOrder", methods=["POST"], endpoint="place"),
            Rule(f"{secure}/order/v1/modifyOrder", methods=["POST"], endpoint="modify"),
            Rule(f"{secure}/order/v1/cancelOrder", methods=["POST"], endpoint="cancel"),
            Rule(f"{secure}/order/v1/getOrderBook", methods=["GET"], endpoint="orderbook"),
            Rule(f"{secure}/order/v1/details/<unique_id>", methods=["GET"], endpoint="details"),
            Rule(f"{secure}/order/v1/getTradeBook", methods=["GET"], endpoint="tradebook"),
            Rule(f"{secure}/order/v1/getPosition", methods=["GET"], endpoint="positions"),
            Rule(f"{secure}/portfolio/v1/getHolding", methods=["GET"], endpoint="holdings_list"),
            Rule(f"{secure}/market/v1/quote", methods=["POST"], endpoint="quote"),
            Rule(f"{secure}/historical/v1/getCandleData", methods=["POST"], endpoint="candles"),
            Rule(f"{secure}/historical/v1/getOIData", methods=["POST"], endpoint="oi"),
            Rule(f"{secure}/margin/v1/batch", methods=["POST"], endpoint="margin"),
            Rule(INSTRUMENTS_PATH, methods=["GET"], endpoint="scrip_master"),
        ])

    # -- helpers for tests -------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.clock().astimezone(IST)

    def current_totp(self) -> str:
        return code_at(self.totp_secret, self.now())

    def login_fields(self) -> dict[str, str]:
        """The login form as a user fills it in now."""
        return {"clientcode": self.client_code, "pin": self.pin, "totp": self.current_totp()}

    def expire_all(self) -> None:
        """Move every session's expiry into the past (SmartAPI's midnight flush)."""
        with self.lock:
            for token in self.sessions:
                self.sessions[token] = self.now() - dt.timedelta(seconds=1)

    def fail_next(self, path: str, **kw: Any) -> None:
        """The next request to a path starting with `path` (e.g. "/rest/secure/angelbroking/order") gets
        SmartAPI's refusal with `code` and `message` (or a raw `body`) and HTTP `status`."""
        self.faults.append(Fault(path, **kw))

    def calls_to(self, fragment: str) -> int:
        """How many requests went to paths containing `fragment` (e.g. "placeOrder")."""
        with self.lock:
            return sum(n for path, n in self.calls.items() if fragment in path)

    def set_status(self, orderid: str, status: str, text: str = "") -> None:
        with self.lock:
            self.orders[orderid].update(orderstatus=status, status=status, text=text, updatetime=self._stamp())

    def fill(self, orderid: str, price: float | None = None) -> None:
        with self.lock:
            order = self.orders[orderid]
            self._fill(order, price if price is not None else float(order["price"]))

    # -- WSGI --------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self._dispatch(Request(environ))(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        with self.lock:
            self.calls[request.path] += 1
            self.request_headers.append(dict(request.headers))
            fault = next((f for f in self.faults if request.path.startswith(f.path)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
        if fault is not None:
            if fault.body is not None:
                return Response(fault.body, status=fault.status, content_type=fault.content_type)
            return self._error(AngelError(fault.code, fault.message, fault.status))
        try:
            endpoint, args = self.url_map.bind_to_environ(request.environ).match()
            body = None
            if request.method == "POST" and endpoint != "scrip_master":
                if "json" not in request.headers.get("Content-Type", ""):
                    return Response("Unsupported Media Type", status=415, content_type="text/plain")
                try:
                    body = json.loads(request.get_data(as_text=True) or "{}")
                except ValueError:
                    raise AngelError("AB2000", "Invalid request body", 400) from None
                with self.lock:
                    self.bodies.append((request.path, copy.deepcopy(body)))
            if endpoint != "scrip_master":
                self._check_headers(request)
            return getattr(self, f"_ep_{endpoint}")(request, body, **args)
        except AngelError as exc:
            return self._error(exc)
        except HTTPException as exc:
            return self._error(AngelError("AB2000", exc.name, exc.code or 500))

    @staticmethod
    def _ok(data: Any) -> Response:
        body = {"status": True, "message": "SUCCESS", "errorcode": "", "data": data}
        return Response(json.dumps(body), content_type="application/json")

    @staticmethod
    def _error(exc: AngelError) -> Response:
        if exc.code.startswith("AG8"):  # the API gateway's spelling
            body: dict[str, Any] = {"success": False, "message": exc.message, "errorCode": exc.code, "data": ""}
        else:
            body = {"status": False, "message": exc.message, "errorcode": exc.code, "data": None}
        return Response(json.dumps(body), status=exc.status, content_type="application/json")

    def _check_headers(self, request: Request) -> None:
        headers = request.headers
        if not hmac.compare_digest(headers.get("X-PrivateKey", ""), self.api_key):
            raise AngelError("AG8004", "Invalid API Key", 403)
        for name in ("X-UserType", "X-SourceID", "X-ClientLocalIP", "X-ClientPublicIP", "X-MACAddress"):
            if not headers.get(name):
                raise AngelError("AB2000", f"{name} header missing", 400)

    def _authorise(self, request: Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            raise AngelError("AG8003", "Token missing", 401)
        with self.lock:
            expiry = self.sessions.get(token)
            if expiry is None or expiry <= self.now():
                self.sessions.pop(token, None)
                raise AngelError("AG8001", "Invalid Token", 401)

    def _stamp(self) -> str:
        return self.now().strftime(ORDER_TIME)

    # -- session -----------------------------------------------------------------------------------

    def _ep_login(self, request: Request, body: dict[str, Any]) -> Response:
        if body.get("clientcode") != self.client_code or body.get("password") != self.pin:
            raise AngelError("AB1000", "Invalid Email Or Password")
        now = self.now()
        valid = {code_at(self.totp_secret, now + dt.timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
        if str(body.get("totp")) not in valid:
            raise AngelError("AB1050", "Invalid totp")
        token = "eyJ" + secrets.token_urlsafe(24)
        with self.lock:
            self.sessions[token] = _next_midnight(now)
        return self._ok({"jwtToken": token, "refreshToken": "eyR" + secrets.token_urlsafe(16),
                         "feedToken": secrets.token_hex(8), "state": body.get("state")})

    def _ep_logout(self, request: Request, body: dict[str, Any]) -> Response:
        self._authorise(request)
        if body.get("clientcode") != self.client_code:
            raise AngelError("AB1032", "User Not Found")
        token = request.headers["Authorization"].partition(" ")[2]
        with self.lock:
            self.sessions.pop(token, None)
        return self._ok("")

    def _ep_profile(self, request: Request, _body: Any) -> Response:
        self._authorise(request)
        return self._ok({"clientcode": self.client_code, "name": self.user_name, "email": "", "mobileno": "",
                         "exchanges": ["NSE", "BSE", "NFO", "BFO", "MCX", "CDS"],
                         "products": ["MARGIN", "MIS", "NRML", "CNC", "CO", "BO"], "lastlogintime": "",
                         "brokerid": "B2C"})

    def _ep_rms(self, request: Request, _body: Any) -> Response:
        self._authorise(request)
        return self._ok(dict(self.rms))

    # -- orders ------------------------------------------------------------------------------------

    def instrument(self, exchange: str, token: str) -> dict[str, str] | None:
        return next((r for r in self.instruments if r["exch_seg"] == exchange and r["token"] == token), None)

    def _order_fields(self, body: dict[str, Any]) -> tuple[str, float, float, int]:
        ordertype = str(body.get("ordertype") or "")
        if ordertype not in _ORDER_TYPES:
            raise AngelError("AB1008", "Invalid Order Type")
        if body.get("producttype") not in _PRODUCTS:
            raise AngelError("AB1012", "Invalid Product Type")
        try:
            price, trigger = float(body.get("price") or 0), float(body.get("triggerprice") or 0)
            quantity = int(body.get("quantity") or 0)
        except (TypeError, ValueError):
            raise AngelError("AB2000", "Invalid numeric value") from None
        if quantity <= 0:
            raise AngelError("AB2000", "Invalid quantity")
        if ordertype in ("LIMIT", "STOPLOSS_LIMIT") and price <= 0:
            raise AngelError("AB2000", "Invalid price")
        if ordertype.startswith("STOPLOSS") and trigger <= 0:
            raise AngelError("AB2000", "Invalid trigger price")
        return ordertype, price, trigger, quantity

    def _ep_place(self, request: Request, body: dict[str, Any]) -> Response:
        self._authorise(request)
        for name in ("variety", "tradingsymbol", "symboltoken", "transactiontype", "exchange", "ordertype",
                     "producttype", "duration", "quantity"):
            if not body.get(name):
                raise AngelError("AB2000", f"{name} is required")
        if body["variety"] not in _VARIETIES:
            raise AngelError("AB1008", "Invalid Order Variety")
        ordertype, price, trigger, quantity = self._order_fields(body)
        row = self.instrument(body["exchange"], str(body["symboltoken"]))
        if row is None or row["symbol"] != body["tradingsymbol"]:
            raise AngelError("AB1009", "Symbol Not Found")
        if body["variety"] == "STOPLOSS" and not ordertype.startswith("STOPLOSS"):
            raise AngelError("AB1008", "Invalid Order Variety")
        if len(str(body.get("ordertag") or "")) >= 20:
            raise AngelError("AB4008", "ordertag length should be less than 20 characters")
        now = self.now()
        orderid = f"{now:%y%m%d}{next(self._ids):09d}"
        order = {
            "variety": body["variety"], "ordertype": ordertype, "producttype": body["producttype"],
            "duration": body["duration"], "price": price, "triggerprice": trigger, "quantity": str(quantity),
            "disclosedquantity": str(body.get("disclosedquantity") or "0"), "squareoff": 0.0, "stoploss": 0.0,
            "trailingstoploss": 0.0, "tradingsymbol": row["symbol"], "transactiontype": body["transactiontype"],
            "exchange": row["exch_seg"], "symboltoken": row["token"], "ordertag": body.get("ordertag") or "",
            "instrumenttype": row["instrumenttype"], "strikeprice": -1.0, "optiontype": "", "expirydate": "",
            "lotsize": row["lotsize"], "cancelsize": "0", "averageprice": 0.0, "filledshares": "0",
            "unfilledshares": str(quantity), "orderid": orderid, "text": "", "status": "open",
            "orderstatus": "open", "updatetime": self._stamp(), "exchtime": self._stamp(),
            "exchorderupdatetime": self._stamp(), "fillid": "", "filltime": "", "parentorderid": "",
            "uniqueorderid": str(uuid.uuid4()), "exchangeorderid": f"1100000{next(self._ids):09d}",
        }
        ltp = LTP.get(row["token"], 100.0)
        with self.lock:
            self.orders[orderid] = order
            self._settle(order, ltp)
        return self._ok({"script": row["symbol"], "orderid": orderid, "uniqueorderid": order["uniqueorderid"]})

    def _settle(self, order: dict[str, Any], ltp: float) -> None:
        kind, buy = order["ordertype"], order["transactiontype"] == "BUY"
        if kind == "MARKET" or (kind == "LIMIT" and (order["price"] >= ltp if buy else order["price"] <= ltp)):
            self._fill(order, ltp if kind == "MARKET" else order["price"])
        elif kind.startswith("STOPLOSS"):
            order.update(status="trigger pending", orderstatus="trigger pending")

    def _fill(self, order: dict[str, Any], price: float) -> None:
        stamp = self.now()
        order.update(status="complete", orderstatus="complete", averageprice=price, filledshares=order["quantity"],
                     unfilledshares="0", updatetime=stamp.strftime(ORDER_TIME))
        self.trades.append({
            "exchange": order["exchange"], "producttype": order["producttype"],
            "tradingsymbol": order["tradingsymbol"], "instrumenttype": order["instrumenttype"],
            "symbolgroup": "EQ", "strikeprice": "-1", "optiontype": "", "expirydate": "", "marketlot": "1",
            "precision": "2", "multiplier": "-1", "tradevalue": str(price * int(order["quantity"])),
            "transactiontype": order["transactiontype"], "fillprice": str(price), "fillsize": order["quantity"],
            "orderid": order["orderid"], "fillid": f"F{len(self.trades) + 1:07d}",
            "filltime": stamp.strftime("%H:%M:%S"), "symboltoken": order["symboltoken"],
        })

    def _live_order(self, orderid: Any) -> dict[str, Any]:
        order = self.orders.get(str(orderid or ""))
        if order is None:
            raise AngelError("AB1013", "Order not found")
        if order["orderstatus"] not in _LIVE:
            raise AngelError("AB2000", f"Order is {order['orderstatus']} and cannot be changed")
        return order

    def _ep_modify(self, request: Request, body: dict[str, Any]) -> Response:
        self._authorise(request)
        with self.lock:
            order = self._live_order(body.get("orderid"))
        ordertype, price, trigger, quantity = self._order_fields(body)
        with self.lock:
            order.update(ordertype=ordertype, price=price, triggerprice=trigger, quantity=str(quantity),
                         unfilledshares=str(quantity), status="open", orderstatus="open", updatetime=self._stamp())
            self._settle(order, LTP.get(order["symboltoken"], 100.0))
        return self._ok({"orderid": order["orderid"], "uniqueorderid": order["uniqueorderid"]})

    def _ep_cancel(self, request: Request, body: dict[str, Any]) -> Response:
        self._authorise(request)
        with self.lock:
            order = self._live_order(body.get("orderid"))
            if body.get("variety") != order["variety"]:
                raise AngelError("AB1008", "Invalid Order Variety")
            order.update(status="cancelled", orderstatus="cancelled", cancelsize=order["unfilledshares"],
                         updatetime=self._stamp())
        return self._ok({"orderid": order["orderid"], "uniqueorderid": order["uniqueorderid"]})

    def _ep_orderbook(self, request: Request, _body: Any) -> Response:
        self._authorise(request)
        with self.lock:
            rows = [copy.deepcopy(o) for o in self.orders.values()]
        return self._ok(rows or None)  # SmartAPI sends `data: null` for an empty book

    def _ep_details(self, request: Request, _body: Any, unique_id: str) -> Response:
        self._authorise(request)
        with self.lock:
            order = next((o for o in self.orders.values() if o["uniqueorderid"] == unique_id), None)
            if order is None:
                raise AngelError("AB1013", "Order not found")
            return self._ok(copy.deepcopy(order))

    def _ep_tradebook(self, request: Request, _body: Any) -> Response:
        self._authorise(request)
        with self.lock:
            return self._ok(copy.deepcopy(self.trades) or None)

    def _ep_positions(self, request: Request, _body: Any) -> Response:
        self._authorise(request)
        book: dict[tuple[str, str, str], dict[str, Any]] = {}
        with self.lock:
            for trade in self.trades:
                key = (trade["exchange"], trade["tradingsymbol"], trade["producttype"])
                pos = book.setdefault(key, {"buyqty": 0, "sellqty": 0, "buyamount": 0.0, "sellamount": 0.0,
                                            "symboltoken": trade["symboltoken"]})
                qty, value = int(trade["fillsize"]), float(trade["fillprice"]) * int(trade["fillsize"])
                side = "buy" if trade["transactiontype"] == "BUY" else "sell"
                pos[f"{side}qty"] += qty
                pos[f"{side}amount"] += value
        rows = []
        for (exchange, symbol, product), pos in book.items():
            net = pos["buyqty"] - pos["sellqty"]
            ltp = LTP.get(pos["symboltoken"], 100.0)
            buyavg = pos["buyamount"] / pos["buyqty"] if pos["buyqty"] else 0.0
            sellavg = pos["sellamount"] / pos["sellqty"] if pos["sellqty"] else 0.0
            avg = buyavg if net > 0 else sellavg if net < 0 else 0.0
            rows.append({
                "exchange": exchange, "symboltoken": pos["symboltoken"], "producttype": product,
                "tradingsymbol": symbol, "symbolname": symbol.split("-")[0], "instrumenttype": "",
                "buyqty": str(pos["buyqty"]), "sellqty": str(pos["sellqty"]),
                "buyamount": f"{pos['buyamount']:.2f}", "sellamount": f"{pos['sellamount']:.2f}",
                "buyavgprice": f"{buyavg:.2f}", "sellavgprice": f"{sellavg:.2f}", "avgnetprice": f"{avg:.2f}",
                "netvalue": f"{pos['sellamount'] - pos['buyamount']:.2f}", "netqty": str(net),
                "netprice": f"{avg:.2f}", "lotsize": "1", "cfbuyqty": "0", "cfsellqty": "0",
                "totalbuyvalue": f"{pos['buyamount']:.2f}", "totalsellvalue": f"{pos['sellamount']:.2f}",
                # Not in the documented sample row; sent by SmartAPI in practice (and needed for a P&L).
                "ltp": f"{ltp:.2f}",
            })
        return self._ok(rows or None)

    def _ep_holdings_list(self, request: Request, _body: Any) -> Response:
        self._authorise(request)
        return self._ok(copy.deepcopy(self.holdings))

    # -- market data -------------------------------------------------------------------------------

    def quote_of(self, row: dict[str, str]) -> dict[str, Any]:
        ltp = LTP.get(row["token"], 100.0)
        index = row["instrumenttype"] == "AMXIDX"
        derivative = row["exch_seg"] in ("NFO", "BFO", "MCX", "CDS")
        tick = 0.05
        depth = {
            "buy": [{"price": 0 if index else round(ltp - tick * (k + 1), 2), "quantity": 0 if index else 100 * (k + 1),
                     "orders": 0 if index else k + 1} for k in range(5)],
            "sell": [{"price": 0 if index else round(ltp + tick * (k + 1), 2),
                      "quantity": 0 if index else 90 * (k + 1), "orders": 0 if index else k + 2} for k in range(5)],
        }
        return {
            "exchange": row["exch_seg"], "tradingSymbol": row["symbol"], "symbolToken": row["token"], "ltp": ltp,
            "open": ltp - 10, "high": ltp + 20, "low": ltp - 30, "close": ltp - 5, "lastTradeQty": 0 if index else 25,
            "exchFeedTime": self._stamp(), "exchTradeTime": self._stamp(), "netChange": 5, "percentChange": 0.1,
            "avgPrice": ltp, "tradeVolume": 0 if index else 123456, "opnInterest": 250000 if derivative else 0,
            "lowerCircuit": 0 if index else round(ltp * 0.9, 2), "upperCircuit": 0 if index else round(ltp * 1.1, 2),
            "totBuyQuan": 0 if index else 50000, "totSellQuan": 0 if index else 45000, "52WeekLow": ltp * 0.7,
            "52WeekHigh": ltp * 1.2, "depth": depth,
        }

    def _ep_quote(self, request: Request, body: dict[str, Any]) -> Response:
        self._authorise(request)
        if body.get("mode") not in ("LTP", "OHLC", "FULL"):
            raise AngelError("AB2000", "Invalid mode")
        wanted = body.get("exchangeTokens")
        if not isinstance(wanted, dict) or not wanted:
            raise AngelError("AB2000", "exchangeTokens is required")
        if sum(len(tokens) for tokens in wanted.values()) > 50:
            raise AngelError("AB2000", "A maximum of 50 tokens can be requested at once")
        fetched, unfetched = [], []
        for exchange, tokens in wanted.items():
            for token in tokens:
                row = self.instrument(exchange, str(token))
                if row is None:
                    unfetched.append({"exchange": exchange, "symbolToken": str(token),
                                      "message": "Invalid Token", "errorCode": "AB1018"})
                else:
                    fetched.append(self.quote_of(row))
        return self._ok({"fetched": fetched, "unfetched": unfetched})

    def _history_request(self, body: dict[str, Any]) -> tuple[dict[str, str], int, dt.datetime, dt.datetime]:
        row = self.instrument(str(body.get("exchange")), str(body.get("symboltoken")))
        if row is None:
            raise AngelError("AB1018", "Failed to get symbol details")
        interval = INTERVALS.get(str(body.get("interval")))
        if interval is None:
            raise AngelError("AB2000", "Invalid interval")
        try:
            start = dt.datetime.strptime(str(body.get("fromdate")), "%Y-%m-%d %H:%M").replace(tzinfo=IST)
            end = dt.datetime.strptime(str(body.get("todate")), "%Y-%m-%d %H:%M").replace(tzinfo=IST)
        except ValueError:
            raise AngelError("AB2000", "Invalid date format") from None
        minutes, max_days = interval
        if end < start or (end - start) > dt.timedelta(days=max_days):
            raise AngelError("AB2000", f"The date range may span at most {max_days} days for this interval")
        return row, minutes, start, end

    def _ep_candles(self, request: Request, body: dict[str, Any]) -> Response:
        self._authorise(request)
        row, minutes, start, end = self._history_request(body)
        return self._ok([c[:6] for c in candle_series(row, minutes, start, end)])

    def _ep_oi(self, request: Request, body: dict[str, Any]) -> Response:
        self._authorise(request)
        row, minutes, start, end = self._history_request(body)
        return self._ok([{"time": c[0], "oi": c[6]} for c in candle_series(row, minutes, start, end)])

    def _ep_margin(self, request: Request, body: dict[str, Any]) -> Response:
        self._authorise(request)
        positions = body.get("positions")
        if not isinstance(positions, list) or not positions:
            raise AngelError("AB2000", "positions is required")
        if len(positions) > 50:
            raise AngelError("AB2000", "A maximum of 50 positions is allowed")
        total = span = premium = 0.0
        legs = []
        for leg in positions:
            row = self.instrument(str(leg.get("exchange")), str(leg.get("token")))
            if row is None:
                raise AngelError("AB1018", "Failed to get symbol details")
            if leg.get("productType") not in _PRODUCTS or leg.get("orderType") not in _ORDER_TYPES:
                raise AngelError("AB2000", "Invalid productType or orderType")
            qty = int(leg.get("qty") or 0)
            price = float(leg.get("price") or 0) or LTP.get(row["token"], 100.0)
            if row["instrumenttype"].startswith("OPT") and leg.get("tradeType") == "BUY":
                premium += price * qty
                legs.append(price * qty)
            elif row["exch_seg"] in ("NFO", "BFO", "MCX", "CDS"):
                leg_span = round(price * qty * 0.12, 2)
                span += leg_span
                legs.append(leg_span * 1.25)
            else:
                legs.append(price * qty * (0.2 if leg.get("productType") == "INTRADAY" else 1.0))
        gross = sum(legs)
        hedged = len(positions) > 1 and span > 0
        total = round(gross * (0.7 if hedged else 1.0), 2)
        return self._ok({
            "totalMarginRequired": total,
            "marginComponents": {"netPremium": premium, "spanMargin": span,
                                 "marginBenefit": round(gross - total, 2), "deliveryMargin": 0,
                                 "nonNFOMargin": 0, "totOptionsPremium": premium},
            "marginBreakup": [], "optionsBuy": {"totOptionsPremium": premium, "optionDetails": []},
        })

    def _ep_scrip_master(self, request: Request, _body: Any) -> Response:
        # The real file is one JSON array; sent here in pieces so the client has to stream it.
        rows = [json.dumps(row) for row in self.instruments]

        def chunks() -> Iterator[bytes]:
            yield b"["
            for n, text in enumerate(rows):
                yield ((", " if n else "") + text).encode()
            yield b"]"

        return Response(chunks(), content_type="application/json")


def _minute_price(seed: int, base: float, day: dt.date, minute: int) -> float:
    wave = ((day.toordinal() * 37 + minute * 13 + seed) % 200 - 100) / 1000.0
    return base * (1 + wave * 0.01)


def candle_series(row: dict[str, str], minutes: int, start: dt.datetime, end: dt.datetime) -> list[list[Any]]:
    """Deterministic candles in 09:15-15:30 IST weekday sessions: [time, o, h, l, c, volume, oi]."""
    seed = int(row["token"]) % 997
    base = LTP.get(row["token"], 100.0)
    derivative = row["exch_seg"] in ("NFO", "BFO", "MCX", "CDS")
    out: list[list[Any]] = []
    day = start.astimezone(IST).date()
    while day <= end.astimezone(IST).date():
        if day.weekday() < 5:
            opens = dt.datetime.combine(day, dt.time(9, 15), tzinfo=IST)
            if minutes == 0:
                moment = dt.datetime.combine(day, dt.time(0, 0), tzinfo=IST)
                prices = [round(_minute_price(seed, base, day, k), 2) for k in (0, 100, 200, 375)]
                out.append([moment.isoformat(), prices[0], max(prices) + 1, min(prices) - 1, prices[-1],
                            100000 + seed, 1000000 + seed if derivative else 0])
            else:
                for offset in range(0, 375, minutes):
                    moment = opens + dt.timedelta(minutes=offset)
                    if moment < start or moment > end:
                        continue
                    first = round(_minute_price(seed, base, day, offset), 2)
                    last = round(_minute_price(seed, base, day, offset + minutes), 2)
                    out.append([moment.isoformat(), first, max(first, last) + 0.5, min(first, last) - 0.5, last,
                                500 + (seed + offset) % 900, 1000000 + offset if derivative else 0])
        day += dt.timedelta(days=1)
    return out


class RunningAngel(RunningFake):
    """A FakeAngel served on 127.0.0.1 on a free port, in a background thread."""

    fake: FakeAngel

    def __init__(self, fake: FakeAngel):
        super().__init__(fake)
        self.instruments_url = self.url + INSTRUMENTS_PATH


def running_angel(**settings: Any) -> AbstractContextManager[RunningAngel]:
    """Serve a fresh FakeAngel(**settings) for the duration of the block."""
    return running(RunningAngel(FakeAngel(**settings)))
