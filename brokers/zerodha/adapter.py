"""Zerodha through Kite Connect v3, with the official `kiteconnect` client.

Login is Kite's redirect flow: the user signs in at Kite's login page, Kite redirects to the
redirect URL registered for the API key (here /zerodha/callback) with a one-time `request_token`,
and `complete_login` exchanges it (with checksum SHA-256(api_key + request_token + api_secret), which
the client computes) for an access token. That token is valid until Kite flushes sessions at 06:00
IST the next morning, or until it is invalidated (DELETE /session/token, see `logout`).

Every call goes through one pooled HTTP session per adapter instance, so an order does not pay for a
new TLS handshake. Neither the API secret nor any token is ever logged.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

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
    BrokerStream,
    BrokerTrade,
    ErrorKind,
    LoginResult,
    MarginOrder,
    OrderRequest,
    OrderResult,
    StreamTick,
    check_history_range,
    exchange_time,
    merge_candles,
    next_daily_expiry,
    split_range,
    to_decimal,
)
from brokers.common import Pacer, http_session
from brokers.zerodha import mapping
from brokers.zerodha.errors import error_from_kite, kite_errors
from vocabulary import PriceType, needs_price, needs_trigger

if TYPE_CHECKING:
    import requests
    from kiteconnect import KiteConnect

# `requests` and `kiteconnect` (whose package imports KiteTicker -> twisted/autobahn, ~27 MB) are
# imported when an adapter is constructed or used, not when the registry discovers this class.

log = logging.getLogger("algobridge.broker")

DEFAULT_ROOT = "https://api.kite.trade"
DEFAULT_LOGIN_URL = "https://kite.zerodha.com/connect/login"
DEFAULT_TICKER_ROOT = "wss://ws.kite.trade"
KITE_VERSION = "3"
QUOTE_BATCH = 500  # Kite's limit of instruments per /quote request
_CSV_CHUNK = 64 * 1024
_ORDER_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_INSTRUMENT_TOKEN = re.compile(r"[0-9]{1,20}")
HISTORY_PER_SECOND = 3.0  # Kite's rate limit for the historical API, per API key

# Kite refuses API market orders (and SL-M) without market protection; -1 asks Kite to apply its
# automatic protection band.
AUTO_MARKET_PROTECTION = Decimal(-1)

# Session fields worth keeping beside the token. public_token, refresh_token and enctoken are
# credentials too, and are deliberately left out.
_LOGIN_EXTRA = (
    "user_shortname",
    "email",
    "user_type",
    "broker",
    "exchanges",
    "products",
    "order_types",
)


def _decimal_str(value: Decimal) -> str:
    return format(value, "f")


def _order_id(orderid: str) -> str:
    # The id becomes part of the URL path: refuse anything that could walk to another endpoint.
    orderid = str(orderid).strip()
    if not _ORDER_ID.fullmatch(orderid):
        raise BrokerError(f"Invalid order id: {orderid[:40]!r}", status=400, kind=ErrorKind.INPUT)
    return orderid


class ZerodhaBroker(Broker):
    name = "zerodha"
    display_name = "Zerodha (Kite Connect)"
    login_kind = "redirect"
    config_keys = {
        "api_key": "ZERODHA_API_KEY",
        "api_secret": "ZERODHA_API_SECRET",
        "redirect_url": "REDIRECT_URL",
        "root": "ZERODHA_ROOT_URL",
        "login_url": "ZERODHA_LOGIN_URL",
        "ticker_root": "ZERODHA_TICKER_URL",
    }
    # Kite's login times and session flush are IST by Kite's documentation, not our setting.
    exchange_tz = mapping.KITE_TZ

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        redirect_url: str | None = None,
        *,
        root: str | None = None,
        login_url: str | None = None,
        timeout: float = 7.0,
        market_protection: Decimal | int | str = AUTO_MARKET_PROTECTION,
        pool_size: int = 16,
        history_per_second: float = HISTORY_PER_SECOND,
        ticker_root: str | None = None,
    ):
        """`redirect_url` is the one registered for the API key on Kite's developer console; Kite
        redirects there itself, so it is kept for display and checks only. `root` and `login_url`
        point the adapter at another Kite (a test double), `ticker_root` at another streaming server.
        `history_per_second` paces historical requests (0: unpaced)."""
        if not api_key or not api_secret:
            raise BrokerError("Zerodha needs ZERODHA_API_KEY and ZERODHA_API_SECRET", kind=ErrorKind.CONFIG)
        self.api_key = api_key
        self._api_secret = api_secret
        self.redirect_url = redirect_url
        self.root = (root or DEFAULT_ROOT).rstrip("/")
        self._login_url = login_url or DEFAULT_LOGIN_URL
        self.timeout = timeout
        self.market_protection = to_decimal(market_protection)
        self.http = http_session(pool_size)
        self.history_pacer = Pacer(history_per_second)
        self.ticker_root = ticker_root or DEFAULT_TICKER_ROOT

    def close(self) -> None:
        self.http.close()

    def kite(self, access_token: str | None = None) -> KiteConnect:
        """A Kite client on the adapter's shared HTTP session."""
        from kiteconnect import KiteConnect  # late: see brokers.common.http_session

        kite = KiteConnect(self.api_key, access_token=access_token, root=self.root, timeout=self.timeout)
        kite.reqsession = self.http
        return kite

    # -- login -------------------------------------------------------------------------------------

    def login_url(self, state: str | None = None) -> str:
        params = {"v": KITE_VERSION, "api_key": self.api_key}
        if state:
            # Kite hands redirect_params back to the redirect URL as query arguments.
            params["redirect_params"] = urlencode({"state": state})
        return f"{self._login_url}?{urlencode(params)}"

    def complete_login(self, callback_args: Mapping[str, str]) -> LoginResult:
        status = callback_args.get("status")
        if status and status != "success":
            raise BrokerError(f"Zerodha login did not succeed (status {status})", kind=ErrorKind.INPUT)
        request_token = callback_args.get("request_token")
        if not request_token:
            raise BrokerError("Zerodha sent no request_token", status=400, kind=ErrorKind.INPUT)

        with kite_errors("login"):
            data = self.kite().generate_session(request_token, api_secret=self._api_secret)
            access_token = data["access_token"]
            user_id = str(data["user_id"])
            user_name = data.get("user_name") or data.get("user_shortname") or user_id
            login_time = exchange_time(data.get("login_time"), mapping.KITE_TZ) or dt.datetime.now(dt.UTC)

        extra: dict[str, Any] = {key: data[key] for key in _LOGIN_EXTRA if key in data}
        extra["login_time"] = login_time.isoformat()
        log.info("Zerodha login completed for %s", user_id)
        return LoginResult(
            access_token=access_token,
            broker_user_id=user_id,
            user_name=user_name,
            expires_at=next_daily_expiry(login_time, tz=mapping.KITE_TZ),
            extra=extra,
        )

    def logout(self, access_token: str) -> None:
        try:
            with kite_errors("logout"):
                self.kite(access_token).invalidate_access_token(access_token)
        except BrokerError as exc:
            if exc.kind is not ErrorKind.TOKEN:
                raise
            # Already expired or invalidated elsewhere: the outcome the caller wanted.
            log.info("Zerodha logout: the session had already ended")
            return
        log.info("Zerodha session invalidated")

    def session(self, access_token: str) -> KiteClient:
        if not access_token:
            raise BrokerError("No Zerodha session", status=403, kind=ErrorKind.TOKEN)
        return KiteClient(self, access_token)


