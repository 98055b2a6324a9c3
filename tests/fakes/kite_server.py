"""A fake Kite Connect v3 server: a small WSGI app with its state in memory, for driving the real
Zerodha adapter (and the kiteconnect client under it) over real HTTP.

It speaks the documented API: the login redirect, the session (POST /session/token with checksum
validation, DELETE /session/token), the user profile and margins, orders (place, modify, cancel,
list, history, trades), the trade book, positions, holdings, full quotes with five levels of
depth, historical candles (deterministic, in the exchange's weekday sessions, with Kite's limit on
the days one request may span), basket margins and the gzipped instruments CSV. Errors come in
Kite's shape, `{"status": "error", "message", "data": null, "error_type"}`, with Kite's statuses:
403 TokenException for a bad or expired session, 400 InputException for bad parameters, and so
on. Where Kite's exact message is not documented the fake's own words are used; tests assert on
kinds, not on those. `calls` counts the requests per path, so a test can assert how many reached
Kite.

Use `running_kite()` (a context manager) to serve it on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import hashlib
import hmac
import io
import itertools
import json
import math
import secrets
import threading
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.fakes.serving import RunningFake, running

IST = ZoneInfo("Asia/Kolkata")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

API_KEY = "kitefakekey"
API_SECRET = "kitefakesecret"
USER_ID = "AB1234"

INSTRUMENT_COLUMNS = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)

# A few rows in the shape of Kite's dump: equities, an index, a future, an option, a commodity, and a
# name with a comma in it (quoted, as in the real file).
_DEFAULT_INSTRUMENTS_CSV = """\
408065,1594,INFY,INFOSYS,1500.5,,0,0.05,1,EQ,NSE,NSE
779521,3045,SBIN,STATE BANK OF INDIA,800,,0,0.05,1,EQ,NSE,NSE
128083204,500325,RELIANCE,RELIANCE INDUSTRIES,2900.1,,0,0.05,1,EQ,BSE,BSE
256265,1001,NIFTY 50,NIFTY 50,22000,,0,0,0,EQ,INDICES,NSE
13238786,51714,NIFTY24APRFUT,NIFTY,22100,2024-04-25,0,0.05,50,FUT,NFO-FUT,NFO
12201986,47660,NIFTY2442522000CE,NIFTY,150.25,2024-04-25,22000,0.05,50,CE,NFO-OPT,NFO
109134855,426309,CRUDEOIL24APRFUT,CRUDEOIL,6900,2024-04-19,0,1,100,FUT,MCX-FUT,MCX
2714625,10604,BHARTIARTL,"BHARTI AIRTEL, LTD",1200,,0,0.05,1,EQ,NSE,NSE
"""
DEFAULT_INSTRUMENTS = [tuple(row) for row in csv.reader(io.StringIO(_DEFAULT_INSTRUMENTS_CSV))]

_ORDER_TYPES = {"MARKET", "LIMIT", "SL", "SL-M"}
_PRODUCTS = {"MIS", "NRML", "CNC", "MTF"}
_VARIETIES = {"regular", "amo", "co", "iceberg", "auction"}
_LIVE = {"OPEN", "TRIGGER PENDING"}

# Kite's candle intervals: minutes per candle (0: a day), and the most days one request may span.
HISTORY_INTERVALS = {
    "minute": (1, 60),
    "3minute": (3, 100),
    "5minute": (5, 100),
    "10minute": (10, 100),
    "15minute": (15, 200),
    "30minute": (30, 200),
    "60minute": (60, 400),
    "day": (0, 2000),
}
# The fake's trading sessions (IST), by exchange; candles fall in them, on weekdays.
SESSIONS = {
    "NSE": (dt.time(9, 15), dt.time(15, 30)),
    "BSE": (dt.time(9, 15), dt.time(15, 30)),
    "NFO": (dt.time(9, 15), dt.time(15, 30)),
    "BFO": (dt.time(9, 15), dt.time(15, 30)),
    "CDS": (dt.time(9, 0), dt.time(17, 0)),
    "BCD": (dt.time(9, 0), dt.time(17, 0)),
    "MCX": (dt.time(9, 0), dt.time(23, 30)),
}
CANDLE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # "2024-01-01T09:15:00+0530", as Kite sends


class KiteError(Exception):
    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


@dataclass
class Fault:
    """A canned answer for the next request(s) whose path starts with `path`."""

    status: int
    error_type: str | None = None
    message: str = "Something went wrong"
    path: str = "/"
    times: int = 1
    body: bytes | None = None  # a raw body instead of Kite's JSON error
    after: int = 0  # matching requests answered normally before the fault strikes
    content_type: str = "application/json"


@dataclass
class AccessToken:
    user_id: str
    expires_at: dt.datetime


def _next_six_am(moment: dt.datetime) -> dt.datetime:
    local = moment.astimezone(IST)
    expiry = dt.datetime.combine(local.date(), dt.time(6, 0), tzinfo=IST)
    return expiry if expiry > local else expiry + dt.timedelta(days=1)


def _num(value: Any, name: str, *, integer: bool = False) -> Any:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise KiteError(400, "InputException", f"Invalid `{name}`.") from None
    if number < 0:
        raise KiteError(400, "InputException", f"Invalid `{name}`.")
    return number


@dataclass
class FakeKite:
    """Kite's state for one account, and the WSGI app serving it."""

    api_key: str = API_KEY
    api_secret: str = API_SECRET
    user_id: str = USER_ID
    user_name: str = "Kite Tester"
    redirect_url: str = "http://127.0.0.1/zerodha/callback"
    # The fake's wall clock (aware, IST); tests move it to expire sessions.
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(IST))
    instruments: list[tuple[str, ...]] = field(default_factory=lambda: list(DEFAULT_INSTRUMENTS))
    extra_instruments: int = 0  # synthetic rows appended to the dump (streaming tests)
    historical_data_enabled: bool = True  # False: the app lacks the historical data subscription

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.request_tokens: dict[str, str] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.order_history: dict[str, list[dict[str, Any]]] = {}
        self.trades: list[dict[str, Any]] = []
        self.faults: deque[Fault] = deque()
        self.requests: list[tuple[str, str]] = []  # (method, path) seen, oldest first
        self.calls: Counter[str] = Counter()  # requests per path
        self.history_requests: list[dict[str, str]] = []  # token, interval and the query, as received
        self.basket_requests: list[tuple[dict[str, str], Any]] = []  # (query, JSON body)
        self.request_headers: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self.holdings = [
            {
                "tradingsymbol": "INFY",
                "exchange": "NSE",
                "instrument_token": 408065,
                "isin": "INE009A01021",
                "product": "CNC",
                "price": 0,
                "quantity": 10,
                "used_quantity": 0,
                "t1_quantity": 0,
                "realised_quantity": 10,
                "authorised_quantity": 0,
                "authorised_date": "2024-03-01 00:00:00",
                "opening_quantity": 10,
                "collateral_quantity": 0,
                "collateral_type": "",
                "discrepancy": False,
                "average_price": 1400.0,
                "last_price": 1500.5,
                "close_price": 1490.0,
                "pnl": 1005.0,
                "day_change": 10.5,
                "day_change_percentage": 0.70,
            }
        ]
        self.margins = {
            "equity": {
                "enabled": True,
                "net": 99725.05,
                "available": {
                    "adhoc_margin": 0,
                    "cash": 245431.6,
                    "opening_balance": 245431.6,
                    "live_balance": 99725.05,
                    "collateral": 5000.0,
                    "intraday_payin": 0,
                },
                "utilised": {
                    "debits": 145706.55,
                    "exposure": 38981.25,
                    "m2m_realised": 761.7,
                    "m2m_unrealised": -120.5,
                    "option_premium": 0,
                    "payout": 0,
                    "span": 101989,
                    "holding_sales": 0,
                    "turnover": 0,
                    "liquid_collateral": 0,
                    "stock_collateral": 0,
                    "delivery": 0,
                },
            },
            "commodity": {
                "enabled": True,
                "net": 100000.0,
                "available": {
                    "adhoc_margin": 0,
                    "cash": 100000.0,
                    "opening_balance": 100000.0,
                    "live_balance": 100000.0,
                    "collateral": 0,
                    "intraday_payin": 0,
                },
                "utilised": {
                    "debits": 0,
                    "exposure": 0,
                    "m2m_realised": 0,
                    "m2m_unrealised": 0,
                    "option_premium": 0,
                    "payout": 0,
                    "span": 0,
                    "holding_sales": 0,
                    "turnover": 0,
                    "liquid_collateral": 0,
                    "stock_collateral": 0,
                    "delivery": 0,
                },
            },
        }
        self.url_map = Map(
            [
                Rule("/connect/login", methods=["GET"], endpoint="login_page"),
                Rule("/session/token", methods=["POST"], endpoint="session_create"),
                Rule("/session/token", methods=["DELETE"], endpoint="session_delete"),
                Rule("/user/profile", methods=["GET"], endpoint="profile"),
                Rule("/user/margins", methods=["GET"], endpoint="margins"),
                Rule("/orders", methods=["GET"], endpoint="orders"),
                Rule("/orders/<variety>", methods=["POST"], endpoint="place"),
                Rule("/orders/<order_id>", methods=["GET"], endpoint="history"),
                Rule("/orders/<order_id>/trades", methods=["GET"], endpoint="order_trades"),
                Rule("/orders/<variety>/<order_id>", methods=["PUT"], endpoint="modify"),
                Rule("/orders/<variety>/<order_id>", methods=["DELETE"], endpoint="cancel"),
                Rule("/trades", methods=["GET"], endpoint="trades_list"),
                Rule("/portfolio/positions", methods=["GET"], endpoint="positions"),
                Rule("/portfolio/holdings", methods=["GET"], endpoint="holdings_list"),
                Rule("/quote", methods=["GET"], endpoint="quote"),
                Rule("/instruments/historical/<token>/<interval>", methods=["GET"], endpoint="historical"),
                Rule("/margins/basket", methods=["POST"], endpoint="basket_margins"),
                Rule("/instruments", methods=["GET"], endpoint="instrument_dump"),
            ]
        )

    # -- helpers for tests -------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.clock().astimezone(IST)

    def stamp(self) -> str:
        return self.now().strftime(TIME_FORMAT)

    def issue_request_token(self, user_id: str | None = None) -> str:
        """What Kite's login page does when a user signs in: a one-time request token."""
        token = secrets.token_hex(16)
        with self.lock:
            self.request_tokens[token] = user_id or self.user_id
        return token

    def checksum(self, request_token: str) -> str:
        return hashlib.sha256((self.api_key + request_token + self.api_secret).encode()).hexdigest()

    def add_access_token(self, token: str, expires_at: dt.datetime | None = None) -> None:
        with self.lock:
            self.access_tokens[token] = AccessToken(self.user_id, expires_at or _next_six_am(self.now()))

    def expire_all(self) -> None:
        """Move every session's expiry into the past (Kite's 06:00 flush)."""
        with self.lock:
            for session in self.access_tokens.values():
                session.expires_at = self.now() - dt.timedelta(seconds=1)

    def fail_next(self, status: int, error_type: str | None = None, message: str = "", **kw: Any):
        self.faults.append(Fault(status, error_type, message or "Something went wrong", **kw))

    def set_status(self, order_id: str, status: str, message: str | None = None) -> None:
        with self.lock:
            entry = copy.deepcopy(self.order_history[order_id][-1])
            entry.update(status=status, status_message=message, order_timestamp=self.stamp())
            self.order_history[order_id].append(entry)

    def fill(self, order_id: str, price: float | None = None) -> None:
        with self.lock:
            order = self.order_history[order_id][-1]
            self._fill(order, price if price is not None else order["price"])

    def latest(self, order_id: str) -> dict[str, Any]:
        return self.order_history[order_id][-1]

    def calls_to(self, prefix: str) -> int:
        """How many requests went to paths starting with `prefix`."""
        with self.lock:
            return sum(n for path, n in self.calls.items() if path.startswith(prefix))

    # -- WSGI --------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        return self._dispatch(request)(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        with self.lock:
            self.requests.append((request.method, request.path))
            self.calls[request.path] += 1
            self.request_headers.append(dict(request.headers))
            fault = self._take_fault(request.path)
        if fault is not None:
            if fault.body is not None:
                return Response(fault.body, status=fault.status, content_type=fault.content_type)
            return self._error(KiteError(fault.status, fault.error_type or "", fault.message))
        try:
            endpoint, args = self.url_map.bind_to_environ(request.environ).match()
            if endpoint != "login_page" and request.headers.get("X-Kite-Version") != "3":
                raise KiteError(400, "InputException", "Missing or invalid `X-Kite-Version`.")
            handler = getattr(self, f"_ep_{endpoint}")
            return handler(request, **args)
        except KiteError as exc:
            return self._error(exc)
        except HTTPException as exc:
            return self._error(KiteError(exc.code or 500, "GeneralException", exc.name))

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if path.startswith(fault.path):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _json(data: Any, status: int = 200) -> Response:
        body = json.dumps({"status": "success", "data": data})
        return Response(body, status=status, content_type="application/json")

    @staticmethod
    def _error(exc: KiteError) -> Response:
        body = {"status": "error", "message": exc.message, "data": None}
        if exc.error_type:
            body["error_type"] = exc.error_type
        return Response(json.dumps(body), status=exc.status, content_type="application/json")

    def _authorise(self, request: Request) -> AccessToken:
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        api_key, _, access_token = credentials.partition(":")
        invalid = KiteError(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        if scheme != "token" or not hmac.compare_digest(api_key, self.api_key):
            raise invalid
        with self.lock:
            session = self.access_tokens.get(access_token)
            if session is None:
                raise invalid
            if session.expires_at <= self.now():
                del self.access_tokens[access_token]
                raise invalid
            return session

    # -- session -----------------------------------------------------------------------------------

    def _ep_login_page(self, request: Request) -> Response:
        if request.args.get("api_key") != self.api_key or request.args.get("v") != "3":
            raise KiteError(400, "InputException", "Invalid `api_key`.")
        token = self.issue_request_token()
        query = urlencode({"action": "login", "type": "login", "status": "success", "request_token": token})
        extra = request.args.get("redirect_params")
        location = f"{self.redirect_url}?{query}" + (f"&{extra}" if extra else "")
        return Response("", status=302, headers={"Location": location})

    def _ep_session_create(self, request: Request) -> Response:
        form = request.form
        for name in ("api_key", "request_token", "checksum"):
            if not form.get(name):
                raise KiteError(400, "InputException", f"Missing `{name}`.")
        if form["api_key"] != self.api_key:
            raise KiteError(403, "TokenException", "Invalid `api_key`.")
        request_token = form["request_token"]
        with self.lock:
            user_id = self.request_tokens.get(request_token)
        if user_id is None:
            raise KiteError(403, "TokenException", "Token is invalid or has expired.")
        if not hmac.compare_digest(form["checksum"], self.checksum(request_token)):
            raise KiteError(403, "TokenException", "Invalid `checksum`.")
        access_token = secrets.token_hex(16)
        with self.lock:
            del self.request_tokens[request_token]  # one use only
            self.access_tokens[access_token] = AccessToken(user_id, _next_six_am(self.now()))
        return self._json(
            {
                **self._profile_data(user_id),
                "api_key": self.api_key,
                "access_token": access_token,
                "public_token": secrets.token_hex(8),
                "refresh_token": "",
                "enctoken": secrets.token_hex(8),
                "login_time": self.stamp(),
                "meta": {"demat_consent": "consent"},
            }
        )

    def _ep_session_delete(self, request: Request) -> Response:
        if request.args.get("api_key") != self.api_key:
            raise KiteError(403, "TokenException", "Invalid `api_key`.")
        with self.lock:
            if self.access_tokens.pop(request.args.get("access_token", ""), None) is None:
                raise KiteError(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        return self._json(True)

    def _profile_data(self, user_id: str) -> dict[str, Any]:
        return {
            "user_id": user_id,
            "user_type": "individual",
            "email": "tester@example.com",
            "user_name": self.user_name,
            "user_shortname": self.user_name.split()[0],
            "broker": "ZERODHA",
            "exchanges": ["NSE", "BSE", "NFO", "MCX"],
            "products": ["CNC", "NRML", "MIS"],
            "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
            "avatar_url": None,
        }

    def _ep_profile(self, request: Request) -> Response:
        session = self._authorise(request)
        return self._json({**self._profile_data(session.user_id), "meta": {"demat_consent": ""}})

    def _ep_margins(self, request: Request) -> Response:
        self._authorise(request)
        with self.lock:
            return self._json(copy.deepcopy(self.margins))

    # -- orders ------------------------------------------------------------------------------------

    def _instrument(self, exchange: str, symbol: str) -> tuple[str, ...] | None:
        for row in self.instruments:
            if row[11] == exchange and row[2] == symbol:
                return row
        return None

    def _validate_prices(self, order_type: str, form: Any) -> tuple[float, float]:
        price = _num(form.get("price") or 0, "price")
        trigger = _num(form.get("trigger_price") or 0, "trigger_price")
        if order_type in ("LIMIT", "SL") and price <= 0:
            raise KiteError(400, "InputException", "Invalid `price`.")
        if order_type in ("SL", "SL-M") and trigger <= 0:
            raise KiteError(400, "InputException", "Invalid `trigger_price`.")
        if order_type in ("MARKET", "SL-M") and float(form.get("market_protection") or 0) == 0:
            raise KiteError(
                400,
                "InputException",
                "Market orders without market protection are not allowed via API. "
                "Please set market protection or use a Limit order.",
            )
        return price, trigger

    def _ep_place(self, request: Request, variety: str) -> Response:
        self._authorise(request)
        form = request.form
        if variety not in _VARIETIES:
            raise KiteError(400, "InputException", "Invalid `variety`.")
        for name in (
            "exchange",
            "tradingsymbol",
            "transaction_type",
            "quantity",
            "product",
            "order_type",
        ):
            if not form.get(name):
                raise KiteError(400, "InputException", f"Missing `{name}`.")
        instrument = self._instrument(form["exchange"], form["tradingsymbol"])
        if instrument is None:
            raise KiteError(
                400,
                "InputException",
                "The instrument you are placing an order for has either expired or does not exist.",
            )
        if form["transaction_type"] not in ("BUY", "SELL"):
            raise KiteError(400, "InputException", "Invalid `transaction_type`.")
        if form["order_type"] not in _ORDER_TYPES:
            raise KiteError(400, "InputException", "Invalid `order_type`.")
        if form["product"] not in _PRODUCTS:
            raise KiteError(400, "InputException", "Invalid `product`.")
        quantity = _num(form["quantity"], "quantity", integer=True)
        if quantity <= 0:
            raise KiteError(400, "InputException", "Invalid `quantity`.")
        tag = form.get("tag") or None
        if tag is not None and (len(tag) > 20 or not tag.isalnum()):
            raise KiteError(400, "InputException", "Invalid `tag`.")
        price, trigger = self._validate_prices(form["order_type"], form)
        ltp = float(instrument[4])

        with self.lock:
            order_id = f"{self.now():%y%m%d}{next(self._ids):09d}"
            order = {
                "placed_by": self.user_id,
                "order_id": order_id,
                "exchange_order_id": None,
                "parent_order_id": None,
                "status": "PUT ORDER REQ RECEIVED",
                "status_message": None,
                "status_message_raw": None,
                "order_timestamp": self.stamp(),
                "exchange_update_timestamp": None,
                "exchange_timestamp": None,
                "variety": variety,
                "modified": False,
                "exchange": form["exchange"],
                "tradingsymbol": form["tradingsymbol"],
                "instrument_token": int(instrument[0]),
                "order_type": form["order_type"],
                "transaction_type": form["transaction_type"],
                "validity": form.get("validity") or "DAY",
                "validity_ttl": 0,
                "product": form["product"],
                "quantity": quantity,
                "disclosed_quantity": int(form.get("disclosed_quantity") or 0),
                "price": price,
                "trigger_price": trigger,
                "average_price": 0,
                "filled_quantity": 0,
                "pending_quantity": quantity,
                "cancelled_quantity": 0,
                "market_protection": float(form.get("market_protection") or 0),
                "meta": {},
                "tag": tag,
                "tags": [tag] if tag else [],
                "guid": secrets.token_hex(8),
            }
            history = [order]
            for status in ("VALIDATION PENDING", "OPEN PENDING"):
                history.append({**history[-1], "status": status})
            self.order_history[order_id] = history
            required = quantity * (price or ltp)
            if form["transaction_type"] == "BUY" and required > self.margins["equity"]["net"]:
                self._append(
                    order_id,
                    status="REJECTED",
                    pending_quantity=0,
                    status_message=(
                        f"Insufficient funds. Required margin is {required:.2f} but available "
                        f"margin is {self.margins['equity']['net']:.2f}."
                    ),
                )
            elif form["order_type"] == "MARKET":
                self._append(order_id, status="OPEN", exchange_order_id=f"1{order_id}")
                self._fill(self.order_history[order_id][-1], ltp)
            elif form["order_type"] == "LIMIT":
                self._append(order_id, status="OPEN", exchange_order_id=f"1{order_id}")
            else:
                self._append(order_id, status="TRIGGER PENDING", exchange_order_id=f"1{order_id}")
        return self._json({"order_id": order_id})

    def _append(self, order_id: str, **changes: Any) -> dict[str, Any]:
        entry = {**self.order_history[order_id][-1], **changes}
        if entry.get("exchange_order_id"):
            entry["exchange_timestamp"] = entry["exchange_update_timestamp"] = self.stamp()
        self.order_history[order_id].append(entry)
        return entry

    def _fill(self, order: dict[str, Any], price: float) -> None:
        entry = self._append(
            order["order_id"],
            status="COMPLETE",
            average_price=price,
            filled_quantity=order["quantity"],
            pending_quantity=0,
        )
        self.trades.append(
            {
                "trade_id": f"{10000000 + len(self.trades) + 1}",
                "order_id": entry["order_id"],
                "exchange": entry["exchange"],
                "tradingsymbol": entry["tradingsymbol"],
                "instrument_token": entry["instrument_token"],
                "product": entry["product"],
                "average_price": price,
                "quantity": entry["quantity"],
                "exchange_order_id": entry["exchange_order_id"],
                "transaction_type": entry["transaction_type"],
                "fill_timestamp": self.stamp(),
                "order_timestamp": self.now().strftime("%H:%M:%S"),
                "exchange_timestamp": self.stamp(),
            }
        )

    def _live_order(self, order_id: str, action: str) -> dict[str, Any]:
        history = self.order_history.get(order_id)
        if history is None:
            raise KiteError(400, "InputException", "Couldn't find that `order_id`.")
        order = history[-1]
        if order["status"] not in _LIVE:
            raise KiteError(400, "OrderException", f"Order cannot be {action} as it is {order['status']}.")
        return order

    def _ep_modify(self, request: Request, variety: str, order_id: str) -> Response:
        self._authorise(request)
        form = request.form
        with self.lock:
            order = self._live_order(order_id, "modified")
            if variety != order["variety"]:
                raise KiteError(400, "InputException", "Invalid `variety`.")
            order_type = form.get("order_type") or order["order_type"]
            if order_type not in _ORDER_TYPES:
                raise KiteError(400, "InputException", "Invalid `order_type`.")
            price, trigger = self._validate_prices(order_type, form)
            quantity = _num(form.get("quantity") or order["quantity"], "quantity", integer=True)
            for status in ("MODIFY VALIDATION PENDING", "MODIFY PENDING"):
                self._append(order_id, status=status)
            entry = self._append(
                order_id,
                status="TRIGGER PENDING" if order_type in ("SL", "SL-M") else "OPEN",
                order_type=order_type,
                quantity=quantity,
                pending_quantity=quantity,
                price=price,
                trigger_price=trigger,
                modified=True,
            )
            if order_type == "MARKET":
                ltp = float(self._instrument(entry["exchange"], entry["tradingsymbol"])[4])
                self._fill(entry, ltp)
        return self._json({"order_id": order_id})

    def _ep_cancel(self, request: Request, variety: str, order_id: str) -> Response:
        self._authorise(request)
        with self.lock:
            order = self._live_order(order_id, "cancelled")
            self._append(order_id, status="CANCEL PENDING")
            self._append(
                order_id,
                status="CANCELLED",
                cancelled_quantity=order["pending_quantity"],
                pending_quantity=0,
            )
        return self._json({"order_id": order_id})

    def _ep_orders(self, request: Request) -> Response:
        self._authorise(request)
        with self.lock:
            return self._json([history[-1] for history in self.order_history.values()])

    def _ep_history(self, request: Request, order_id: str) -> Response:
        self._authorise(request)
        with self.lock:
            if order_id not in self.order_history:
                raise KiteError(400, "InputException", "Couldn't find that `order_id`.")
            return self._json(self.order_history[order_id])

    def _ep_order_trades(self, request: Request, order_id: str) -> Response:
        self._authorise(request)
        with self.lock:
            return self._json([t for t in self.trades if t["order_id"] == order_id])

    def _ep_trades_list(self, request: Request) -> Response:
        self._authorise(request)
        with self.lock:
            return self._json(list(self.trades))

    # -- portfolio ---------------------------------------------------------------------------------

    def _ep_positions(self, request: Request) -> Response:
        self._authorise(request)
        books: dict[tuple[str, str, str], dict[str, Any]] = {}
        with self.lock:
            for trade in self.trades:
                key = (trade["exchange"], trade["tradingsymbol"], trade["product"])
                book = books.setdefault(key, {"buy_q": 0, "buy_v": 0.0, "sell_q": 0, "sell_v": 0.0})
                side = "buy" if trade["transaction_type"] == "BUY" else "sell"
                book[f"{side}_q"] += trade["quantity"]
                book[f"{side}_v"] += trade["quantity"] * trade["average_price"]
        net = []
        for (exchange, symbol, product), book in books.items():
            instrument = self._instrument(exchange, symbol)
            ltp = float(instrument[4]) if instrument else 0.0
            quantity = book["buy_q"] - book["sell_q"]
            buy_price = book["buy_v"] / book["buy_q"] if book["buy_q"] else 0.0
            sell_price = book["sell_v"] / book["sell_q"] if book["sell_q"] else 0.0
            average = buy_price if quantity > 0 else sell_price if quantity < 0 else 0.0
            pnl = (book["sell_v"] - book["buy_v"]) + quantity * ltp
            unrealised = quantity * (ltp - average)
            net.append(
                {
                    "tradingsymbol": symbol,
                    "exchange": exchange,
                    "instrument_token": int(instrument[0]) if instrument else 0,
                    "product": product,
                    "quantity": quantity,
                    "overnight_quantity": 0,
                    "multiplier": 1,
                    "average_price": average,
                    "close_price": 0,
                    "last_price": ltp,
                    "value": book["sell_v"] - book["buy_v"],
                    "pnl": pnl,
                    "m2m": pnl,
                    "unrealised": unrealised,
                    "realised": pnl - unrealised,
                    "buy_quantity": book["buy_q"],
                    "buy_price": buy_price,
                    "buy_value": book["buy_v"],
                    "buy_m2m": book["buy_v"],
                    "sell_quantity": book["sell_q"],
                    "sell_price": sell_price,
                    "sell_value": book["sell_v"],
                    "sell_m2m": book["sell_v"],
                    "day_buy_quantity": book["buy_q"],
                    "day_buy_price": buy_price,
                    "day_buy_value": book["buy_v"],
                    "day_sell_quantity": book["sell_q"],
                    "day_sell_price": sell_price,
                    "day_sell_value": book["sell_v"],
                }
            )
        return self._json({"net": net, "day": copy.deepcopy(net)})

    def _ep_holdings_list(self, request: Request) -> Response:
        self._authorise(request)
        with self.lock:
            return self._json(copy.deepcopy(self.holdings))

    # -- market data -------------------------------------------------------------------------------

    def _quote(self, row: tuple[str, ...]) -> dict[str, Any]:
        ltp = float(row[4])
        tick = float(row[7]) or 0.05
        # Five levels a side, best first, a tick apart; deeper levels hold more.
        depth_buy = [
            {"price": round(ltp - tick * n, 2), "quantity": 100 * n, "orders": 2 + n} for n in range(1, 6)
        ]
        depth_sell = [
            {"price": round(ltp + tick * n, 2), "quantity": 80 * n, "orders": 1 + n} for n in range(1, 6)
        ]
        derivative = row[9] in ("FUT", "CE", "PE")
        return {
            "instrument_token": int(row[0]),
            "timestamp": self.stamp(),
            "last_trade_time": self.stamp(),
            "last_price": ltp,
            "last_quantity": 5,
            "buy_quantity": 4000,  # all resting quantity: more than the five levels shown
            "sell_quantity": 3200,
            "volume": 123456,
            "average_price": ltp,
            "oi": 4500 if derivative else 0,
            "oi_day_high": 0,
            "oi_day_low": 0,
            "net_change": 0,
            "lower_circuit_limit": round(ltp * 0.8, 2),
            "upper_circuit_limit": round(ltp * 1.2, 2),
            "ohlc": {"open": ltp - 10, "high": ltp + 20, "low": ltp - 30, "close": ltp - 5},
            "depth": {"buy": depth_buy, "sell": depth_sell},
        }

    def _ep_quote(self, request: Request) -> Response:
        self._authorise(request)
        keys = request.args.getlist("i")
        if not keys:
            raise KiteError(400, "InputException", "No instruments specified.")
        if len(keys) > 500:
            raise KiteError(400, "InputException", "Too many instruments.")
        data = {}
        for key in keys:
            exchange, _, symbol = key.partition(":")
            row = self._instrument(exchange, symbol)
            if row is not None:
                data[key] = self._quote(row)
        return self._json(data)

    # -- historical candles ------------------------------------------------------------------------

    def _instrument_by_token(self, token: str) -> tuple[str, ...] | None:
        return next((row for row in self.instruments if row[0] == token), None)

    @staticmethod
    def _query_time(request: Request, name: str) -> dt.datetime:
        value = request.args.get(name, "")
        for layout in (TIME_FORMAT, "%Y-%m-%d"):
            try:
                return dt.datetime.strptime(value, layout).replace(tzinfo=IST)
            except ValueError:
                continue
        raise KiteError(400, "InputException", f"invalid {name} date")

    def _ep_historical(self, request: Request, token: str, interval: str) -> Response:
        self._authorise(request)
        with self.lock:
            self.history_requests.append({"token": token, "interval": interval, **request.args.to_dict()})
        if not self.historical_data_enabled:
            raise KiteError(403, "PermissionException", "Insufficient permission for that call.")
        if interval not in HISTORY_INTERVALS:
            raise KiteError(400, "InputException", "invalid interval")
        row = self._instrument_by_token(token)
        if row is None:
            raise KiteError(400, "InputException", "invalid token")
        start, end = self._query_time(request, "from"), self._query_time(request, "to")
        if start > end:
            raise KiteError(400, "InputException", "invalid from date: after to date")
        minutes, max_days = HISTORY_INTERVALS[interval]
        if end - start > dt.timedelta(days=max_days):
            raise KiteError(400, "InputException", f"interval exceeds max limit: {max_days} days")
        with_oi = request.args.get("oi") == "1"
        # Like Kite: nothing from the future, and a candle still forming is served as it stands.
        end = min(end, self.now())
        candles = [c if with_oi else c[:6] for c in candle_series(row, minutes, start, end)]
        return self._json({"candles": candles})

    # -- margins -----------------------------------------------------------------------------------

    def _order_margin(self, order: Any) -> tuple[dict[str, Any], str, str]:
        """One order's margin, by the fake's rules (not SPAN): equity CNC the full value, MIS a fifth;
        futures 10 % SPAN and 3 % exposure on the value; a bought option its premium; a sold option
        10 % SPAN and 2 % exposure on the strike's notional. Also the underlying and the side."""
        if not isinstance(order, dict):
            raise KiteError(400, "InputException", "Invalid order.")
        for name in ("exchange", "tradingsymbol", "transaction_type", "product", "order_type", "quantity"):
            if order.get(name) in (None, ""):
                raise KiteError(400, "InputException", f"Missing `{name}`.")
        row = self._instrument(order["exchange"], order["tradingsymbol"])
        if row is None:
            raise KiteError(400, "InputException", "Invalid `tradingsymbol`.")
        if order["transaction_type"] not in ("BUY", "SELL"):
            raise KiteError(400, "InputException", "Invalid `transaction_type`.")
        if order["product"] not in _PRODUCTS or order["order_type"] not in _ORDER_TYPES:
            raise KiteError(400, "InputException", "Invalid `product` or `order_type`.")
        quantity = _num(order["quantity"], "quantity", integer=True)
        price = _num(order.get("price") or 0, "price")
        if order["order_type"] in ("MARKET", "SL-M") or not price:
            price = float(row[4])
        value = quantity * price
        kind, sell = row[9], order["transaction_type"] == "SELL"
        span = exposure = premium = var = 0.0
        if kind == "FUT":
            span, exposure = value * 0.10, value * 0.03
        elif kind in ("CE", "PE") and sell:
            notional = quantity * float(row[6])
            span, exposure = notional * 0.10, notional * 0.02
        elif kind in ("CE", "PE"):
            premium = value
        else:
            var = value if order["product"] in ("CNC", "MTF") else value / 5
        total = span + exposure + premium + var
        margin = {
            "type": "commodity" if row[11] == "MCX" else "equity",
            "tradingsymbol": row[2],
            "exchange": row[11],
            "span": round(span, 2),
            "exposure": round(exposure, 2),
            "option_premium": round(premium, 2),
            "additional": 0,
            "bo": 0,
            "cash": 0,
            "var": round(var, 2),
            "pnl": {"realised": 0, "unrealised": 0},
            "leverage": round(value / total, 2) if total else 1,
            "total": round(total, 2),
        }
        return margin, (row[3] if kind in ("FUT", "CE", "PE") else ""), order["transaction_type"]

    def _ep_basket_margins(self, request: Request) -> Response:
        self._authorise(request)
        body = request.get_json(silent=True)
        with self.lock:
            self.basket_requests.append((request.args.to_dict(), body))
        if not isinstance(body, list) or not body:
            raise KiteError(400, "InputException", "Invalid orders.")
        with self.lock:
            legs = [self._order_margin(order) for order in body]
        fields = ("span", "exposure", "option_premium", "var", "total")
        initial = {name: round(sum(leg[0][name] for leg in legs), 2) for name in fields}
        # The fake's spread benefit: derivatives of one underlying bought and sold in the same
        # basket need 30 % of their SPAN.
        sides: dict[str, set[str]] = {}
        for _, underlying, side in legs:
            if underlying:
                sides.setdefault(underlying, set()).add(side)
        hedged = {name for name, seen in sides.items() if len(seen) == 2}
        benefit = round(sum(leg[0]["span"] * 0.7 for leg in legs if leg[1] in hedged), 2)
        final = {**initial, "span": round(initial["span"] - benefit, 2), "total": round(initial["total"] - benefit, 2)}
        common = {"type": legs[0][0]["type"], "tradingsymbol": "", "exchange": "", "additional": 0, "bo": 0,
                  "cash": 0, "pnl": {"realised": 0, "unrealised": 0}, "leverage": 1}
        return self._json(
            {"initial": {**common, **initial}, "final": {**common, **final}, "orders": [leg[0] for leg in legs]}
        )

    def _ep_instrument_dump(self, request: Request) -> Response:
        self._authorise(request)
        rows = list(self.instruments)
        extra = self.extra_instruments

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(INSTRUMENT_COLUMNS)
            writer.writerows(rows)
            yield buffer.getvalue()
            for n in range(extra):
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\n")
                token = 90000000 + n
                writer.writerow((token, n, f"SYN{n}", f"SYNTHETIC {n}", "10", "", "0", "0.05", "1", "EQ", "NSE", "NSE"))
                yield buffer.getvalue()

        def gzipped() -> Iterator[bytes]:
            # Kite serves the dump gzip-compressed; the client library (requests) inflates it.
            compressor = zlib.compressobj(wbits=31)
            for text in lines():
                chunk = compressor.compress(text.encode())
                if chunk:
                    yield chunk
            yield compressor.flush()

        return Response(gzipped(), content_type="text/csv", headers={"Content-Encoding": "gzip"})


def _tick(value: float, tick: float) -> float:
    return round(round(value / tick) * tick, 2)


def minute_price(seed: int, base: float, day: dt.date, minute: int) -> float:
    """The close of the instrument's `minute`-th minute of `day` (-1: the day's open): a slow swing
    across days plus a faster one within the day, the same whatever range is asked for."""
    n = day.toordinal()
    return base * (1 + 0.03 * math.sin(n * 0.37 + seed % 11) + 0.004 * math.sin((minute + 1) / 9.0 + seed % 7))


def candle_series(row: tuple[str, ...], minutes: int, start: dt.datetime, end: dt.datetime) -> list[list[Any]]:
    """The fake's candles [timestamp, open, high, low, close, volume, oi] of one instrument that start
    within [start, end] (IST): weekdays only, inside the exchange's session (SESSIONS), intraday
    candles aligned to the session's open, each built from the minute path. A day candle opens and
    closes with that day's minute path; its high and low are a band around them."""
    seed, base, tick = int(row[0]), float(row[4]) or 100.0, float(row[7]) or 0.05
    derivative = row[9] in ("FUT", "CE", "PE")
    opens, closes = SESSIONS.get(row[11], SESSIONS["NSE"])
    session = (closes.hour * 60 + closes.minute) - (opens.hour * 60 + opens.minute)
    candles: list[list[Any]] = []
    day = start.astimezone(IST).date()
    while day <= end.astimezone(IST).date():
        if day.weekday() < 5:
            n = day.toordinal()
            if not minutes:
                moment = dt.datetime.combine(day, dt.time(0, 0), tzinfo=IST)
                first = _tick(minute_price(seed, base, day, -1), tick)
                last = _tick(minute_price(seed, base, day, session - 1), tick)
                high, low = _tick(max(first, last) * 1.006, tick), _tick(min(first, last) * 0.994, tick)
                volume = 300000 + (seed * 7 + n * 131) % 200000
                oi = 1000000 + (seed + n * 17) % 300000 if derivative else 0
                candles.append([moment.strftime(CANDLE_TIME_FORMAT), first, high, low, last, volume, oi])
            else:
                session_open = dt.datetime.combine(day, opens, tzinfo=IST)
                for offset in range(0, session, minutes):
                    moment = session_open + dt.timedelta(minutes=offset)
                    if moment < start or moment > end:
                        continue
                    steps = range(offset, min(offset + minutes, session))
                    prices = [_tick(minute_price(seed, base, day, k), tick) for k in (offset - 1, *steps)]
                    candle_open, closes_ = prices[0], prices[1:]
                    high = max(candle_open, *closes_) + tick
                    low = min(candle_open, *closes_) - tick
                    volume = sum(500 + (seed * 3 + n * 7 + k * 31) % 2000 for k in steps)
                    oi = 1000000 + (seed + n * 17 + offset) % 300000 if derivative else 0
                    candles.append(
                        [moment.strftime(CANDLE_TIME_FORMAT), candle_open, round(high, 2), round(low, 2), closes_[-1],
                         volume, oi]
                    )
        day += dt.timedelta(days=1)
    return candles


class RunningKite(RunningFake):
    """A FakeKite served on 127.0.0.1 on a free port, in a background thread."""

    fake: FakeKite

    def __init__(self, fake: FakeKite):
        super().__init__(fake)
        self.login_url = f"{self.url}/connect/login"


def running_kite(**settings: Any) -> AbstractContextManager[RunningKite]:
    """Serve a fresh FakeKite(**settings) for the duration of the block."""
    return running(RunningKite(FakeKite(**settings)))
