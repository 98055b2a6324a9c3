"""Angel One through SmartAPI (REST, JSON), over plain HTTP with `requests`.

The official `smartapi-python` client is not used: at import it asks a public web service for the
machine's IP address, each client object creates a `logs/` folder in the working directory and logs
to a file there, and its error log lines carry the request headers (the access token) and parameters
(the PIN). Its routes and header names are SmartAPI's documented ones, used here directly.

Login is a form: the client code, the PIN and the current TOTP of the account are posted to
loginByPassword, which answers with a jwtToken (the access token kept here), a refreshToken and a
feedToken (the streaming token). Sessions end at midnight IST (see `mapping.SESSION_FLUSH`).
Every other call sends the app's API key (X-PrivateKey) and the jwtToken as a Bearer token. Neither the
PIN, the TOTP nor any token is ever logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import InvalidOperation
from typing import TYPE_CHECKING, Any

from brokers.angelone import mapping
from brokers.angelone.errors import error_from_angel
from brokers.base import (
    Broker,
    BrokerCandle,
    BrokerClient,
    BrokerError,
    BrokerFunds,
    BrokerHolding,
    BrokerMargin,
    BrokerOrder,
    BrokerPosition,
    BrokerProfile,
    BrokerQuote,
    BrokerTrade,
    ErrorKind,
    LoginField,
    LoginResult,
    MarginOrder,
    OrderRequest,
    OrderResult,
    check_history_range,
    merge_candles,
    next_daily_expiry,
    split_range,
)
from brokers.common import KeyedPacer, http_session, network_errors

if TYPE_CHECKING:
    import requests

log = logging.getLogger("algobridge.broker")

DEFAULT_ROOT = "https://apiconnect.angelone.in"
DEFAULT_INSTRUMENTS_URL = "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json"

LOGIN_PATH = "/rest/auth/angelbroking/user/v1/loginByPassword"
LOGOUT_PATH = "/rest/secure/angelbroking/user/v1/logout"
PROFILE_PATH = "/rest/secure/angelbroking/user/v1/getProfile"
RMS_PATH = "/rest/secure/angelbroking/user/v1/getRMS"
PLACE_PATH = "/rest/secure/angelbroking/order/v1/placeOrder"
MODIFY_PATH = "/rest/secure/angelbroking/order/v1/modifyOrder"
CANCEL_PATH = "/rest/secure/angelbroking/order/v1/cancelOrder"
ORDERS_PATH = "/rest/secure/angelbroking/order/v1/getOrderBook"
TRADES_PATH = "/rest/secure/angelbroking/order/v1/getTradeBook"
POSITIONS_PATH = "/rest/secure/angelbroking/order/v1/getPosition"
HOLDINGS_PATH = "/rest/secure/angelbroking/portfolio/v1/getHolding"
QUOTE_PATH = "/rest/secure/angelbroking/market/v1/quote"
CANDLES_PATH = "/rest/secure/angelbroking/historical/v1/getCandleData"
OI_PATH = "/rest/secure/angelbroking/historical/v1/getOIData"
MARGIN_PATH = "/rest/secure/angelbroking/margin/v1/batch"
DETAILS_PATH = "/rest/secure/angelbroking/order/v1/details/"  # + the uniqueorderid

QUOTE_BATCH = 50  # SmartAPI's limit of instruments per quote request
MARGIN_BATCH = 50  # and of positions per margin calculation
_ORDER_ID = re.compile(r"[0-9A-Za-z]{1,30}")
_TOKEN = re.compile(r"[0-9]{1,20}")
_TOTP = re.compile(r"[0-9]{6}")
_UNIQUE_ID = re.compile(r"[0-9A-Za-z-]{1,64}")  # becomes part of the URL path
HISTORY_PER_SECOND = 3.0  # SmartAPI's limit for getCandleData, per client code
_REMEMBERED_ORDERS = 10_000
_JSON_CHUNK = 256 * 1024
_DERIVATIVE_EXCHANGES = frozenset({"NFO", "BFO", "CDS", "MCX"})


def _order_id(orderid: str) -> str:
    orderid = str(orderid).strip()
    if not _ORDER_ID.fullmatch(orderid):
        raise BrokerError(f"Invalid order id: {orderid[:40]!r}", status=400, kind=ErrorKind.INPUT)
    return orderid


def _token(token: str, what: str) -> str:
    token = str(token or "").strip()
    if not _TOKEN.fullmatch(token):
        raise BrokerError(f"No Angel One instrument token for {what}", status=400, kind=ErrorKind.INPUT)
    return token


class AngelOneBroker(Broker):
    name = "angelone"
    display_name = "Angel One"
    login_kind = "form"
    needs_own_contract = True  # orders go by symboltoken
    config_keys = {
        "api_key": "ANGELONE_API_KEY",
        "root": "ANGELONE_ROOT_URL",
        "instruments_url": "ANGELONE_INSTRUMENTS_URL",
    }
    # SmartAPI's times and its daily session end are IST by its documentation, not our setting.
    exchange_tz = mapping.ANGEL_TZ

    def __init__(
        self,
        api_key: str,
        *,
        root: str | None = None,
        instruments_url: str | None = None,
        timeout: float = 7.0,
        pool_size: int = 16,
        client_local_ip: str = "127.0.0.1",
        client_public_ip: str = "127.0.0.1",
        mac_address: str = "00:00:00:00:00:00",
        clock: Callable[[], dt.datetime] | None = None,
        history_per_second: float = HISTORY_PER_SECOND,
    ):
        """`root` and `instruments_url` point the adapter at another SmartAPI (a test double).
        SmartAPI asks every call for the client's local and public IP and MAC address (headers
        X-ClientLocalIP, X-ClientPublicIP, X-MACAddress); they are not looked up (no request to a
        third party): pass the registered static IP where the account needs one. `clock` gives the
        login time (tests); `history_per_second` paces getCandleData requests (0: unpaced)."""
        if not api_key:
            raise BrokerError("Angel One needs ANGELONE_API_KEY", kind=ErrorKind.CONFIG)
        self._api_key = api_key
        self.root = (root or DEFAULT_ROOT).rstrip("/")
        self.instruments_url = instruments_url or DEFAULT_INSTRUMENTS_URL
        self.timeout = timeout
        self.http = http_session(pool_size)
        self._addresses = {
            "X-ClientLocalIP": client_local_ip,
            "X-ClientPublicIP": client_public_ip,
            "X-MACAddress": mac_address,
        }
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.history_pacer = KeyedPacer(history_per_second)  # per client code: keyed by its token
        # orderid -> (variety, uniqueorderid) of the orders placed through this adapter, newest last.
        self._orders: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._orders_lock = threading.Lock()

    def remember(self, orderid: str, variety: str, unique_id: str) -> None:
        with self._orders_lock:
            self._orders[orderid] = (variety, unique_id)
            while len(self._orders) > _REMEMBERED_ORDERS:
                self._orders.popitem(last=False)

    def recall(self, orderid: str) -> tuple[str, str] | None:
        with self._orders_lock:
            return self._orders.get(orderid)

    def __repr__(self) -> str:
        return f"<AngelOneBroker root={self.root!r}>"

    def close(self) -> None:
        self.http.close()

    # -- HTTP --------------------------------------------------------------------------------------

    def headers(self, access_token: str | None = None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-UserType": "USER",
            "X-SourceID": "WEB",
            "X-PrivateKey": self._api_key,
            **self._addresses,
        }
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        return headers

    def call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        access_token: str | None = None,
        body: Any = None,
        order_call: bool = False,
    ) -> Any:
        """One SmartAPI request: its `data` on success, a BrokerError for anything else."""
        with network_errors("Angel One", operation):
            response = self.http.request(
                method,
                self.root + path,
                headers=self.headers(access_token),
                data=json.dumps(body) if body is not None else None,
                timeout=self.timeout,
            )
        return self._answer(response, operation, order_call=order_call)

    @staticmethod
    def _answer(response: requests.Response, operation: str, *, order_call: bool) -> Any:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            text = response.text.strip() if "json" not in response.headers.get("content-type", "") else ""
            if status < 400:
                log.warning("Angel One %s returned an answer that is not JSON (HTTP %s)", operation, status)
                raise BrokerError(f"Unexpected answer from Angel One to {operation}", status=502, kind=ErrorKind.BROKER)
            raise error_from_angel("", text[:200] or f"HTTP {status}", status, operation, order_call=order_call)
        ok = payload.get("status", payload.get("success"))
        code = str(payload.get("errorcode") or payload.get("errorCode") or "")
        if status >= 400 or ok is False or (ok is None and code):
            message = str(payload.get("message") or f"HTTP {status}")
            raise error_from_angel(code, message, status if status >= 400 else None, operation, order_call=order_call)
        return payload.get("data")

    # -- login -------------------------------------------------------------------------------------

    def form_fields(self) -> Sequence[LoginField]:
        return (
            LoginField("clientcode", "Client code"),
            LoginField("pin", "PIN", kind="password"),
            LoginField("totp", "TOTP", kind="totp"),
        )

    def complete_login(self, callback_args: Mapping[str, str]) -> LoginResult:
        client = str(callback_args.get("clientcode") or "").strip().upper()
        pin = str(callback_args.get("pin") or "").strip()
        totp = str(callback_args.get("totp") or "").replace(" ", "").strip()
        if not client or not pin:
            raise BrokerError("Angel One needs the client code and the PIN", status=400, kind=ErrorKind.INPUT)
        if not _TOTP.fullmatch(totp):
            raise BrokerError("The TOTP is the 6-digit code of the authenticator app", status=400, kind=ErrorKind.INPUT)
        data = self.call("POST", LOGIN_PATH, "login", body={"clientcode": client, "password": pin, "totp": totp})
        try:
            access_token = str(data["jwtToken"])
        except (KeyError, TypeError) as exc:
            raise BrokerError("Angel One sent no session token", status=502, kind=ErrorKind.BROKER) from exc
        if access_token.startswith("Bearer "):
            access_token = access_token[len("Bearer ") :]
        if not access_token:
            raise BrokerError("Angel One sent no session token", status=502, kind=ErrorKind.BROKER)
        login_time = self.clock()
        profile = self.session(access_token).profile()
        log.info("Angel One login completed for %s", profile.broker_user_id)
        return LoginResult(
            access_token=access_token,
            broker_user_id=profile.broker_user_id,
            user_name=profile.user_name,
            expires_at=next_daily_expiry(login_time, at=mapping.SESSION_FLUSH, tz=mapping.ANGEL_TZ),
            # The refresh and feed tokens are credentials as well: neither is kept.
            extra={"login_time": login_time.isoformat(), **profile.extra},
        )

    def logout(self, access_token: str) -> None:
        try:
            client = self.session(access_token).profile().broker_user_id
            self.call("POST", LOGOUT_PATH, "logout", access_token=access_token, body={"clientcode": client})
        except BrokerError as exc:
            if exc.kind is not ErrorKind.TOKEN:
                raise
            log.info("Angel One logout: the session had already ended")
            return
        log.info("Angel One session ended")

    def session(self, access_token: str) -> AngelOneClient:
        if not access_token:
            raise BrokerError("No Angel One session", status=403, kind=ErrorKind.TOKEN)
        return AngelOneClient(self, access_token)


class AngelOneClient(BrokerClient):
    """One Angel One session. Cheap to create: it shares the adapter's HTTP connections."""

    name = "angelone"
    HISTORY_INTERVALS = tuple(mapping.INTERVALS)

    def __init__(self, broker: AngelOneBroker, access_token: str):
        self._broker = broker
        self._access_token = access_token

    def __repr__(self) -> str:
        return f"<AngelOneClient root={self._broker.root!r}>"

    def _call(self, method: str, path: str, operation: str, body: Any = None, *, order_call: bool = False) -> Any:
        return self._broker.call(
            method, path, operation, access_token=self._access_token, body=body, order_call=order_call
        )

    def _rows(self, path: str, operation: str, convert: Callable[[Mapping[str, Any]], Any]) -> list[Any]:
        data = self._call("GET", path, operation)
        try:
            # An empty book comes as `data: null`.
            return [convert(row) for row in (data or [])]
        except (KeyError, IndexError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
            raise self._unexpected(operation, exc) from exc

    @staticmethod
    def _unexpected(operation: str, exc: BaseException) -> BrokerError:
        log.warning("Angel One %s returned an unexpected answer (%r)", operation, exc)
        return BrokerError(f"Unexpected answer from Angel One to {operation}", status=502, kind=ErrorKind.BROKER)

    # -- account -----------------------------------------------------------------------------------

    def profile(self) -> BrokerProfile:
        data = self._call("GET", PROFILE_PATH, "profile")
        try:
            return mapping.to_profile(data)
        except (KeyError, TypeError) as exc:
            raise self._unexpected("profile", exc) from exc

    def funds(self) -> BrokerFunds:
        data = self._call("GET", RMS_PATH, "funds")
        try:
            return mapping.to_funds(data or {})
        except (ValueError, TypeError, AttributeError) as exc:
            raise self._unexpected("funds", exc) from exc

    # -- orders ------------------------------------------------------------------------------------

    def _order_params(self, order: OrderRequest) -> dict[str, str]:
        _token(order.token, f"{order.exchange}:{order.symbol}")
        return mapping.order_params(order)

    def place_order(self, order: OrderRequest) -> OrderResult:
        params = self._order_params(order)
        data = self._call("POST", PLACE_PATH, "place order", params, order_call=True) or {}
        orderid = str(data.get("orderid") or "")
        if not orderid:
            raise BrokerError("Angel One sent no order id", status=502, kind=ErrorKind.BROKER)
        self._broker.remember(orderid, params["variety"], str(data.get("uniqueorderid") or ""))
        log.info(
            "Angel One order %s placed: %s %s %s:%s %s",
            orderid,
            order.action,
            order.quantity,
            order.exchange,
            order.symbol,
            order.pricetype,
        )
        return OrderResult(orderid=orderid)

    def modify_order(self, orderid: str, order: OrderRequest) -> OrderResult:
        orderid = _order_id(orderid)
        params = self._order_params(order)
        body = {
            key: params[key]
            for key in (
                "variety",
                "ordertype",
                "producttype",
                "duration",
                "price",
                "triggerprice",
                "quantity",
                "tradingsymbol",
                "symboltoken",
                "exchange",
            )
        }
        body["orderid"] = orderid
        known = self._broker.recall(orderid)
        if known is not None:
            body["variety"] = known[0]  # an order keeps the variety it was placed with
        data = self._call("POST", MODIFY_PATH, "modify order", body, order_call=True)
        log.info("Angel One order %s modified", orderid)
        return OrderResult(orderid=str((data or {}).get("orderid") or orderid))

    def cancel_order(self, orderid: str) -> OrderResult:
        orderid = _order_id(orderid)
        # An order is cancelled with the variety it was placed with (stop-loss orders: STOPLOSS). The
        # order book (one request a second) is read only for an order this adapter did not place.
        known = self._broker.recall(orderid)
        variety = known[0] if known is not None else "NORMAL"
        if known is None:
            for row in self._call("GET", ORDERS_PATH, "order book") or []:
                if str(row.get("orderid")) == orderid:
                    variety = str(row.get("variety") or variety)
                    break
        data = self._call(
            "POST", CANCEL_PATH, "cancel order", {"variety": variety, "orderid": orderid}, order_call=True
        )
        log.info("Angel One order %s cancelled", orderid)
        return OrderResult(orderid=str((data or {}).get("orderid") or orderid))

    def order_status(self, orderid: str) -> BrokerOrder:
        """The order details call (ten requests a second) for an order placed through this adapter, whose
        uniqueorderid it knows; the order book (one a second) for others."""
        orderid = _order_id(orderid)
        known = self._broker.recall(orderid)
        if known is not None and _UNIQUE_ID.fullmatch(known[1]):
            data = self._call("GET", DETAILS_PATH + known[1], "order status")
            try:
                if data:
                    return mapping.to_order(data)
            except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
                raise self._unexpected("order status", exc) from exc
        for order in self.orderbook():
            if order.orderid == orderid:
                return order
        raise BrokerError(f"Order {orderid} not found", status=404, kind=ErrorKind.INPUT)

    # -- books -------------------------------------------------------------------------------------

    def orderbook(self) -> list[BrokerOrder]:
        return self._rows(ORDERS_PATH, "order book", mapping.to_order)

    def tradebook(self) -> list[BrokerTrade]:
        today = self._broker.clock().astimezone(mapping.ANGEL_TZ).date()
        return self._rows(TRADES_PATH, "trade book", lambda row: mapping.to_trade(row, today))

    def positions(self) -> list[BrokerPosition]:
        return self._rows(POSITIONS_PATH, "positions", mapping.to_position)

    def holdings(self) -> list[BrokerHolding]:
        return self._rows(HOLDINGS_PATH, "holdings", mapping.to_holding)

    # -- market data -------------------------------------------------------------------------------

    def quotes(
        self, instruments: Iterable[tuple[str, str]], tokens: Mapping[tuple[str, str], str] | None = None
    ) -> dict[tuple[str, str], BrokerQuote]:
        """FULL mode quotes (OHLC, volume, OI, five levels of depth), 50 instruments per request. An
        instrument without a token cannot be asked for: it is left out, as unknown ones are."""
        tokens = tokens or {}
        wanted: dict[tuple[str, str], tuple[str, str]] = {}
        for key in instruments:
            token = str(tokens.get(key) or "").strip()
            if _TOKEN.fullmatch(token):
                wanted[(key[0], token)] = key
        pairs = list(wanted)
        result: dict[tuple[str, str], BrokerQuote] = {}
        for start in range(0, len(pairs), QUOTE_BATCH):
            by_exchange: dict[str, list[str]] = {}
            for exchange, token in pairs[start : start + QUOTE_BATCH]:
                by_exchange.setdefault(exchange, []).append(token)
            data = self._call("POST", QUOTE_PATH, "quotes", {"mode": "FULL", "exchangeTokens": by_exchange})
            try:
                for entry in (data or {}).get("fetched") or []:
                    key = wanted.get((str(entry.get("exchange")), str(entry.get("symbolToken"))))
                    if key is not None:
                        result[key] = mapping.to_quote(entry)
            except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
                raise self._unexpected("quotes", exc) from exc
        return result

    def history(
        self,
        brexchange: str,
        brsymbol: str,
        token: str,
        interval: str,
        start: dt.datetime,
        end: dt.datetime,
        oi: bool = False,
    ) -> list[BrokerCandle]:
        """getCandleData in pieces no longer than SmartAPI serves for the interval; with `oi`, the open
        interest of derivatives from getOIData, matched to the candles by time."""
        if interval not in mapping.INTERVALS:
            raise BrokerError(f"Angel One has no {interval!r} candles", status=400, kind=ErrorKind.INPUT)
        if brexchange not in mapping.HISTORY_EXCHANGES:
            raise BrokerError(f"Angel One has no history for {brexchange}", status=400, kind=ErrorKind.INPUT)
        token = _token(token, f"{brexchange}:{brsymbol}")
        check_history_range(start, end)
        angel_interval, max_days = mapping.INTERVALS[interval]
        want_oi = oi and brexchange in _DERIVATIVE_EXCHANGES
        batches = []
        for first, last in split_range(start, end, dt.timedelta(days=max_days)):
            self._broker.history_pacer.wait(self._access_token)
            body = {
                "exchange": brexchange,
                "symboltoken": token,
                "interval": angel_interval,
                "fromdate": mapping.history_time(first),
                "todate": mapping.history_time(last),
            }
            records = self._call("POST", CANDLES_PATH, "history", body) or []
            interest = self._open_interest(body) if want_oi else {}
            try:
                candles = [mapping.to_candle(r) for r in records]
                if interest:
                    candles = [dataclasses.replace(c, oi=interest.get(c.timestamp, 0)) for c in candles]
            except (KeyError, IndexError, TypeError, ValueError, InvalidOperation) as exc:
                raise self._unexpected("history", exc) from exc
            # Pieces cut at whole minutes may share a candle: keep the ones inside the range.
            batches.append([c for c in candles if interval == "D" or start <= c.timestamp <= end])
        return merge_candles(batches)

    def _open_interest(self, body: Mapping[str, Any]) -> dict[dt.datetime, int]:
        data = self._call("POST", OI_PATH, "open interest", dict(body)) or []
        try:
            return {mapping.candle_time(entry["time"]): int(entry.get("oi") or 0) for entry in data}
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unexpected("open interest", exc) from exc

    def basket_margin(self, orders: list[MarginOrder]) -> BrokerMargin:
        """SmartAPI's margin calculator for the orders as one basket (hedges counted); up to 50 legs."""
        if not orders:
            raise BrokerError("No orders to compute a margin for", status=400, kind=ErrorKind.INPUT)
        if len(orders) > MARGIN_BATCH:
            raise BrokerError(
                f"Angel One computes the margin of at most {MARGIN_BATCH} orders", status=400, kind=ErrorKind.INPUT
            )
        for order in orders:
            _token(order.token, f"{order.exchange}:{order.symbol}")
        body = {"positions": [mapping.margin_position(order) for order in orders]}
        data = self._call("POST", MARGIN_PATH, "margin", body)
        try:
            return mapping.to_margin(data)
        except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
            raise self._unexpected("margin", exc) from exc

    # -- the instrument master ---------------------------------------------------------------------

    def instruments(self) -> Iterator[dict[str, str]]:
        """The scrip master (a public JSON file of ~35 MB, no session needed), streamed: rows are
        parsed as they arrive, mapped to the canonical row shape (`mapping.canonical_row`). The
        request is made here, so an unreachable file fails now rather than at the first row."""
        import requests  # late: see brokers.common.http_session

        url = self._broker.instruments_url
        try:
            response = self._broker.http.get(url, stream=True, timeout=self._broker.timeout)
        except requests.RequestException as exc:
            log.warning("Angel One instrument list could not be fetched (%s)", type(exc).__name__)
            raise BrokerError(
                "Could not reach Angel One's instrument list", status=503, kind=ErrorKind.NETWORK
            ) from exc
        if response.status_code != 200:
            response.close()
            log.warning("Angel One instrument list: HTTP %s", response.status_code)
            raise BrokerError(
                f"Angel One's instrument list answered HTTP {response.status_code}", status=502, kind=ErrorKind.BROKER
            )
        return self._rows_of(response)

    @staticmethod
    def _rows_of(response: requests.Response) -> Iterator[dict[str, str]]:
        import requests  # late: see brokers.common.http_session

        skipped = 0
        try:
            for entry in _json_array(response.iter_content(chunk_size=_JSON_CHUNK)):
                if not isinstance(entry, dict):
                    skipped += 1
                    continue
                try:
                    row = mapping.canonical_row(entry)
                except mapping.SkipRow:
                    skipped += 1
                    continue
                if row is not None:
                    yield row
        except requests.RequestException as exc:
            log.warning("Angel One instrument download broke off (%s)", type(exc).__name__)
            raise BrokerError(
                "The Angel One instrument download broke off", status=503, kind=ErrorKind.NETWORK
            ) from exc
        except ValueError as exc:
            log.warning("Angel One instrument list is not a JSON array (%s)", exc)
            raise BrokerError(
                "Angel One's instrument list could not be read", status=502, kind=ErrorKind.BROKER
            ) from exc
        finally:
            response.close()
        if skipped:
            log.info("Angel One instruments: %d malformed entries skipped", skipped)


def _json_array(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The elements of one JSON array arriving in byte chunks, each yielded once it is complete."""
    decoder = json.JSONDecoder()
    buffer = ""
    started = False
    pending = b""
    for chunk in chunks:
        pending += chunk
        try:
            text = pending.decode("utf-8")
            pending = b""
        except UnicodeDecodeError as exc:
            # A multi-byte character cut by the chunk: keep its start for the next one.
            text, pending = pending[: exc.start].decode("utf-8"), pending[exc.start :]
        buffer += text
        pos = 0
        while True:
            while pos < len(buffer) and buffer[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(buffer):
                break
            if not started:
                if buffer[pos] != "[":
                    raise ValueError("not a JSON array")
                started = True
                pos += 1
                continue
            if buffer[pos] == "]":
                return
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError:
                break  # incomplete: wait for more
            yield value
            pos = end
        buffer = buffer[pos:]
    if not started or buffer.strip():
        raise ValueError("the JSON array ends early")


BROKER_CLASS = AngelOneBroker