class KiteClient(BrokerClient):
    """One Zerodha session. Cheap to create: it shares the adapter's HTTP connections."""

    name = "zerodha"
    HISTORY_INTERVALS = tuple(mapping.INTERVALS)

    def __init__(self, broker: ZerodhaBroker, access_token: str):
        self._broker = broker
        self._access_token = access_token
        self._kite = broker.kite(access_token)

    def __repr__(self) -> str:
        return f"<KiteClient api_key={self._broker.api_key!r}>"

    # -- account -----------------------------------------------------------------------------------

    def profile(self) -> BrokerProfile:
        with kite_errors("profile"):
            return mapping.to_profile(self._kite.profile())

    def funds(self) -> BrokerFunds:
        with kite_errors("funds"):
            return mapping.to_funds(self._kite.margins())

    # -- orders ------------------------------------------------------------------------------------

    def _price_params(self, order: OrderRequest) -> dict[str, str]:
        params: dict[str, str] = {}
        if needs_price(order.pricetype):
            params["price"] = _decimal_str(order.price)
        if needs_trigger(order.pricetype):
            params["trigger_price"] = _decimal_str(order.trigger_price)
        if order.pricetype in (PriceType.MARKET, PriceType.SL_M):
            params["market_protection"] = _decimal_str(self._broker.market_protection)
        if order.disclosed_quantity:
            params["disclosed_quantity"] = str(order.disclosed_quantity)
        return params

    def place_order(self, order: OrderRequest) -> OrderResult:
        params: dict[str, Any] = {
            "variety": mapping.VARIETY,
            "exchange": order.exchange,
            "tradingsymbol": order.symbol,
            "transaction_type": order.action,
            "quantity": order.quantity,
            "product": order.product,
            "order_type": order.pricetype,
            "validity": mapping.VALIDITY,
            **self._price_params(order),
        }
        if order.tag:
            params["tag"] = order.tag
        with kite_errors("place order", order_call=True):
            orderid = str(self._kite.place_order(**params))
        log.info(
            "Zerodha order %s placed: %s %s %s:%s %s",
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
        with kite_errors("modify order", order_call=True):
            result = self._kite.modify_order(
                variety=mapping.VARIETY,
                order_id=orderid,
                quantity=order.quantity,
                order_type=order.pricetype,
                validity=mapping.VALIDITY,
                **self._price_params(order),
            )
        log.info("Zerodha order %s modified", orderid)
        return OrderResult(orderid=str(result or orderid))

    def cancel_order(self, orderid: str) -> OrderResult:
        orderid = _order_id(orderid)
        with kite_errors("cancel order", order_call=True):
            result = self._kite.cancel_order(variety=mapping.VARIETY, order_id=orderid)
        log.info("Zerodha order %s cancelled", orderid)
        return OrderResult(orderid=str(result or orderid))

    def order_status(self, orderid: str) -> BrokerOrder:
        orderid = _order_id(orderid)
        with kite_errors("order status"):
            history = self._kite.order_history(orderid)
            if not history:
                raise BrokerError(f"Order {orderid} not found", status=404, kind=ErrorKind.INPUT)
            # The history runs oldest first; the last entry is the order as it stands.
            return mapping.to_order(history[-1])

    # -- books -------------------------------------------------------------------------------------

    def orderbook(self) -> list[BrokerOrder]:
        with kite_errors("order book"):
            return [mapping.to_order(row) for row in self._kite.orders()]

    def tradebook(self) -> list[BrokerTrade]:
        with kite_errors("trade book"):
            return [mapping.to_trade(row) for row in self._kite.trades()]

    def positions(self) -> list[BrokerPosition]:
        with kite_errors("positions"):
            # "net" is the current position book; "day" only today's activity.
            return [mapping.to_position(row) for row in self._kite.positions().get("net", [])]

    def holdings(self) -> list[BrokerHolding]:
        with kite_errors("holdings"):
            return [mapping.to_holding(row) for row in self._kite.holdings()]

    # -- market data -------------------------------------------------------------------------------

    def quotes(
        self, instruments: Iterable[tuple[str, str]], tokens: Mapping[tuple[str, str], str] | None = None
    ) -> dict[tuple[str, str], BrokerQuote]:
        wanted = {f"{exchange}:{symbol}": (exchange, symbol) for exchange, symbol in instruments}
        keys = list(wanted)
        result: dict[tuple[str, str], BrokerQuote] = {}
        with kite_errors("quotes"):
            for start in range(0, len(keys), QUOTE_BATCH):
                data = self._kite.quote(keys[start : start + QUOTE_BATCH])
                for key, quote in data.items():
                    if key in wanted:
                        result[wanted[key]] = mapping.to_quote(quote)
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
        """Kite's candles by instrument token (`brexchange` and `brsymbol` only name it in errors),
        asked in pieces no longer than Kite serves for the interval, each paced under Kite's rate
        limit. Kite picks day candles by date, so the day of a seam comes in both pieces: it is
        kept once."""
        if interval not in mapping.INTERVALS:
            raise BrokerError(f"Zerodha has no {interval!r} candles", status=400, kind=ErrorKind.INPUT)
        token = str(token).strip()
        if not _INSTRUMENT_TOKEN.fullmatch(token):
            # The token becomes part of the URL path, as an order id does.
            raise BrokerError(
                f"No Zerodha instrument token for {brexchange}:{brsymbol}", status=400, kind=ErrorKind.INPUT
            )
        check_history_range(start, end)
        kite_interval, max_days = mapping.INTERVALS[interval]
        batches = []
        with kite_errors("history"):
            for first, last in split_range(start, end, dt.timedelta(days=max_days)):
                self._broker.history_pacer.wait()
                records = self._kite.historical_data(
                    token, mapping.kite_time(first), mapping.kite_time(last), kite_interval, oi=oi
                )
                batches.append([mapping.to_candle(record) for record in records])
        return merge_candles(batches)

    def basket_margin(self, orders: list[MarginOrder]) -> BrokerMargin:
        """Kite's margin for the orders as one basket, netted against the open positions."""
        if not orders:
            raise BrokerError("No orders to compute a margin for", status=400, kind=ErrorKind.INPUT)
        params = [mapping.margin_params(order) for order in orders]
        with kite_errors("margin"):
            # The documented spelling; the client would send Python's "True".
            data = self._kite.basket_order_margins(params, consider_positions="true")
            return mapping.to_margin(data)

    def stream(self, on_tick: Callable[[StreamTick], None], on_status: Callable[[str, str], None]) -> BrokerStream:
        """Kite's WebSocket ticker for this session (see `brokers.zerodha.ticker`)."""
        from brokers.zerodha.ticker import KiteStream  # late: kiteconnect's ticker loads Twisted

        return KiteStream(self._broker.api_key, self._access_token, on_tick, on_status, root=self._broker.ticker_root)

    def instruments(self) -> Iterator[dict[str, str]]:
        """Kite's instrument dump, row by row, as dicts of its CSV columns with string values.

        The dump (gzipped CSV, tens of MB) is streamed; the kiteconnect client would load all of it.
        The request is made here, so a dead session fails now rather than at the first row.
        The dump has no freeze quantity (its columns end at `exchange`, and Kite has no API for it), so
        a contract imported from it has none: not known, not checked (services.market.master_contract).
        """
        url = urljoin(self._broker.root, "/instruments")
        headers = {
            "X-Kite-Version": KITE_VERSION,
            "Authorization": f"token {self._broker.api_key}:{self._access_token}",
        }
        with kite_errors("instruments"):
            response = self._broker.http.get(url, headers=headers, stream=True, timeout=self._broker.timeout)
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200 or "csv" not in content_type:
            raise self._error_response(response, "instruments")
        return self._csv_rows(response)

    @staticmethod
    def _error_response(response: requests.Response, operation: str) -> BrokerError:
        try:
            body = response.json() if "json" in response.headers.get("content-type", "") else {}
        except ValueError:
            body = {}
        finally:
            response.close()
        if not isinstance(body, dict):
            body = {}
        return error_from_kite(
            str(body.get("error_type") or "GeneralException"),
            str(body.get("message") or f"HTTP {response.status_code}"),
            response.status_code,
            operation,
        )

    @staticmethod
    def _csv_rows(response: requests.Response) -> Iterator[dict[str, str]]:
        import requests  # late: see brokers.common.http_session

        try:
            response.encoding = "utf-8"
            lines = (line for line in response.iter_lines(chunk_size=_CSV_CHUNK, decode_unicode=True) if line)
            reader = csv.reader(lines)
            header = [column.strip() for column in next(reader, [])]
            if not header:
                return
            width = len(header)
            for row in reader:
                if len(row) != width:
                    log.warning("Zerodha instruments: skipped a row of %d columns", len(row))
                    continue
                yield dict(zip(header, row, strict=True))
        except requests.RequestException as exc:
            log.warning("Zerodha instruments download broke off (%s)", type(exc).__name__)
            raise BrokerError("The Zerodha instrument download broke off", status=503, kind=ErrorKind.NETWORK) from exc
        finally:
            response.close()


BROKER_CLASS = ZerodhaBroker
